// Property 3 of `causal` (shared/spec/semantics.md), "one model, three ways to run it": for Mamba and Mamba2, plain
// and with every sparse arch, and for Samba, the parallel forward over a whole sequence (Model::logits), a prefill in
// chunks of any size, and decoding token by token from a saved state give the same logits up to float rounding. Plus: a state is a value
// (a copy continues on its own), and `paper` refuses to stream.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "../support/model_fixtures.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/models/model.h"

namespace hax::models {
namespace {

ModelConfig streaming_config(const std::string& arch) { return testing::tiny_sparse_config(arch); }

void perturb(Model& model) { testing::perturb_parameters(model); }

// The logits of tokens[from, to) fed to `state` in chunks of `chunk` (a chunk of 1 is decoding), appended to out.
void feed(Model& model, ModelState& state, std::span<const std::int32_t> tokens, int chunk,
          std::vector<float>& out) {
  for (std::size_t at = 0; at < tokens.size(); at += chunk) {
    const auto part = tokens.subspan(at, std::min<std::size_t>(chunk, tokens.size() - at));
    const std::vector<float> logits =
        part.size() == 1 ? model.decode(state, part[0]) : model.prefill(state, part);
    out.insert(out.end(), logits.begin(), logits.end());
  }
}

// Equal up to float rounding: |a - b| <= 1e-5 times the largest reference logit.
void expect_same_logits(const std::vector<float>& got, const std::vector<float>& expected, const std::string& what) {
  ASSERT_EQ(got.size(), expected.size()) << what;
  float scale = 0;
  for (float v : expected) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], expected[i], 1e-5f * scale) << what << ": logit " << i;
}

class StreamingTest : public ::testing::TestWithParam<testing::BaseArch> {};

ModelConfig streaming_config(const testing::BaseArch& case_) {
  return testing::tiny_config(case_.first, case_.second);
}

TEST_P(StreamingTest, ChunkedPrefillMatchesTheParallelForward) {
  Model model(streaming_config(GetParam()));
  perturb(model);
  const std::vector<std::int32_t> tokens = testing::random_tokens(40, model.config().vocab_size, 3);
  const std::vector<float> expected = testing::parallel_logits(model, tokens);
  for (int chunk : {1, 3, 7, 40}) {
    ModelState state = model.start_state();
    std::vector<float> got;
    feed(model, state, tokens, chunk, got);
    expect_same_logits(got, expected, cat("chunks of ", chunk));
    EXPECT_EQ(state.position, 40);
  }
}

TEST_P(StreamingTest, DecodingAfterAPrefillMatchesTheParallelForward) {
  Model model(streaming_config(GetParam()));
  perturb(model);
  const std::vector<std::int32_t> tokens = testing::random_tokens(40, model.config().vocab_size, 4);
  const std::vector<float> expected = testing::parallel_logits(model, tokens);
  ModelState state = model.start_state();
  std::vector<float> got;
  const std::span<const std::int32_t> all(tokens);
  feed(model, state, all.first(11), 11, got);
  feed(model, state, all.subspan(11), 1, got);
  expect_same_logits(got, expected, "prefill 11, then decode");
}

TEST_P(StreamingTest, ACopiedStateContinuesIdentically) {
  Model model(streaming_config(GetParam()));
  perturb(model);
  const std::vector<std::int32_t> tokens = testing::random_tokens(40, model.config().vocab_size, 6);
  const std::span<const std::int32_t> all(tokens);
  ModelState state = model.start_state();
  std::vector<float> prefix;
  feed(model, state, all.first(17), 17, prefix);
  const ModelState saved = state;
  std::vector<float> from_state, from_copy, from_second_copy;
  feed(model, state, all.subspan(17), 1, from_state);  // advancing the original leaves the copy alone
  ModelState copy = saved;
  feed(model, copy, all.subspan(17), 1, from_copy);
  ModelState second = saved;
  feed(model, second, all.subspan(17), 5, from_second_copy);
  EXPECT_EQ(from_copy, from_state);  // the same operations on the same state: the same bits
  expect_same_logits(from_second_copy, from_state, "copy continued in chunks of 5");
  std::vector<float> whole = prefix;
  whole.insert(whole.end(), from_copy.begin(), from_copy.end());
  expect_same_logits(whole, testing::parallel_logits(model, tokens), "prefix + copy");
}

INSTANTIATE_TEST_SUITE_P(Models, StreamingTest, ::testing::ValuesIn(testing::all_base_archs()),
                         [](const auto& info) { return testing::base_arch_identifier(info.param); });

// Sequences long enough for the bounded caches to let go of most keys (8 keys: windows of 8 or fewer, rings of 8 or
// fewer in 8 sign-bin or 3 argmax buckets, a top-w that changes as the scores move): the parallel forward, a prefill
// in chunks of 7 or 64 and decoding still agree, for every arch and two unions of three patterns.
class LongStreamingTest : public ::testing::TestWithParam<testing::BaseArch> {};

