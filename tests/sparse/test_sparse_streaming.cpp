// The sparse ops run chunk by chunk (streaming inference): the key stream, attention over a chunk's queries with
// keys at positions of the whole sequence, and the continued key-selection features each give, for any split of
// a sequence into chunks, exactly what one call over the whole sequence gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "hax/engine/error.h"
#include "hax/ops/sparse/key_scorer.h"
#include "hax/ops/sparse/key_value_cache.h"
#include "hax/ops/sparse/sparse_attention.h"
#include "hax/ops/sparse/sparse_attention_ref.h"
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

namespace hax::ops::sparse::testing {
namespace {

// Every arch under test and two unions of three patterns.
std::vector<std::string> archs_with_unions_of_three() {
  std::vector<std::string> names = archs_under_test();
  names.push_back("sliding_window+sign_bin_lsh+key_selection");
  names.push_back("sink+argmax_lsh+dilated");
  return names;
}

bool grows(const SparseArch& arch) { return arch.has(Pattern::full) || arch.has(Pattern::dilated); }

// The most positions the arch's patterns can hold after `t` positions: what the cache may keep.
int hold_bound(const SparseArch& arch, int num_buckets, int t) {
  int bound = 0;
  for (Pattern p : arch.patterns) {
    const bool lsh = p == Pattern::sign_bin_lsh || p == Pattern::argmax_lsh;
    bound += p == Pattern::full ? t : p == Pattern::dilated ? t / arch.dilation : lsh ? num_buckets * arch.budget
                                                                                      : arch.budget;
  }
  return std::min(bound, t);
}

// Random buckets, and scores that drift upwards under their noise, so that newcomers keep entering the top-w and
// pushing keys out of it for as long as the sequence runs.
OwnedPatternInputs drifting_pattern_inputs(int T, int num_buckets, Rng rng) {
  OwnedPatternInputs r = random_pattern_inputs(T, num_buckets, 2, rng.fork(1));
  for (int t = 0; t < T; ++t) r.score[t] = float(rng.normal()) + 0.01f * float(t);
  return r;
}

// The last query that lists each position (-1: none), from the lists of the whole sequence.
std::vector<int> last_use(const SparseKeys& whole) {
  std::vector<int> last(whole.T, -1);
  for (int t = 0; t < whole.T; ++t)
    for (std::int32_t s : whole.keys_of(t)) last[s] = t;
  return last;
}

// Streaming inference's path (layers/sparse_branch.cpp) over a sequence long enough for every bounded pattern to
// let go of many keys (8 keys, 4 buckets: rings of 8 or fewer that wrap within a few dozen positions, a top-w that
// keeps changing): chunks of 1, 7 and 64 give the rows of the whole sequence bit for bit, fast kernel and
// reference alike, and the cache keeps every position a later query lists and no more than the patterns can hold.
TEST(KeyValueCache, AttentionOverItsSlotsGivesTheRowsOfTheWholeSequence) {
  const int T = 400, N = 3, I = 5, buckets = 4;
  Rng rng(13);
  const std::vector<float> Q = random_floats(std::size_t(T) * N, rng), K = random_floats(std::size_t(T) * N, rng),
                           V = random_floats(std::size_t(T) * I, rng);
  for (const std::string& name : archs_with_unions_of_three()) {
    SCOPED_TRACE(name);
    const SparseArch arch = parse_sparse_arch(name, 8, 32);
    const OwnedPatternInputs in = drifting_pattern_inputs(T, buckets, Rng(21));
    const SparseKeys whole = build_sparse_keys(arch, T, in.view());
    const std::vector<int> last = last_use(whole);
    std::vector<float> expected(std::size_t(T) * I), expected_ref(expected.size()), probs(std::size_t(T) * whole.k_max);
    sparse_attention_forward(expected.data(), probs.data(), Q.data(), K.data(), V.data(), whole, N, I,
                             Semantics::causal);
    ref::sparse_attention_forward(expected_ref.data(), probs.data(), Q.data(), K.data(), V.data(), whole, N, I,
                                  Semantics::causal);
    for (int chunk : {1, 7, 64}) {
      SCOPED_TRACE(cat("chunks of ", chunk));
      SparseKeyStream stream(arch, in.num_buckets);
      KeyValueCache cache(N, I);
      SparseKeys keys;
      KeyHolds holds;
      int max_slots = 0;
      std::size_t released = 0;
      for (int first = 0; first < T; first += chunk) {
        const int size = std::min(chunk, T - first);
        for (int t = first; t < first + size; ++t)
          cache.append(t, K.data() + std::size_t(t) * N, V.data() + std::size_t(t) * I);
        stream.advance(size, slice(in.view(), first, size), keys, holds);
        cache.to_slots(keys);
        ASSERT_EQ(keys.slot_rows, cache.slots());
        std::vector<float> out(std::size_t(size) * I), out_ref(out.size()), p(std::size_t(size) * keys.k_max);
        sparse_attention_forward(out.data(), p.data(), Q.data() + std::size_t(first) * N, cache.keys(),
                                 cache.values(), keys, N, I, Semantics::causal);
        ref::sparse_attention_forward(out_ref.data(), p.data(), Q.data() + std::size_t(first) * N, cache.keys(),
                                      cache.values(), keys, N, I, Semantics::causal);
        for (std::size_t i = 0; i < out.size(); ++i) {
          ASSERT_EQ(out[i], expected[std::size_t(first) * I + i]) << "row " << first + int(i) / I;
          ASSERT_EQ(out_ref[i], expected_ref[std::size_t(first) * I + i]) << "row " << first + int(i) / I;
        }
        cache.apply(holds, first);
        released += holds.released.size();
        const int next = first + size;
        for (int s = 0; s < next; ++s)
          if (last[s] >= next) ASSERT_TRUE(cache.keeps(s)) << "position " << s << " (query " << last[s] << ")";
        ASSERT_LE(cache.held(), hold_bound(arch, buckets, next)) << "after " << next;
        max_slots = std::max(max_slots, cache.slots());
      }
      EXPECT_LE(max_slots, hold_bound(arch, buckets, T) + chunk);
      if (!grows(arch)) EXPECT_LT(cache.held(), T / 4) << "the bounded patterns let go of most positions";
      if (name == "key_selection") EXPECT_GT(released, std::size_t(T / 8)) << "the top-w changed that often";
    }
  }
}

// What decoding does per position: one position through the stream and the cache, keys and values of width 1.
class DecodingCache {
 public:
  DecodingCache(const SparseArch& arch, int num_buckets)
      : stream_(arch, num_buckets), cache_(1, 1), num_buckets_(num_buckets), rng_(3) {}

