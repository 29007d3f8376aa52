// Saved streaming state (inference/state_file.h): save after a prefix, load, continue == one stream that never
// stopped, bit for bit, for every kind of state; and a file that is not this model's state is refused by name.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "../support/expect_error.h"
#include "../support/model_fixtures.h"
#include "../support/test_support.h"
#include "hax/engine/error.h"
#include "hax/inference/generate.h"
#include "hax/inference/logit_stream.h"
#include "hax/inference/score.h"
#include "fuzz/readers.h"
#include "hax/inference/state_file.h"

namespace hax::inference {
namespace {

using models::Model;
namespace fs = std::filesystem;

std::unique_ptr<Model> model_of(const std::string& base, const std::string& arch, std::uint64_t seed = 17) {
  auto model = std::make_unique<Model>(testing::tiny_config(base, arch));
  testing::perturb_parameters(*model, seed);
  return model;
}

// The logits of `tokens` fed in chunks of `chunk` to `stream`.
std::vector<float> feed(LogitStream& stream, std::span<const std::int32_t> tokens, int chunk) {
  std::vector<float> out;
  for (std::size_t at = 0; at < tokens.size(); at += std::size_t(chunk)) {
    const auto logits = stream.feed(tokens.subspan(at, std::min(tokens.size() - at, std::size_t(chunk))));
    out.insert(out.end(), logits.begin(), logits.end());
  }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Case {
  const char* base;
  const char* arch;
};

class StateFileContinues : public ::testing::TestWithParam<Case> {};

TEST_P(StateFileContinues, BitForBitAsAStreamThatNeverStopped) {
  const auto [base, arch] = GetParam();
  auto model = model_of(base, arch);
  const int V = model->config().vocab_size;
  // 8 keys: 70 tokens wrap every LSH ring and change the top-w many times before the save at 42.
  const std::vector<std::int32_t> tokens = testing::random_tokens(70, V, 5);
  const testing::ScratchDir dir;
  for (const int chunk : {1, 7}) {
    LogitStream whole(*model);
    const std::vector<float> expected = feed(whole, tokens, chunk);

    LogitStream first(*model);
    const std::vector<float> head = feed(first, std::span(tokens).first(42), chunk);
    const std::string path = (dir / "state.bin").string();
    save_state_file(path, *model, {first.state(), std::vector<float>(head.end() - V, head.end()), std::nullopt});
    SavedStream loaded = load_state_file(path, *model);
    EXPECT_EQ(loaded.state.position, 42);
    EXPECT_TRUE(same_bits(loaded.next_logits, std::vector<float>(head.end() - V, head.end())));
    // Saving what was loaded gives the same bytes: the format is canonical.
    save_state_file((dir / "again.bin").string(), *model, loaded);
    EXPECT_EQ(testing::read_file(dir / "again.bin"), testing::read_file(path));

    LogitStream second(*model, std::move(loaded.state));
    std::vector<float> got = head;
    const std::vector<float> tail = feed(second, std::span(tokens).subspan(42), chunk);
    got.insert(got.end(), tail.begin(), tail.end());
    EXPECT_TRUE(same_bits(got, expected)) << base << " " << arch << " chunk " << chunk;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, StateFileContinues,
                         ::testing::Values(Case{"mamba", "sign_bin_lsh+key_selection"},
                                           Case{"mamba", "sign_bin_lsh+key_selection@running"},
                                           Case{"mamba", "argmax_lsh+sink"}, Case{"mamba", "sliding_window"},
                                           Case{"mamba", "full"}, Case{"mamba", "dilated"}, Case{"mamba", ""},
                                           Case{"mamba2", ""}, Case{"mamba2", "sign_bin_lsh+key_selection"},
                                           Case{"samba", ""}),
                         [](const auto& info) {
                           return testing::base_arch_identifier({info.param.base, info.param.arch});
                         });

TEST(StateFile, ScoringAThenBFromItsStateScoresAPlusB) {
  auto model = model_of("mamba", "sign_bin_lsh+key_selection");
  const std::vector<std::int32_t> all = testing::random_tokens(50, model->config().vocab_size, 6);
  const std::vector<std::int32_t> a(all.begin(), all.begin() + 30), b(all.begin() + 30, all.end());
  const ScoreResult whole = score_sequences(*model, {all}, {1, 16});
  const testing::ScratchDir dir;
  SavedStream stream = start_stream(*model);
  const ScoreResult first = score_stream(*model, stream, a, {1, 16});
  save_state_file((dir / "a.state").string(), *model, stream);
  SavedStream loaded = load_state_file((dir / "a.state").string(), *model);
  const ScoreResult second = score_stream(*model, loaded, b, {1, 16});
  EXPECT_EQ(first.tokens + second.tokens, whole.tokens);
  EXPECT_NEAR(first.nll_sum + second.nll_sum, whole.nll_sum, 1e-12 * whole.nll_sum);
  // Buckets count positions from the sequence's start: position 30 is in bucket 1 either way.
  for (std::size_t k = 0; k < whole.bucket_tokens.size(); ++k) {
    const auto n = [&](const ScoreResult& r) { return k < r.bucket_tokens.size() ? r.bucket_tokens[k] : 0; };
    EXPECT_EQ(n(first) + n(second), whole.bucket_tokens[k]) << k;
  }
}

TEST(StateFile, GeneratingAThenBFromItsStateGeneratesAPlusB) {
  auto model = model_of("mamba", "sign_bin_lsh+key_selection");
  const std::vector<std::int32_t> prompt = testing::random_tokens(13, model->config().vocab_size, 7);
  const SamplingOptions sampled{1.0, 5};
  for (const SamplingOptions& o : {SamplingOptions{}, sampled}) {
    const std::vector<std::int32_t> whole = generate(*model, prompt, 30, o, 9, 4);
    const testing::ScratchDir dir;
    SavedStream stream = start_stream(*model);
    std::vector<std::int32_t> got = generate_stream(*model, stream, prompt, 12, o, 9, 4);
    save_state_file((dir / "g.state").string(), *model, stream);
    SavedStream loaded = load_state_file((dir / "g.state").string(), *model);
    ASSERT_TRUE(loaded.rng.has_value());
    const std::vector<std::int32_t> rest = generate_stream(*model, loaded, {}, 18, o, 12345, 4);
    got.insert(got.end(), rest.begin(), rest.end());
    EXPECT_EQ(got, whole) << "temperature " << o.temperature;
  }
}

TEST(StateFile, RefusesAnotherModelOtherWeightsAndBadFilesByName) {
  auto model = model_of("mamba", "sign_bin_lsh+key_selection");
  const testing::ScratchDir dir;
  const std::string path = (dir / "s.state").string();
  SavedStream stream = start_stream(*model);
  (void)score_stream(*model, stream, testing::random_tokens(40, model->config().vocab_size, 8), {7, 0});
  save_state_file(path, *model, stream);
  const std::string bytes = testing::read_file(path);

  auto other_weights = model_of("mamba", "sign_bin_lsh+key_selection", 99);
  testing::expect_error_naming([&] { load_state_file(path, *other_weights); }, {path, "other weights"});
  auto other_arch = model_of("mamba", "sliding_window");
  testing::expect_error_naming([&] { load_state_file(path, *other_arch); }, {path, "another model or config"});
  Model paper(testing::tiny_config("mamba", "sign_bin_lsh+key_selection", ops::sparse::Semantics::paper));
  testing::expect_error_naming([&] { load_state_file(path, paper); }, {path});

  // Cut anywhere: refused, never read past the end.
  for (std::size_t keep : {std::size_t(0), std::size_t(5), std::size_t(20), std::size_t(100), bytes.size() / 2,
                           bytes.size() - 1}) {
    testing::write_file(path, bytes.substr(0, keep));
    testing::expect_error_naming([&] { load_state_file(path, *model); }, {path});
  }
  testing::write_file(path, "garbage, not a state file at all");
  testing::expect_error_naming([&] { load_state_file(path, *model); }, {path, "bad magic"});
  std::string version = bytes;
  version[8] = 2;
  testing::write_file(path, version);
  testing::expect_error_naming([&] { load_state_file(path, *model); }, {path, "version 2"});
  std::string flipped = bytes;
  flipped[bytes.size() - 12] ^= 0x40;  // the last query sum (the file ends with an empty array of LSH sums)
  testing::write_file(path, flipped);
  testing::expect_error_naming([&] { load_state_file(path, *model); }, {path, "altered"});
  testing::expect_error_naming([&] { load_state_file((dir / "missing").string(), *model); }, {"missing"});
}

// The fuzz target's model (fuzz/readers.h) is described by hand: a real model of that shape writes a state it reads.
// With HAX_FUZZ_STATE_SEED=FILE (fuzz/make_corpus.sh) the state is also written there, as the target's seed.
TEST(StateFile, FuzzSeedIsARealModelsState) {
  models::ModelConfig c;
  c.vocab_size = 24;
  c.hidden_size = 4;
  c.intermediate_size = 8;
  c.state_size = 2;
  c.time_step_rank = 1;
  c.num_hidden_layers = 1;
  c.conv_kernel = 2;
  c.sparse_arch = "sign_bin_lsh+key_selection";
  c.sparse_keys = 4;
  c.num_hash = 2;
  Model model(c);
  StateShape shape = state_shape(model);
  shape.config = fuzz::fuzz_state_shape().config;
  shape.weights_hash = fuzz::fuzz_state_shape().weights_hash;
  SavedStream stream = start_stream(model);
  (void)score_stream(model, stream, testing::random_tokens(12, 24, 3), {5, 0});
  const testing::ScratchDir dir;
  const char* seed = std::getenv("HAX_FUZZ_STATE_SEED");
  const std::string path = seed ? std::string(seed) : (dir / "seed.state").string();
  save_state_file(path, shape, stream);
  fuzz::read_state_file(path);
}

}  // namespace
}  // namespace hax::inference