TEST_P(LongStreamingTest, StreamingAfterTheCacheLetGoOfKeysMatchesTheParallelForward) {
  const int T = 300;
  Model model(streaming_config(GetParam()));
  perturb(model);
  const std::vector<std::int32_t> tokens = testing::random_tokens(T, model.config().vocab_size, 8);
  const std::vector<float> expected = testing::parallel_logits(model, tokens);
  for (int chunk : {1, 7, 64}) {
    ModelState state = model.start_state();
    std::vector<float> got;
    feed(model, state, tokens, chunk, got);
    expect_same_logits(got, expected, cat("chunks of ", chunk));
    const ops::sparse::SparseArch& arch = state.blocks[0].sparse->keys.arch();
    if (!arch.has(ops::sparse::Pattern::full) && !arch.has(ops::sparse::Pattern::dilated))
      for (const layers::MixerState& layer : state.blocks) EXPECT_LT(layer.sparse->cache.held(), T / 2);
  }
}

std::vector<testing::BaseArch> long_streaming_cases() {
  std::vector<testing::BaseArch> cases;
  for (const char* base : {"mamba", "mamba2"}) {
    for (const std::string& arch : testing::all_sparse_archs()) cases.push_back({base, arch});
    cases.push_back({base, "sliding_window+sign_bin_lsh+key_selection"});
    cases.push_back({base, "sink+argmax_lsh+dilated"});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Models, LongStreamingTest, ::testing::ValuesIn(long_streaming_cases()),
                         [](const auto& info) { return testing::base_arch_identifier(info.param); });

// A decoded Mamba token runs fused in one parallel region (layers/mamba_token.cpp) where the layer is wide enough to
// share out; the tiny configs above stay on one thread. At a wide shape, with biases, plain and with HAX, at one
// and two threads: decoding equals the parallel forward.
TEST(Streaming, DecodingAWideMambaOnTwoThreadsMatchesTheParallelForward) {
  const int threads_before = num_threads();
  for (const std::string arch : {"", "sign_bin_lsh+key_selection"})
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      ModelConfig config = testing::tiny_config("mamba", arch);
      config.hidden_size = 256, config.intermediate_size = 512, config.use_bias = true;
      Model model(config);
      perturb(model);
      const std::vector<std::int32_t> tokens = testing::random_tokens(24, config.vocab_size, 5);
      const std::vector<float> expected = testing::parallel_logits(model, tokens);
      ModelState state = model.start_state();
      std::vector<float> got;
      feed(model, state, tokens, 1, got);
      expect_same_logits(got, expected, cat("arch '", arch, "', ", threads, " thread(s)"));
    }
  set_num_threads(threads_before);
}

TEST(Streaming, TheStateHoldsAKeyValueCacheAndAConstantSizeRest) {
  Model model(streaming_config("sign_bin_lsh+key_selection"));
  perturb(model);
  ModelState state = model.start_state();
  model.prefill(state, testing::random_tokens(13, model.config().vocab_size, 1));
  model.decode(state, 4);
  ASSERT_EQ(state.blocks.size(), 2u);
  const layers::MixerState& layer = state.blocks[1];
  EXPECT_EQ(state.position, 14);
  EXPECT_EQ(layer.conv_tail.size(), 3u * 16);  // (K-1, I)
  EXPECT_EQ(layer.h.size(), 16u * 4);          // (I, N)
  ASSERT_TRUE(layer.sparse.has_value());
  EXPECT_EQ(layer.sparse->position(), 14);
  // 8 keys over 2 patterns: 8 sign-bin buckets of 4 and a top-4. Of 14 positions the cache keeps those still held.
  EXPECT_LE(layer.sparse->cache.held(), 14);
  EXPECT_GE(layer.sparse->cache.held(), 4);
  EXPECT_GE(layer.sparse->cache.slots(), layer.sparse->cache.held());
  EXPECT_FALSE(Model(streaming_config("")).start_state().blocks[0].sparse.has_value());
}

TEST(Streaming, PaperSemanticsRefusesToStream) {
  ModelConfig c = streaming_config("sign_bin_lsh+key_selection");
  c.semantics = ops::sparse::Semantics::paper;
  const Model model(c);
  try {
    model.start_state();
    FAIL() << "start_state accepted `paper` semantics";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("causal"), std::string::npos) << e.what();
  }
}

TEST(Streaming, LshProjectionsRedrawnEveryForwardRefuseToStream) {
  ModelConfig c = streaming_config("sign_bin_lsh");
  c.lsh_resample = "every_forward";
  EXPECT_THROW(Model(c).start_state(), Error);
  c.lsh_resample = "training";  // evaluation, and so inference, uses the saved projections
  EXPECT_NO_THROW(Model(c).start_state());
}

TEST(Streaming, PlainMambaStreamsUnderEitherSemantics) {
  ModelConfig c = streaming_config("");
  c.semantics = ops::sparse::Semantics::paper;  // nothing in plain Mamba looks ahead
  Model model(c);
  perturb(model);
  const std::vector<std::int32_t> tokens = testing::random_tokens(20, c.vocab_size, 9);
  ModelState state = model.start_state();
  std::vector<float> got;
  feed(model, state, tokens, 3, got);
  expect_same_logits(got, testing::parallel_logits(model, tokens), "plain Mamba, paper");
}

}  // namespace
}  // namespace hax::models