  void decode(int positions) {
    for (int i = 0; i < positions; ++i) {
      const int t = stream_.position();
      const std::int32_t b[4] = {bucket(), bucket(), bucket(), bucket()};
      const float score = float(rng_.normal()) + 0.01f * float(t), row = float(t);
      const PatternInputs in{{b, 1}, {b + 1, 1}, {b + 2, 1}, {b + 3, 1}, num_buckets_, {&score, 1}};
      cache_.append(t, &row, &row);
      stream_.advance(1, in, keys_, holds_);
      cache_.to_slots(keys_);
      cache_.apply(holds_, t);
    }
  }
  const KeyValueCache& cache() const { return cache_; }

 private:
  std::int32_t bucket() { return std::int32_t(rng_.below(num_buckets_)); }

  SparseKeyStream stream_;
  KeyValueCache cache_;
  SparseKeys keys_;
  KeyHolds holds_;
  int num_buckets_;
  Rng rng_;
};

// The bounded state of the issue: a bounded pattern's cache holds and reserves after 100k decoded positions what it
// did after 10k; `full` keeps every position, `dilated` one in `dilation`.
TEST(KeyValueCache, ABoundedPatternsCacheStopsGrowing) {
  const int buckets = 4;
  for (const std::string& name : archs_with_unions_of_three()) {
    SCOPED_TRACE(name);
    const SparseArch arch = parse_sparse_arch(name, 8, 32);
    DecodingCache decoding(arch, buckets);
    if (grows(arch)) {  // every list holds t / dilation or t keys: 4k positions say enough
      decoding.decode(2000);
      const int held = decoding.cache().held();
      decoding.decode(2000);
      EXPECT_GT(decoding.cache().held(), held);
      if (name == "full") EXPECT_EQ(decoding.cache().held(), 4000);
      if (name == "dilated") EXPECT_EQ(decoding.cache().held(), 4000 / arch.dilation);
      continue;
    }
    decoding.decode(10'000);
    const int slots = decoding.cache().slots();
    const std::size_t bytes = decoding.cache().bytes();
    decoding.decode(90'000);
    EXPECT_EQ(decoding.cache().slots(), slots);
    EXPECT_EQ(decoding.cache().bytes(), bytes);
    EXPECT_LE(slots, hold_bound(arch, buckets, 100'000) + 1);
    EXPECT_LE(decoding.cache().held(), hold_bound(arch, buckets, 100'000));
  }
}

TEST(KeyValueCache, SlotRowsRefuseTheBackward) {
  SparseKeyStream stream(parse_sparse_arch("sliding_window", 4, 16), 0);
  KeyValueCache cache(1, 1);
  SparseKeys keys;
  KeyHolds holds;
  const float row = 1.0f;
  cache.append(0, &row, &row);
  stream.advance(1, {}, keys, holds);
  cache.to_slots(keys);
  float dQ = 0, dK = 0, dV = 0, dout = 1, probs = 1;
  EXPECT_THROW(sparse_attention_backward(&dQ, &dK, &dV, &dout, &probs, &row, &row, &row, keys, 1, 1,
                                         Semantics::causal),
               Error);
  EXPECT_THROW(cache.to_slots(keys), Error);  // already slot rows
}

TEST(KeyValueCache, APositionNoPatternHoldsIsNotKept) {
  // dilated with dilation 4 lists 3, 7, ...: position 0 serves no query after its own.
  SparseKeyStream stream(parse_sparse_arch("dilated", 4, 16), 0);
  KeyValueCache cache(1, 1);
  SparseKeys keys;
  KeyHolds holds;
  const float row = 1.0f;
  for (int t = 0; t < 8; ++t) {
    cache.append(t, &row, &row);
    stream.advance(1, {}, keys, holds);
    cache.to_slots(keys);
    cache.apply(holds, t);
  }
  EXPECT_EQ(cache.held(), 2);
  EXPECT_TRUE(cache.keeps(3));
  EXPECT_TRUE(cache.keeps(7));
  EXPECT_FALSE(cache.keeps(0));
  EXPECT_EQ(cache.slots(), 1 + 1);  // position 3 in one slot; the others passed through the second
}

}  // namespace
}  // namespace hax::ops::sparse::testing
