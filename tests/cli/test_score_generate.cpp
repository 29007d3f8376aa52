// `hax score` and `hax generate` end to end: their figures and tokens are the library's (tests/inference), the JSON
// holds what the screen says, and bad input is one error line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../support/model_fixtures.h"
#include "cli_support.h"
#include "hax/inference/generate.h"
#include "hax/inference/score.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;

TEST(CliScore, FiguresAndBucketsAreTheLibrarysAndTheJsonHoldsThem) {
  const ScratchDir dir;
  const fs::path checkpoint = save_sparse_checkpoint(dir, ops::sparse::Semantics::causal);
  write_file(dir / "tokens.txt", "1 12 30 4 99 5 6 7 8 9 10 11\n1 7\n");
  const CommandResult r = run_hax(cat("score --checkpoint ", quoted(checkpoint), " --tokens ", quoted(dir / "tokens.txt"),
                                      " --chunk 5 --by-position 4 --threads 1 --json ", quoted(dir / "score.json")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto model = training::load_model(checkpoint);
  const inference::ScoreResult expected =
      inference::score_sequences(*model, {{1, 12, 30, 4, 99, 5, 6, 7, 8, 9, 10, 11}, {1, 7}}, {5, 4});
  const auto j = nlohmann::json::parse(read_file(dir / "score.json"));
  EXPECT_EQ(j.at("tokens_scored"), 12);
  EXPECT_NEAR(j.at("mean_nll").get<double>(), expected.mean_nll(), 1e-9);
  EXPECT_NEAR(j.at("perplexity").get<double>(), expected.perplexity(), 1e-9);
  ASSERT_EQ(j.at("by_position").size(), 3u);
  EXPECT_EQ(j.at("by_position")[0].at("tokens"), 3 + 1);  // positions 1-3 of the first sequence, 1 of the second
  EXPECT_EQ(j.at("by_position")[2].at("first_position"), 8);
  EXPECT_NE(r.out.find(cat("perplexity: ")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("positions 4-7: 4 tokens"), std::string::npos) << r.out;
}

TEST(CliScore, APaperModelOrABadTokenIsOneErrorLine) {
  const ScratchDir dir;
  write_file(dir / "tokens.txt", "1 2 3\n");
  const fs::path paper = save_sparse_checkpoint(dir, ops::sparse::Semantics::paper);
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("score --checkpoint ", quoted(paper), " --tokens ", quoted(dir / "tokens.txt"))), "causal"));
  const fs::path causal = save_sparse_checkpoint(dir, ops::sparse::Semantics::causal);
  write_file(dir / "bad.txt", "1 2 300\n");
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("score --checkpoint ", quoted(causal), " --tokens ", quoted(dir / "bad.txt"))),
      "line 1, token 3: id 300 is outside the checkpoint's vocabulary"));
}

TEST(CliGenerate, TokensAreTheLibrarysGreedyAndSampledContinuations) {
  const ScratchDir dir;
  const fs::path checkpoint = save_sparse_checkpoint(dir, ops::sparse::Semantics::causal);
  write_file(dir / "prompt.txt", "1 12 30 4 99\n");
  auto model = training::load_model(checkpoint);
  const std::vector<std::int32_t> prompt = {1, 12, 30, 4, 99};
  for (const auto& [flags, options] :
       {std::pair{std::string(""), inference::SamplingOptions{}},
        std::pair{std::string(" --temperature 0.8 --top-k 5 --seed 3"), inference::SamplingOptions{0.8, 5}}}) {
    const CommandResult r = run_hax(cat("generate --checkpoint ", quoted(checkpoint), " --prompt ",
                                        quoted(dir / "prompt.txt"), " --max-new 6 --chunk 2 --threads 1", flags));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string expected;
    for (const std::int32_t t : inference::generate(*model, prompt, 6, options, flags.empty() ? 1 : 3))
      expected += (expected.empty() ? "" : " ") + std::to_string(t);
    EXPECT_EQ(r.out, expected + "\n") << flags;
  }
}

TEST(CliGenerate, BadOptionsAndPromptsAreOneErrorLine) {
  const ScratchDir dir;
  const fs::path checkpoint = save_sparse_checkpoint(dir, ops::sparse::Semantics::causal);
  write_file(dir / "prompt.txt", "1 2\n");
  write_file(dir / "two.txt", "1 2\n3\n");
  const std::string base = cat("generate --checkpoint ", quoted(checkpoint), " --max-new 3 --prompt ");
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(base + quoted(dir / "prompt.txt") + " --temperature -1"), "--temperature"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(base + quoted(dir / "two.txt")), "holds 2 sequences"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(base + quoted(dir / "missing.txt")), "cannot open tokens file"));
}

