// The sparse ops run chunk by chunk (streaming inference): the key stream, attention over a chunk's queries with
// keys at positions of the whole sequence, and the continued key-selection features each give, for any split of
// a sequence into chunks, exactly what one call over the whole sequence gives.
#include <gtest/gtest.h>

#include <vector>

#include "hax/engine/error.h"
#include "hax/ops/sparse/key_scorer.h"
#include "hax/ops/sparse/sparse_attention.h"
#include "hax/ops/sparse/sparse_keys.h"
#include "sparse_fixtures.h"

namespace hax::ops::sparse::testing {
namespace {

// Chunk sizes that split T positions: 1, 2, 3, 1, 2, 3, ... (the last one shorter).
std::vector<int> chunk_sizes(int T) {
  std::vector<int> sizes;
  for (int at = 0, n = 1; at < T; at += sizes.back(), n = n % 3 + 1) sizes.push_back(std::min(n, T - at));
  return sizes;
}

std::vector<std::int32_t> keys_of(const SparseKeys& keys, int t) {
  const auto list = keys.keys_of(t);
  return {list.begin(), list.end()};
}

TEST(SparseKeyStream, ChunksGiveTheListsOfTheWholeSequence) {
  const int T = 61;
  for (const std::string& name : archs_under_test()) {
    SCOPED_TRACE(name);
    const SparseArch arch = parse_sparse_arch(name, 8, 32);
    const OwnedPatternInputs in = random_pattern_inputs(T, 4, 5, Rng(7));
    const SparseKeys whole = build_sparse_keys(arch, T, in.view());
    SparseKeyStream stream(arch, in.num_buckets);
    for (int size : chunk_sizes(T)) {
      const int first = stream.position();
      const SparseKeys chunk = stream.advance(size, slice(in.view(), first, size));
      ASSERT_EQ(chunk.query_offset, first);
      ASSERT_EQ(chunk.key_rows(), first + size);
      for (int t = 0; t < size; ++t) ASSERT_EQ(keys_of(chunk, t), keys_of(whole, first + t)) << "query " << first + t;
    }
    EXPECT_EQ(stream.position(), T);
  }
}

TEST(SparseKeyStream, ACopyContinuesOnItsOwn) {
  const int T = 50, split = 23;
  const SparseArch arch = parse_sparse_arch("sign_bin_lsh+key_selection", 8, 32);
  const OwnedPatternInputs in = random_pattern_inputs(T, 4, 5, Rng(3));
  const SparseKeys whole = build_sparse_keys(arch, T, in.view());
  SparseKeyStream stream(arch, in.num_buckets);
  stream.advance(split, slice(in.view(), 0, split));
  SparseKeyStream copy = stream;
  const SparseKeys from_copy = copy.advance(T - split, slice(in.view(), split, T - split));
  const SparseKeys from_original = stream.advance(T - split, slice(in.view(), split, T - split));
  for (int t = 0; t < T - split; ++t) {
    EXPECT_EQ(keys_of(from_copy, t), keys_of(whole, split + t));
    EXPECT_EQ(keys_of(from_original, t), keys_of(whole, split + t));
  }
}

TEST(SparseKeyStream, NextTakesOnePositionAndChecksItsBuckets) {
  SparseKeyStream stream(parse_sparse_arch("sign_bin_lsh+sliding_window", 4, 16), 2);
  std::vector<std::int32_t> keys;
  stream.next({.sign_bin_query_bucket = 1, .sign_bin_key_bucket = 1}, keys);
  EXPECT_EQ(keys, (std::vector<std::int32_t>{0}));
  stream.next({.sign_bin_query_bucket = 0, .sign_bin_key_bucket = 1}, keys);
  EXPECT_EQ(keys, (std::vector<std::int32_t>{0, 1}));  // the window only: bucket 0 holds no key
  EXPECT_EQ(stream.position(), 2);
  EXPECT_THROW(stream.next({.sign_bin_query_bucket = 2}, keys), Error);
}

TEST(SparseAttention, ChunksGiveTheRowsOfTheWholeSequence) {
  const int T = 45, N = 3, I = 5;
  Rng rng(11);
  const std::vector<float> Q = random_floats(std::size_t(T) * N, rng), K = random_floats(std::size_t(T) * N, rng),
                           V = random_floats(std::size_t(T) * I, rng);
  for (const std::string& name : archs_under_test()) {
    SCOPED_TRACE(name);
    const SparseArch arch = parse_sparse_arch(name, 6, 24);
    const OwnedPatternInputs in = random_pattern_inputs(T, 3, 7, Rng(5));
    const SparseKeys whole = build_sparse_keys(arch, T, in.view());
    std::vector<float> expected(std::size_t(T) * I), probs(std::size_t(T) * whole.k_max);
    sparse_attention_forward(expected.data(), probs.data(), Q.data(), K.data(), V.data(), whole, N, I,
                             Semantics::causal);
    SparseKeyStream stream(arch, in.num_buckets);
    for (int size : chunk_sizes(T)) {
      const int first = stream.position();
      const SparseKeys chunk = stream.advance(size, slice(in.view(), first, size));
      std::vector<float> out(std::size_t(size) * I), chunk_probs(std::size_t(size) * chunk.k_max);
      sparse_attention_forward(out.data(), chunk_probs.data(), Q.data() + std::size_t(first) * N, K.data(), V.data(),
                               chunk, N, I, Semantics::causal);
      for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], expected[std::size_t(first) * I + i]);
    }
  }
}

TEST(SparseAttention, AChunkUnderPaperSemanticsIsAnError) {
  const SparseArch arch = parse_sparse_arch("sliding_window", 4, 16);
  SparseKeyStream stream(arch, 0);
  stream.advance(3, {});
  const SparseKeys chunk = stream.advance(2, {});
  std::vector<float> Q(2), K(5), V(5), out(2), probs(std::size_t(2) * chunk.k_max);
  EXPECT_THROW(sparse_attention_forward(out.data(), probs.data(), Q.data(), K.data(), V.data(), chunk, 1, 1,
                                        Semantics::paper),
               Error);
}

TEST(KeySelectionFeatures, ContinuedChunksGiveTheCausalFeaturesBitForBit) {
  const int T = 40, N = 4, F = 2 * N;
  Rng rng(2);
  const std::vector<float> Q = random_floats(std::size_t(T) * N, rng), K = random_floats(std::size_t(T) * N, rng);
  std::vector<float> whole(std::size_t(T) * F), chunked(std::size_t(T) * F);
  key_selection_features(whole.data(), Q.data(), K.data(), T, N, Semantics::causal);
  std::vector<double> running(N, 0.0);
  int at = 0;
  for (int size : chunk_sizes(T)) {
    key_selection_features_continued(chunked.data() + std::size_t(at) * F, Q.data() + std::size_t(at) * N,
                                     K.data() + std::size_t(at) * N, size, N, running.data());
    at += size;
  }
  EXPECT_EQ(chunked, whole);
}

}  // namespace
}  // namespace hax::ops::sparse::testing
