// `hax score` and `hax generate` end to end: their figures and tokens are the library's (tests/inference), the JSON
// holds what the screen says, and bad input is one error line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

}  // namespace
}  // namespace hax::testing