// --save-state / --load-state: A then B from A's state scores what A + B scores, and generating 4 then 6 from the
// saved state prints the 10 tokens of one run.
TEST(CliScore, SavedStateContinuesTheSequence) {
  const ScratchDir dir;
  const fs::path checkpoint = save_sparse_checkpoint(dir, ops::sparse::Semantics::causal);
  const std::string a = "1 12 30 4 99 5 6 7 8 9 10 11", b = "3 3 50 2 7 61 8 9 20";
  write_file(dir / "a.txt", a + "\n");
  write_file(dir / "b.txt", b + "\n");
  write_file(dir / "ab.txt", a + " " + b + "\n");
  const std::string base = cat("score --checkpoint ", quoted(checkpoint), " --chunk 4 --threads 1 --tokens ");
  const auto score = [&](const std::string& tokens, const std::string& flags, const std::string& json) {
    const CommandResult r = run_hax(base + quoted(dir / tokens) + flags + " --json " + quoted(dir / json));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(read_file(dir / json));
  };
  const auto whole = score("ab.txt", "", "ab.json");
  const auto first = score("a.txt", cat(" --save-state ", quoted(dir / "a.state")), "a.json");
  const auto second = score("b.txt", cat(" --load-state ", quoted(dir / "a.state")), "b.json");
  EXPECT_EQ(first.at("tokens_scored"), 11);
  EXPECT_EQ(second.at("tokens_scored"), 9);  // B's first token too, from A's last logits
  const auto sum = [](const nlohmann::json& j) { return j.at("mean_nll").get<double>() * j.at("tokens_scored").get<double>(); };
  EXPECT_NEAR(sum(first) + sum(second), sum(whole), 1e-12 * sum(whole));
}

TEST(CliGenerate, SavedStateContinuesTheDraws) {
  const ScratchDir dir;
  const fs::path checkpoint = save_sparse_checkpoint(dir, ops::sparse::Semantics::causal);
  write_file(dir / "prompt.txt", "1 12 30 4 99\n");
  const std::string base = cat("generate --checkpoint ", quoted(checkpoint),
                               " --temperature 0.8 --top-k 5 --chunk 2 --threads 1");
  const CommandResult whole = run_hax(cat(base, " --seed 3 --prompt ", quoted(dir / "prompt.txt"), " --max-new 10"));
  const CommandResult first = run_hax(cat(base, " --seed 3 --prompt ", quoted(dir / "prompt.txt"), " --max-new 4 --save-state ",
                                          quoted(dir / "g.state")));
  const CommandResult second = run_hax(cat(base, " --load-state ", quoted(dir / "g.state"), " --max-new 6 --seed 77"));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(second.exit_code, 0) << second.err;
  // The state carries the generator: the second run's --seed does not count.
  EXPECT_EQ(first.out.substr(0, first.out.size() - 1) + " " + second.out, whole.out);
}

TEST(CliScore, AStateOfAnotherCheckpointOrABrokenOneIsOneErrorLine) {
  const ScratchDir dir;
  const fs::path checkpoint = save_sparse_checkpoint(dir, ops::sparse::Semantics::causal);
  write_file(dir / "a.txt", "1 12 30 4 99 5 6 7\n");
  const fs::path state = dir / "a.state";
  ASSERT_EQ(run_hax(cat("score --checkpoint ", quoted(checkpoint), " --tokens ", quoted(dir / "a.txt"),
                        " --save-state ", quoted(state))).exit_code, 0);
  // The same config with other weights, and another model.
  auto model = training::load_model(checkpoint);
  perturb_parameters(*model, 5);
  training::save_model(dir / "other_weights", *model);
  const fs::path other_model = save_untrained_checkpoint(dir);
  const auto load = [&](const fs::path& from, const fs::path& file) {
    return run_hax(cat("score --checkpoint ", quoted(from), " --tokens ", quoted(dir / "a.txt"), " --load-state ",
                       quoted(file)));
  };
  const auto refused = [&](const CommandResult& r, const std::string& reason) {
    EXPECT_TRUE(FailsWithOneErrorLine(r, state.string()));
    EXPECT_NE(r.err.find(reason), std::string::npos) << r.err;
  };
  refused(load(dir / "other_weights", state), "other weights");
  refused(load(other_model, state), "another model or config");
  const std::string bytes = read_file(state);
  write_file(state, bytes.substr(0, bytes.size() - 10));
  refused(load(checkpoint, state), "truncated");
  write_file(state, "not a state at all\n");
  refused(load(checkpoint, state), "bad magic");
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("generate --checkpoint ", quoted(checkpoint), " --max-new 2 --load-state ", quoted(state))),
      state.string()));
}

}  // namespace
}  // namespace hax::testing
