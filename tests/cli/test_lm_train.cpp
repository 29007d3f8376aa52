// hax lm train from the command line: a tiny corpus prepared from synthetic text (vocabulary 320), a few updates of
// a tiny Mamba, a resumed run, continual pre-training with HAX added by --init-from, and bad input refused in one line.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "../data/lm_corpus_fixture.h"
#include "../support/metrics.h"
#include "cli_support.h"
#include "hax/io/safetensors.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;

const std::string kTinyRun = " --context 32 --batch-size 2 --eval-windows 4 --eval-every 2 --log-every 1 --threads 1"
                             " --lr 3e-3 --warmup 1";

class LmTrainCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir;
    write_text_folder(*scratch_ / "text", 30);
    const CommandResult prepared = run_hax(cat("lm prepare --source ", quoted(*scratch_ / "text"), " --out ",
                                               quoted(corpus()), " --vocab-size 320 --heldout 0.1 --threads 1"));
    ASSERT_EQ(prepared.exit_code, 0) << prepared.err;
    config_ = new fs::path(write_tiny_config(*scratch_));
    base_ = new CommandResult(run_hax(cat("lm train --corpus ", quoted(corpus()), " --out ", quoted(base_run()),
                                          " --config ", quoted(*config_), " --vocab-from-corpus --steps 4", kTinyRun)));
  }
  static void TearDownTestSuite() {
    delete base_;
    delete config_;
    delete scratch_;
  }
  static fs::path corpus() { return *scratch_ / "corpus"; }
  static fs::path base_run() { return *scratch_ / "base"; }
  static inline ScratchDir* scratch_ = nullptr;
  static inline fs::path* config_ = nullptr;
  static inline CommandResult* base_ = nullptr;
  ScratchDir dir_;
};

TEST_F(LmTrainCli, TrainsWithHeldOutPerplexityAndResumes) {
  ASSERT_EQ(base_->exit_code, 0) << base_->err;
  const auto valid = read_metrics(base_run(), "valid");
  ASSERT_EQ(valid.size(), 2u);  // updates 2 and 4
  for (const auto& j : valid) {
    EXPECT_TRUE(std::isfinite(j.at("loss").get<double>()));
    EXPECT_DOUBLE_EQ(j.at("perplexity").get<double>(), std::exp(j.at("loss").get<double>()));
    EXPECT_EQ(j.at("sequences"), 4);
    EXPECT_EQ(j.at("tokens"), 4 * 32);
  }
  const auto config = nlohmann::json::parse(read_file(base_run() / "best/config.json"));
  const auto corpus_json = nlohmann::json::parse(read_file(corpus() / "corpus.json"));
  EXPECT_EQ(config.at("vocab_size"), corpus_json.at("vocab_size"));  // --vocab-from-corpus
  const auto trained = read_metrics(base_run(), "train");
  ASSERT_EQ(trained.size(), 4u);
  EXPECT_EQ(trained[0].at("lr"), 0.0);  // the warm-up's first update
  EXPECT_DOUBLE_EQ(trained[3].at("lr").get<double>(), 1e-5);  // the cosine's end: --min-lr at the last update
  EXPECT_TRUE(trained[0].contains("grad_norm"));  // --clip-grad 1.0 by default

  // Continue the run two more updates: the schedule changes (its cosine now ends at 6), which the log says.
  const fs::path run = dir_ / "run";
  fs::copy(base_run(), run, fs::copy_options::recursive);
  const CommandResult resumed = run_hax(cat("lm train --corpus ", quoted(corpus()), " --out ", quoted(run),
                                            " --resume --steps 6", kTinyRun));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(read_metrics(run, "train").size(), 6u);
  EXPECT_EQ(read_metrics(run, "schedule_changed").size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(read_file(run / "last/trainer_state.json")).at("step"), 6);
}

