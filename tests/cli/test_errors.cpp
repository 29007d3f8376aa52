// Bad input to `hax eval` and `hax logits` ends in a non-zero exit and one clear error line, before any output
// file appears.
#include <gtest/gtest.h>

#include "cli_support.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;

class CliErrors : public ::testing::Test {
 protected:
  CommandResult eval(const std::string& args) {
    return run_hax(cat("eval --checkpoint ", quoted(checkpoint_), " --threads 1 --json ", quoted(dir_ / "out.json"),
                       " ", kTinyTask, " ", args));
  }
  CommandResult logits(const std::string& tokens) {
    write_file(dir_ / "tokens.txt", tokens);
    return run_hax(cat("logits --checkpoint ", quoted(checkpoint_), " --tokens ", quoted(dir_ / "tokens.txt"),
                       " --out ", quoted(dir_ / "logits.npy")));
  }

  ScratchDir dir_;
  fs::path checkpoint_ = save_untrained_checkpoint(dir_);
};

TEST_F(CliErrors, UnknownFlag) {
  EXPECT_TRUE(FailsWithOneErrorLine(eval("--bogus 3"), "--bogus"));
  EXPECT_FALSE(fs::exists(dir_ / "out.json"));
}

TEST_F(CliErrors, MissingCheckpointFolder) {
  checkpoint_ = dir_ / "no-such-run/best";
  EXPECT_TRUE(FailsWithOneErrorLine(eval(""), "no-such-run/best"));
  EXPECT_TRUE(FailsWithOneErrorLine(logits("1 2 3\n"), "no-such-run/best"));
  EXPECT_FALSE(fs::exists(dir_ / "out.json"));
  EXPECT_FALSE(fs::exists(dir_ / "logits.npy"));
}

TEST_F(CliErrors, MalformedSafetensors) {
  write_file(checkpoint_ / "model.safetensors", "this is not a safetensors file");
  EXPECT_TRUE(FailsWithOneErrorLine(eval(""), "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / "out.json"));
}

TEST_F(CliErrors, PngHeatmapAsksForSvg) {
  EXPECT_TRUE(FailsWithOneErrorLine(eval("--heatmap " + quoted(dir_ / "acc.png")), "SVG"));
  EXPECT_FALSE(fs::exists(dir_ / "acc.png"));
  EXPECT_FALSE(fs::exists(dir_ / "out.json"));
}

TEST_F(CliErrors, CountPastTheSplit) { EXPECT_TRUE(FailsWithOneErrorLine(eval("--count 17"), "--count 17")); }

TEST_F(CliErrors, SplitWithData) { EXPECT_TRUE(FailsWithOneErrorLine(eval("--data x.bin --split valid"), "--split")); }

TEST_F(CliErrors, TokenIdOutsideTheVocabulary) {
  EXPECT_TRUE(FailsWithOneErrorLine(logits("1 2 3\n4 100 6\n"), "line 2, token 2: id 100 is outside"));
  EXPECT_TRUE(FailsWithOneErrorLine(logits("1 -2\n"), "line 1, token 2: id -2 is outside"));
  EXPECT_TRUE(FailsWithOneErrorLine(logits("1 2 x3\n"), "line 1, token 3: 'x3' is not a token id"));
  EXPECT_FALSE(fs::exists(dir_ / "logits.npy"));
}

TEST_F(CliErrors, BlankOrEmptyTokensFile) {
  EXPECT_TRUE(FailsWithOneErrorLine(logits("1 2\n\n3 4\n"), "line 2 is blank"));
  EXPECT_TRUE(FailsWithOneErrorLine(logits("1 2\n  \n"), "line 2 is blank"));
  EXPECT_TRUE(FailsWithOneErrorLine(logits(""), "holds no sequences"));
  EXPECT_FALSE(fs::exists(dir_ / "logits.npy"));
}

TEST_F(CliErrors, MissingTokensFile) {
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("logits --checkpoint ", quoted(checkpoint_), " --tokens ", quoted(dir_ / "nope.txt"), " --out ",
                  quoted(dir_ / "logits.npy"))),
      "nope.txt"));
}

}  // namespace
}  // namespace hax::testing
