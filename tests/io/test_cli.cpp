// The hax CLI's data commands end to end: outputs, and errors that give one line, a non-zero exit and no file.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "../support/test_support.h"

namespace hax {
namespace {

const char* const kFixture = HAX_SOURCE_DIR "/tests/fixtures/joint_recall_seed1_train_first288.txt";

testing::CommandResult hax(const std::string& arguments) {
  return testing::run_command(std::string(HAX_BINARY) + " " + arguments);
}

std::size_t line_count(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

class Cli : public ::testing::Test {
 protected:
  std::string in_dir(const std::string& name) const { return (dir_ / name).string(); }
  bool dir_is_empty() const { return std::filesystem::is_empty(dir_.path()); }

  // A hax::Error: exit code 1, exactly one line on stderr containing `expected`, nothing on stdout.
  void expect_error(const std::string& arguments, const std::string& expected) {
    const auto result = hax(arguments);
    EXPECT_EQ(result.exit_code, 1) << arguments << "\n" << result.err;
    EXPECT_EQ(line_count(result.err), 1u) << result.err;
    EXPECT_NE(result.err.find(expected), std::string::npos) << arguments << "\n" << result.err;
    EXPECT_TRUE(result.out.empty());
  }

  testing::ScratchDir dir_;
};

TEST_F(Cli, JointRecallTextOnStdoutAndInAFileIsThePapersStream) {
  const std::string fixture = testing::read_file(kFixture);
  const auto piped = hax("gen joint-recall --count 288 --out -");
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, fixture);
  const auto filed = hax("gen joint-recall --count 288 --out " + in_dir("first.txt"));
  EXPECT_EQ(filed.exit_code, 0) << filed.err;
  EXPECT_EQ(testing::read_file(in_dir("first.txt")), fixture);
}

TEST_F(Cli, BinaryOutputInfoAndCat) {
  ASSERT_EQ(hax("gen joint-recall --count 300 --out " + in_dir("train.bin")).exit_code, 0);
  const auto cat = hax("data cat " + in_dir("train.bin") + " --count 288");
  EXPECT_EQ(cat.exit_code, 0) << cat.err;
  EXPECT_EQ(cat.out, testing::read_file(kFixture));
  const auto info = hax("data info " + in_dir("train.bin"));
  EXPECT_EQ(info.exit_code, 0) << info.err;
  for (const char* expected : {"task:        joint-recall", "samples:     300", "pad_len:     1058 (pad id 3)",
                               "(1-byte tokens)", "cells:       144", "5x5: 3", "16x16: 2", "\"seed\":1"})
    EXPECT_NE(info.out.find(expected), std::string::npos) << expected << "\n" << info.out;
}

TEST_F(Cli, SlicesAndSplitsComposeAndFormatFollowsTheFlag) {
  // Samples 100..109 of the train split equal lines 200..219 of the first 288.
  const auto slice = hax("gen joint-recall --offset 100 --count 10 --format text --out " + in_dir("slice.bin"));
  EXPECT_EQ(slice.exit_code, 0) << slice.err;
  const std::string fixture = testing::read_file(kFixture);
  std::size_t start = 0;
  for (int line = 0; line < 200; ++line) start = fixture.find('\n', start) + 1;
  std::size_t end = start;
  for (int line = 0; line < 20; ++line) end = fixture.find('\n', end) + 1;
  EXPECT_EQ(testing::read_file(in_dir("slice.bin")), fixture.substr(start, end - start));
  const auto tiny =
      hax("gen joint-recall --min-contexts 5 --max-contexts 6 --min-keys 5 --max-keys 5 "
          "--train-per-cell 2 --eval-per-cell 1 --split test --out -");
  EXPECT_EQ(tiny.exit_code, 0) << tiny.err;
  EXPECT_EQ(line_count(tiny.out), 4u);  // 2 cells x 1 sample x 2 lines
}

TEST_F(Cli, MqarWritesTwoByteTokens) {
  ASSERT_EQ(hax("gen mqar --split valid --count 5 --out " + in_dir("mqar.bin")).exit_code, 0);
  const auto info = hax("data info " + in_dir("mqar.bin"));
  EXPECT_NE(info.out.find("task:        mqar"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("(2-byte tokens)"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("1x16: 5"), std::string::npos) << info.out;
  EXPECT_EQ(line_count(hax("data cat " + in_dir("mqar.bin")).out), 10u);
  EXPECT_EQ(hax("gen mqar --split valid --offset 2 --count 1 --out -").out,
            hax("data cat " + in_dir("mqar.bin") + " --offset 2 --count 1").out);
}

TEST_F(Cli, BadArgumentsFailWithOneClearLineAndNoFile) {
  const std::string out = " --out " + in_dir("x.bin");
  expect_error("gen joint-recall --max-contexts 60" + out, "does not fit --vocab 100");
  expect_error("gen joint-recall --seed 4294967296" + out, "--seed 4294967296 is out of range");
  expect_error("gen joint-recall --split valid --offset 14400 --count 1" + out, "runs past the end of the valid");
  expect_error("gen joint-recall --values 0" + out, "--values 0 is out of range");
  expect_error("gen mqar --seq-len 40" + out, "--seq-len 40 is out of range");
  expect_error("gen joint-recall --format bin --out -", "stdout gets text only");
  expect_error("gen joint-recall --count 1 --out " + in_dir("missing/x.bin"), in_dir("missing/x.bin"));
  EXPECT_TRUE(dir_is_empty());
  const auto unknown = hax("gen joint-recall --bogus 1" + out);
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("--bogus"), std::string::npos) << unknown.err;
  const auto bad_split = hax("gen joint-recall --split dev" + out);
  EXPECT_NE(bad_split.exit_code, 0);
  EXPECT_NE(bad_split.err.find("dev"), std::string::npos) << bad_split.err;
  EXPECT_TRUE(dir_is_empty());
}

TEST_F(Cli, DamagedFilesAreRejected) {
  ASSERT_EQ(hax("gen joint-recall --count 20 --out " + in_dir("ok.bin")).exit_code, 0);
  std::string bytes = testing::read_file(in_dir("ok.bin"));
  testing::write_file(in_dir("cut.bin"), bytes.substr(0, bytes.size() - 10));
  bytes[bytes.size() / 2] ^= 1;
  testing::write_file(in_dir("flipped.bin"), bytes);
  expect_error("data info " + in_dir("cut.bin"), "truncated");
  expect_error("data cat " + in_dir("flipped.bin"), "checksum mismatch");
  expect_error("data info " + std::string(kFixture), "bad magic");
  expect_error("data cat " + in_dir("ok.bin") + " --offset 15 --count 10", "runs past the 20 samples");
}

}  // namespace
}  // namespace hax
