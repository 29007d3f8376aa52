// The PyTorch oracle: tools/oracle/mamba_torch.py is an independent float64 implementation of the same model. It
// loads our checkpoint folder, runs the same batch, and must agree on the logits, the loss and every parameter
// gradient (relative error below 1e-4 in fp32).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "../support/test_support.h"
#include "hax/engine/rng.h"
#include "hax/io/npy.h"
#include "hax/io/safetensors.h"
#include "hax/models/mamba.h"
#include "hax/training/checkpoint.h"

namespace hax::models {
namespace {

// ||a - b|| / ||b||, in double.
double relative_error(std::span<const float> a, std::span<const float> b) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

struct OracleCase {
  ModelConfig config;
  std::vector<int> lengths;
};

void write_batch(const std::filesystem::path& path, const TokenBatch& tb) {
  std::ofstream out(path);
  for (int q = 0; q < tb.batch.num_sequences(); ++q) {
    const int begin = tb.batch.start(q), end = tb.batch.offsets[q + 1];
    for (const auto* row : {&tb.inputs, &tb.labels}) {
      for (int m = begin; m < end; ++m) out << (*row)[m] << (m + 1 < end ? " " : "");
      out << "\n";
    }
    for (int m = begin; m < end; ++m) out << int(tb.scored[m]) << (m + 1 < end ? " " : "");
    out << "\n";
  }
}

void check_against_torch(const OracleCase& c) {
  if (testing::run_command("/usr/bin/python3 -c 'import torch, numpy'").exit_code != 0)
    GTEST_SKIP() << "/usr/bin/python3 with torch and numpy is not available (scripts/install-deps.sh installs it)";
  MambaModel model(c.config);
  Rng rng(17);  // move every parameter off its initial constant, so every path carries gradient
  for (float& v : model.params().params()) v += 0.05f * static_cast<float>(rng.normal());
  TokenBatch tb;
  for (int len : c.lengths) {
    tb.batch.add_sequence(len);
    for (int t = 0; t < len; ++t) {
      tb.inputs.push_back(static_cast<int>(rng.below(c.config.vocab_size)));
      tb.labels.push_back(static_cast<int>(rng.below(c.config.vocab_size)));
      tb.scored.push_back(t % 3 != 1);
    }
  }
  const testing::ScratchDir dir;
  training::save_model(dir / "ckpt", model);
  write_batch(dir / "batch.txt", tb);
  const auto r = testing::run_command(std::string("/usr/bin/python3 ") + HAX_SOURCE_DIR +
                                      "/tools/oracle/mamba_torch.py " + (dir / "ckpt").string() + " " +
                                      (dir / "batch.txt").string() + " " + (dir / "torch").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const int M = tb.batch.rows(), V = c.config.vocab_size;
  Arena arena(model.arena_floats(M, M, tb.batch.num_sequences()));
  std::vector<float> logits(std::size_t(M) * V);
  model.logits(logits.data(), tb.inputs, tb.batch, arena);
  const auto torch_logits = io::load_npy<float>(dir / "torch/logits.npy");
  ASSERT_EQ(torch_logits.values.size(), logits.size());
  EXPECT_LT(relative_error(logits, torch_logits.values), 1e-5);

  model.params().zero_grad();
  const BatchResult result = model.forward(tb, arena);
  model.backward(tb, arena);
  const float torch_loss = io::load_npy<float>(dir / "torch/loss.npy").values.at(0);
  EXPECT_NEAR(result.loss, torch_loss, 1e-5 * std::abs(torch_loss));

  const io::SafetensorsFile grads(dir / "torch/grads.safetensors");
  for (const TensorInfo& t : model.params().tensors()) {
    ASSERT_TRUE(grads.contains(t.name)) << t.name;
    const io::TensorData torch_grad = grads.read(t.name);
    EXPECT_LT(relative_error(model.params().grad(t.name), torch_grad.values), 1e-4) << t.name;
  }
}

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 37;
  c.hidden_size = 12;
  c.intermediate_size = 20;
  c.state_size = 5;
  c.time_step_rank = 3;
  c.conv_kernel = 4;
  c.num_hidden_layers = 2;
  c.seed = 5;
  return c;
}

TEST(MambaOracle, MatchesPyTorchOnOddShapesAndLengths) { check_against_torch({small_config(), {23, 1, 70, 4}}); }

TEST(MambaOracle, MatchesPyTorchWithBiasesAndAnotherKernel) {
  ModelConfig c = small_config();
  c.use_bias = true;
  c.conv_kernel = 3;
  c.num_hidden_layers = 3;
  check_against_torch({c, {40, 9}});
}

TEST(MambaOracle, MatchesPyTorchAtThePaperConfig) {
  ModelConfig c = ModelConfig::load(std::string(HAX_SOURCE_DIR) + "/configs/mamba.json");
  check_against_torch({c, {150, 112}});
}

}  // namespace
}  // namespace hax::models
