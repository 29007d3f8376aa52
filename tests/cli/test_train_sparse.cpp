// `hax train --sparse-arch NAME` end to end for every pattern the reference's command line names (and argmax_lsh and
// full): the run trains, logs the gate loss exactly when key selection is present, and its checkpoint evaluates
// and carries the sparse config and the LSH projections.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "../support/metrics.h"
#include "cli_support.h"
#include "hax/io/safetensors.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;

class TrainSparseArch : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainSparseArch, TrainsLogsAndEvaluates) {
  const std::string arch = GetParam();
  const ScratchDir dir;
  const CommandResult train = run_hax(cat(
      "train --config ", quoted(write_tiny_config(dir)), " --out ", quoted(dir / "run"), " --sparse-arch '", arch,
      "' --sparse-keys 8 --num-hash 3 --steps 4 --batch-size 4 --warmup 1 --eval-every 4 --log-every 1 --threads 1 ",
      kTinyTask));
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const std::vector<nlohmann::json> train_lines = read_metrics(dir / "run", "train");
  for (const nlohmann::json& j : train_lines) {
    EXPECT_TRUE(std::isfinite(j.at("loss").get<double>()));
    EXPECT_EQ(j.contains("gate_loss"), arch.find("key_selection") != std::string::npos) << j.dump();
  }
  EXPECT_EQ(train_lines.size(), 4u);
  const auto config = nlohmann::json::parse(read_file(dir / "run/best/config.json"));
  EXPECT_EQ(config.at("sparse_arch"), arch);
  EXPECT_EQ(config.at("hax_semantics"), "causal");
  const io::SafetensorsFile weights(dir / "run/best/model.safetensors");
  const auto names = weights.names();
  const bool lsh = arch.find("lsh") != std::string::npos;
  EXPECT_EQ(std::count(names.begin(), names.end(), "layers.0.mixer.lsh_projection"), lsh ? 1 : 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "layers.1.mixer.xx_proj.weight"), 1);
  const CommandResult eval =
      run_hax(cat("eval --checkpoint ", quoted(dir / "run/best"), " --split test --threads 1 ", kTinyTask));
  EXPECT_EQ(eval.exit_code, 0) << eval.err;
}

INSTANTIATE_TEST_SUITE_P(Archs, TrainSparseArch, ::testing::ValuesIn(all_sparse_archs()),
                         [](const auto& info) { return arch_identifier(info.param); });

TEST(TrainSparse, PaperSemanticsTrainsToo) {
  const ScratchDir dir;
  const CommandResult train = run_hax(cat("train --config ", quoted(write_tiny_config(dir)), " --out ",
                                          quoted(dir / "run"), " --sparse-arch sign_bin_lsh+key_selection ",
                                          "--semantics paper --steps 2 --batch-size 4 --eval-every 2 --threads 1 ",
                                          kTinyTask));
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto config = nlohmann::json::parse(read_file(dir / "run/last/config.json"));
  EXPECT_EQ(config.at("hax_semantics"), "paper");
  EXPECT_EQ(config.at("hax_lsh_resample"), "every_forward");
}

TEST(TrainSparse, BadArchAndResumeOverridesAreOneLineErrors) {
  const ScratchDir dir;
  const std::string base =
      cat("train --config ", quoted(write_tiny_config(dir)), " --out ", quoted(dir / "run"), " --steps 1 ", kTinyTask);
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(base + " --sparse-arch sliding_window+lsh"), "lsh"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(base + " --sparse-arch sink+sink"), "twice"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(base + " --semantics acausal"), "semantics"));
  ASSERT_EQ(run_hax(base + " --batch-size 2 --threads 1").exit_code, 0);
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(base + " --resume --sparse-arch full"), "--resume"));
}

}  // namespace
}  // namespace hax::testing
