// `hax logits` end to end: the .npy it writes has shape (sequences, longest length, vocab), holds exactly what
// MambaModel::logits gives for each sequence in-process, and zeros past the end of the shorter sequences.
#include <gtest/gtest.h>

#include "cli_support.h"
#include "hax/io/npy.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;

// The model's logits for one sequence alone: (length, vocab).
std::vector<float> logits_in_process(models::MambaModel& model, const std::vector<std::int32_t>& tokens) {
  layers::PackedBatch batch;
  batch.add_sequence(static_cast<int>(tokens.size()));
  const int rows = batch.rows();
  Arena arena(model.arena_floats(batch, rows));
  std::vector<float> out(tokens.size() * static_cast<std::size_t>(model.config().vocab_size));
  model.logits(out.data(), tokens, batch, arena);
  return out;
}

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
    const std::vector<float> expected = logits_in_process(*model, sequences[s]);
    const float* got = logits.values.data() + s * positions * vocab;
    for (std::size_t i = 0; i < expected.size(); ++i)
      ASSERT_FLOAT_EQ(got[i], expected[i]) << "sequence " << s << " value " << i;
    for (std::size_t i = expected.size(); i < positions * vocab; ++i)
      ASSERT_EQ(got[i], 0.0f) << "padding of sequence " << s << " at " << i;
  }
}

TEST(CliLogits, HelpDocumentsThePadding) {
  const CommandResult help = run_hax("logits --help");
  ASSERT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("zeros"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("(sequences, positions, vocab)"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace hax::testing
