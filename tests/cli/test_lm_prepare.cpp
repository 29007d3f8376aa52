// hax lm prepare | tokenize | detokenize from the command line: a corpus made, text round-tripped through the
// tokenizer, and bad input refused in one line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../data/lm_corpus_fixture.h"
#include "cli_support.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;

class LmPrepareCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir;
    write_text_folder(*scratch_ / "text", 30);
    prepared_ = new CommandResult(run_hax(cat("lm prepare --source ", quoted(*scratch_ / "text"), " --out ",
                                              quoted(*scratch_ / "corpus"),
                                              " --vocab-size 320 --heldout 0.1 --threads 2")));
  }
  static void TearDownTestSuite() {
    delete prepared_;
    delete scratch_;
  }
  static inline ScratchDir* scratch_ = nullptr;
  static inline CommandResult* prepared_ = nullptr;
  ScratchDir dir_;
};

TEST_F(LmPrepareCli, PreparesAndSummarizes) {
  ASSERT_EQ(prepared_->exit_code, 0) << prepared_->err;
  EXPECT_NE(prepared_->out.find("30 documents"), std::string::npos) << prepared_->out;
  EXPECT_NE(prepared_->out.find("skipped 1 binary, 1 shorter than 64 bytes, 1 duplicates"), std::string::npos)
      << prepared_->out;
  EXPECT_NE(prepared_->out.find("valid:      3 documents"), std::string::npos) << prepared_->out;
  const auto j = nlohmann::json::parse(read_file(*scratch_ / "corpus/corpus.json"));
  EXPECT_EQ(j["splits"]["train"]["documents"], 27);
  EXPECT_EQ(j["tokenizer_options"]["vocab_size"], 320);
}

TEST_F(LmPrepareCli, TokenizeAndDetokenizeRoundTrip) {
  ASSERT_EQ(prepared_->exit_code, 0) << prepared_->err;
  const std::string text = "The kernel's page cache — über 12345 naïve.\n  indented\n";
  write_file(dir_ / "in.txt", text);
  const std::string corpus = quoted(*scratch_ / "corpus");
  const CommandResult ids = run_hax(cat("lm tokenize --corpus ", corpus, " --text ", quoted(dir_ / "in.txt")));
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  EXPECT_GT(std::count(ids.out.begin(), ids.out.end(), ' '), 10);  // digits alone are 5 tokens
  write_file(dir_ / "ids.txt", ids.out);
  const CommandResult back = run_hax(cat("lm detokenize --corpus ", corpus, " --ids ", quoted(dir_ / "ids.txt")));
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, text);
  const CommandResult piped =
      run_command(cat("printf 'a b' | ", quoted(HAX_BINARY), " lm tokenize --corpus ", corpus, " | ",
                      quoted(HAX_BINARY), " lm detokenize --corpus ", corpus));
  EXPECT_EQ(piped.out, "a b");
  const CommandResult document = run_hax(cat("lm detokenize --corpus ", corpus, " --split train --document 0"));
  ASSERT_EQ(document.exit_code, 0) << document.err;
  EXPECT_TRUE(document.out.starts_with("Document ")) << document.out;
}

TEST_F(LmPrepareCli, BadInputIsOneLine) {
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("lm prepare --source ", quoted(dir_ / "nope"), " --out ", quoted(dir_ / "c"))), "nope"));
  fs::create_directories(dir_ / "empty");
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("lm prepare --source ", quoted(dir_ / "empty"), " --out ", quoted(dir_ / "c"))), "empty"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(cat("lm prepare --source ", quoted(*scratch_ / "text"), " --out ",
                                                quoted(*scratch_ / "corpus"))),
                                    "exists already"));
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("lm prepare --out ", quoted(dir_ / "c"), " --vocab-size 70000")), "--vocab-size"));
  EXPECT_FALSE(fs::exists(dir_ / "c"));
  write_file(dir_ / "ids.txt", "5 999999\n");
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("lm detokenize --corpus ", quoted(*scratch_ / "corpus"), " --ids ", quoted(dir_ / "ids.txt"))),
      "ids.txt"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(cat("lm tokenize --corpus ", quoted(dir_ / "nocorpus"))), "nocorpus"));
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("lm detokenize --corpus ", quoted(*scratch_ / "corpus"), " --document 99")), "out of range"));
}

}  // namespace
}  // namespace hax::testing
