// The training loop end to end on a small joint-recall grid: the loss falls, an interrupted run resumes exactly,
// checkpoints load back, and a non-finite loss stops the run without touching the checkpoints already written.
#include <gtest/gtest.h>

#include <fstream>
#include <limits>

#include "../support/metrics.h"
#include "../support/model_fixtures.h"
#include "../support/test_support.h"
#include "hax/engine/aligned_buffer.h"
#include "hax/engine/error.h"
#include "hax/io/safetensors.h"
#include "hax/training/checkpoint.h"
#include "hax/training/evaluate.h"
#include "hax/training/trainer.h"

namespace hax::training {
namespace {

data::JointRecallConfig small_task() {
  data::JointRecallConfig t;
  t.min_contexts = 2;
  t.max_contexts = 3;
  t.min_keys = 2;
  t.max_keys = 3;
  t.values = 4;
  t.train_per_cell = 64;
  t.eval_per_cell = 4;
  return t;
}

TrainOptions options(const std::filesystem::path& out, std::int64_t steps) {
  TrainOptions o;
  o.out_dir = out.string();
  o.batch_size = 8;
  o.steps = steps;
  o.lr = 3e-3;
  o.warmup_steps = 3;
  o.eval_every = 4;
  o.log_every = 1;
  return o;
}

TEST(Trainer, AResumedRunEqualsAnUninterruptedOne) {
  const testing::ScratchDir dir;
  auto train_data = joint_recall_source(small_task(), data::Split::train);
  auto valid_data = joint_recall_source(small_task(), data::Split::valid);
  train(testing::tiny_mamba_config(), options(dir / "straight", 12), *train_data, valid_data.get(), false);
  train(testing::tiny_mamba_config(), options(dir / "split", 8), *train_data, valid_data.get(), false);
  train(testing::tiny_mamba_config(), options(dir / "split", 12), *train_data, valid_data.get(), true);

  testing::expect_identical_runs(dir / "straight", dir / "split",
                                 {"last/model.safetensors", "last/optimizer.safetensors"});
}

TEST(Trainer, LossFallsAndTheBestCheckpointLoadsBack) {
  const testing::ScratchDir dir;
  auto train_data = joint_recall_source(small_task(), data::Split::train);
  auto valid_data = joint_recall_source(small_task(), data::Split::valid);
  TrainOptions o = options(dir / "run", 60);
  o.eval_every = 30;
  train(testing::tiny_mamba_config(), o, *train_data, valid_data.get(), false);
  const auto lines = testing::read_metrics(dir / "run");
  const double first = lines.front().at("loss");
  double last = 0;
  for (const auto& j : lines)
    if (j.at("event") == "valid") last = j.at("loss");
  EXPECT_LT(last, first - 0.5) << "validation loss " << last << " vs first training loss " << first;

  auto best = load_model(dir / "run/best");
  const EvalResult r = evaluate(*best, *valid_data, 0, 8);
  EXPECT_EQ(r.sequences, valid_data->size());
  EXPECT_EQ(r.cells.size(), 4u);  // (2,2) (2,3) (3,2) (3,3)
  const auto state = nlohmann::json::parse(testing::read_file(dir / "run/last/trainer_state.json"));
  EXPECT_DOUBLE_EQ(state.at("best_valid_accuracy").get<double>(), r.accuracy);
}

TEST(Trainer, ANonFiniteLossStopsTheRunAndKeepsTheCheckpoints) {
  const testing::ScratchDir dir;
  auto train_data = joint_recall_source(small_task(), data::Split::train);
  TrainOptions o = options(dir / "run", 4);
  train(testing::tiny_mamba_config(), o, *train_data, nullptr, false);
  const std::string before = testing::read_file(dir / "run/last/model.safetensors");
  o.steps = 40;
  o.lr = 1e30;  // diverges at once
  try {
    train(testing::tiny_mamba_config(), o, *train_data, nullptr, true);
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
  EXPECT_EQ(testing::read_file(dir / "run/last/model.safetensors"), before);
}

// A batch whose activations cannot fit stops before the first update with the sum of what training needs.
TEST(Trainer, ABatchTooLargeForTheMachineStopsBeforeTrainingSayingHowMuch) {
  if (available_memory_bytes() == 0) GTEST_SKIP() << "this machine does not say how much memory it has";
  const testing::ScratchDir dir;
  auto train_data = joint_recall_source(small_task(), data::Split::train);
  TrainOptions o = options(dir / "run", 4);
  o.batch_size = 1 << 24;
  try {
    train(testing::tiny_mamba_config(), o, *train_data, nullptr, false);
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const char* part : {"training this model at batch 16777216 x ", "parameters, gradients and AdamW moments",
                             "activations up to ", "more available (memory + swap): lower --batch-size"})
      EXPECT_NE(message.find(part), std::string::npos) << message;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "run/last"));
}

// With --skip-nonfinite a diverged update is logged and skipped, and the run goes on to its last update.
TEST(Trainer, SkipNonfiniteSkipsTheUpdatesAndFinishes) {
  const testing::ScratchDir dir;
  auto train_data = joint_recall_source(small_task(), data::Split::train);
  TrainOptions o = options(dir / "run", 6);
  o.lr = 1e30;
  o.warmup_steps = 0;
  o.skip_nonfinite = true;
  train(testing::tiny_mamba_config(), o, *train_data, nullptr, false);
  const std::vector<nlohmann::json> skipped = testing::read_metrics(dir / "run", "skipped");
  for (const nlohmann::json& j : skipped) {
    EXPECT_NE(j.at("reason").get<std::string>().find("non-finite"), std::string::npos) << j.dump();
    EXPECT_NE(j.at("reason").get<std::string>().find(cat("at update ", j.at("step").get<int>())), std::string::npos);
  }
  EXPECT_GT(skipped.size(), 0u);
  const auto state = nlohmann::json::parse(testing::read_file(dir / "run/last/trainer_state.json"));
  EXPECT_EQ(state.at("step"), 6);
}

TEST(Checkpoint, NonFiniteWeightsAreRefusedNamingTheTensor) {
  const testing::ScratchDir dir;
  models::Model model(testing::tiny_mamba_config());
  model.params().param("layers.1.mixer.out_proj.weight")[5] = std::numeric_limits<float>::quiet_NaN();
  save_model(dir / "ckpt", model);
  try {
    load_model(dir / "ckpt");
    FAIL() << "a NaN weight loaded";
  } catch (const Error& e) {
    for (const char* part : {"model.safetensors", "'layers.1.mixer.out_proj.weight'", "index 5", "nan"})
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << part << " in " << e.what();
  }
  EXPECT_FALSE(first_nonfinite(model.params(), models::Model(testing::tiny_mamba_config()).params().params()));
}

TEST(Trainer, RefusesToOverwriteARunWithoutResume) {
  const testing::ScratchDir dir;
  auto train_data = joint_recall_source(small_task(), data::Split::train);
  train(testing::tiny_mamba_config(), options(dir / "run", 2), *train_data, nullptr, false);
  EXPECT_THROW(train(testing::tiny_mamba_config(), options(dir / "run", 2), *train_data, nullptr, false), Error);
  EXPECT_THROW(train(testing::tiny_mamba_config(), options(dir / "missing", 2), *train_data, nullptr, true), Error);
}

}  // namespace
}  // namespace hax::training
