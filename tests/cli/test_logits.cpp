// `hax logits` end to end: the .npy it writes has shape (sequences, longest length, vocab), holds exactly what
// Model::logits gives for each sequence in-process, and zeros past the end of the shorter sequences; with
// --chunk N (streaming inference) the same logits up to float rounding, and one error line for a `paper` model.
#include <gtest/gtest.h>

#include "cli_support.h"
#include "hax/io/npy.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;

TEST(CliLogits, MatchTheModelInProcessWithZeroPadding) {
  const ScratchDir dir;
  const fs::path checkpoint = save_untrained_checkpoint(dir);
  const std::vector<std::vector<std::int32_t>> sequences = {{1, 12, 30, 4, 99}, {1, 7}, {0, 15, 15, 42, 3, 8, 11}};
  // Trailing spaces and a missing final newline are fine; --batch-size 2 splits the three sequences in two runs.
  write_file(dir / "tokens.txt", "1 12 30 4 99\n1  7 \n0 15 15 42 3 8 11");
  const CommandResult r = run_hax(cat("logits --checkpoint ", quoted(checkpoint), " --tokens ",
                                      quoted(dir / "tokens.txt"), " --out ", quoted(dir / "logits.npy"),
                                      " --batch-size 2 --threads 1"));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const auto logits = io::load_npy<float>(dir / "logits.npy");
  const std::size_t positions = 7, vocab = 100;
  ASSERT_EQ(logits.shape, (std::vector<std::int64_t>{3, 7, 100}));
  auto model = training::load_model(checkpoint);
  for (std::size_t s = 0; s < sequences.size(); ++s) {
    const std::vector<float> expected = parallel_logits(*model, sequences[s]);
    const float* got = logits.values.data() + s * positions * vocab;
    for (std::size_t i = 0; i < expected.size(); ++i)
      ASSERT_FLOAT_EQ(got[i], expected[i]) << "sequence " << s << " value " << i;
    for (std::size_t i = expected.size(); i < positions * vocab; ++i)
      ASSERT_EQ(got[i], 0.0f) << "padding of sequence " << s << " at " << i;
  }
}

io::NpyArray<float> logits_with(const ScratchDir& dir, const fs::path& checkpoint, const std::string& flags) {
  const fs::path out = dir / "logits.npy";
  const CommandResult r = run_hax(cat("logits --checkpoint ", quoted(checkpoint), " --tokens ",
                                      quoted(dir / "tokens.txt"), " --out ", quoted(out), " ", flags));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return io::load_npy<float>(out);
}

TEST(CliLogits, StreamingInChunksMatchesTheParallelForward) {
  const ScratchDir dir;
  const fs::path checkpoint = save_sparse_checkpoint(dir, ops::sparse::Semantics::causal);
  write_file(dir / "tokens.txt", "1 12 30 4 99 5 5 61 7 8 13 40 2\n1 7\n0 15 15 42 3 8 11 19 23 9 9 9 50 51 52 3\n");
  const auto parallel = logits_with(dir, checkpoint, "");
  float scale = 0;
  for (float v : parallel.values) scale = std::max(scale, std::abs(v));
  for (const char* chunk : {"--chunk 1", "--chunk 3", "--chunk 40"}) {
    const auto streamed = logits_with(dir, checkpoint, chunk);
    ASSERT_EQ(streamed.shape, parallel.shape) << chunk;
    for (std::size_t i = 0; i < parallel.values.size(); ++i)
      ASSERT_NEAR(streamed.values[i], parallel.values[i], 1e-5f * scale) << chunk << " value " << i;
  }
}

TEST(CliLogits, StreamingAPaperModelIsOneErrorLine) {
  const ScratchDir dir;
  const fs::path checkpoint = save_sparse_checkpoint(dir, ops::sparse::Semantics::paper);
  write_file(dir / "tokens.txt", "1 2 3\n");
  const CommandResult r = run_hax(cat("logits --checkpoint ", quoted(checkpoint), " --tokens ",
                                      quoted(dir / "tokens.txt"), " --out ", quoted(dir / "x.npy"), " --chunk 2"));
  EXPECT_TRUE(FailsWithOneErrorLine(r, "causal"));
}

TEST(CliLogits, HelpDocumentsThePadding) {
  const CommandResult help = run_hax("logits --help");
  ASSERT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("zeros"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("(sequences, positions, vocab)"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace hax::testing