TEST_F(LmTrainCli, InitFromAddsHaxTheSparseBranchStartsFromBAndCAndTrainingContinues) {
  ASSERT_EQ(base_->exit_code, 0) << base_->err;
  const fs::path run = dir_ / "hax";
  const CommandResult r = run_hax(cat("lm train --corpus ", quoted(corpus()), " --out ", quoted(run), " --init-from ",
                                      quoted(base_run() / "last"),
                                      " --sparse-arch sign_bin_lsh+key_selection --sparse-keys 8 --num-hash 3 "
                                      "--data-max-length 32 --steps 3 --zero-steps 1",
                                      kTinyRun));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& j : read_metrics(run, "train")) EXPECT_TRUE(std::isfinite(j.at("loss").get<double>())) << j;
  const auto state = nlohmann::json::parse(read_file(run / "last/trainer_state.json"));
  EXPECT_EQ(state.at("step"), 3);  // a new run: its own steps, from 0
  EXPECT_EQ(state.at("optimizer").at("step"), 3);
  EXPECT_EQ(nlohmann::json::parse(read_file(run / "last/config.json")).at("sparse_arch"),
            "sign_bin_lsh+key_selection");
  // After one update at lr 0 (--zero-steps 1) the weights are still the initialization: K and Q are B and C.
  const fs::path first = dir_ / "first";
  ASSERT_EQ(run_hax(cat("lm train --corpus ", quoted(corpus()), " --out ", quoted(first), " --init-from ",
                        quoted(base_run() / "last"),
                        " --sparse-arch key_selection --sparse-keys 8 --steps 1 --zero-steps 1", kTinyRun))
                .exit_code,
            0);
  const auto x_proj = io::SafetensorsFile(base_run() / "last/model.safetensors").read("layers.1.mixer.x_proj.weight").values;
  const auto xx_proj = io::SafetensorsFile(first / "last/model.safetensors").read("layers.1.mixer.xx_proj.weight").values;
  const std::size_t R = 2, N = 4, I = 32;  // tiny_mamba_config
  ASSERT_EQ(xx_proj.size(), 2 * N * I);
  EXPECT_TRUE(std::equal(xx_proj.begin(), xx_proj.end(), x_proj.begin() + R * I));

  // One command line starts and resumes a run: --resume with the first command's model flags continues it, and
  // model flags that describe another model are refused, naming the key.
  const std::string again = cat("lm train --corpus ", quoted(corpus()), " --out ", quoted(first), " --init-from ",
                                quoted(base_run() / "last"), " --sparse-keys 8 --zero-steps 1 --resume", kTinyRun);
  const CommandResult resumed = run_hax(cat(again, " --sparse-arch key_selection --steps 2"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(nlohmann::json::parse(read_file(first / "last/trainer_state.json")).at("step"), 2);
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(cat(again, " --sparse-arch sliding_window --steps 3")),
                                    "the model flags give sparse_arch = \"sliding_window\""));
}

TEST_F(LmTrainCli, BadInputIsOneLine) {
  const std::string common = cat("lm train --corpus ", quoted(corpus()), " --out ", quoted(dir_ / "run"), kTinyRun);
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(cat(common, " --config ", quoted(*config_))),
                                    "has vocab_size 100 but the corpus"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(common), "needs --config FILE"));
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat(common, " --config ", quoted(*config_), " --init-from ", quoted(base_run() / "last"))), "excludes"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(cat(common, " --resume --sparse-arch sliding_window")),
                                    "cannot change it"));
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("lm train --corpus ", quoted(dir_ / "missing"), " --out ", quoted(dir_ / "run"), " --config ",
                  quoted(*config_))),
      "missing"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(cat("lm train --corpus ", quoted(corpus()), " --out ", quoted(dir_ / "run"),
                                                " --config ", quoted(*config_), " --vocab-from-corpus --context 100000")),
                                    "fewer than one window"));
  EXPECT_FALSE(fs::exists(dir_ / "run" / "last"));
}

}  // namespace
}  // namespace hax::testing
