// The PyTorch oracle: tools/oracle/mamba_torch.py is an independent float64 implementation of the same model. It
// loads our checkpoint folder, runs the same batch, and must agree on the logits, the loss and every parameter
// gradient (relative error below 1e-4 in fp32). The sparse models (HAX and every pattern, both semantics) are checked
// the same way in training mode: the oracle builds the reference's dense T x T masks, gets the gate-loss candidates
// our forward drew, and must agree on the gate loss too and on the gradient of CE + 0.1 * gate.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "../support/model_fixtures.h"
#include "../support/oracle_skip.h"
#include "../support/test_support.h"
#include "hax/engine/rng.h"
#include "hax/io/npy.h"
#include "hax/io/safetensors.h"
#include "hax/models/model.h"
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
  bool training = false;  // forward in training mode: the gate loss of key selection joins the objective
  int padded_length = 0;  // TokenBatch::padded_length (`paper` semantics)
};

// The error of each parameter's gradient, `ours` against the oracle's `torch` (name -> values): ||a - b|| / ||b||.
// The key scorer (dx_proj_*) learns from the ranking loss alone, whose gradient w.r.t. the scores sums to zero, so
// its bias gradients are near-exact cancellations (dx_proj_3.bias: exactly 0) that fp32 cannot resolve relative to
// themselves. A scorer tensor is therefore measured against the norm of its layer's whole scorer gradient when that
// is larger: a missing or wrong scorer gradient still shows, rounding of a cancellation does not.
std::map<std::string, double> gradient_errors(const ParamStore& ours,
                                              const std::map<std::string, io::TensorData>& torch) {
  auto norm = [](std::span<const float> v) {
    double sum = 0;
    for (float x : v) sum += double(x) * x;
    return std::sqrt(sum);
  };
  std::map<std::string, double> scorer_norm;  // layer prefix -> squared norm of its scorer gradient
  for (const auto& [name, t] : torch)
    if (const auto at = name.find(".dx_proj_"); at != std::string::npos)
      scorer_norm[name.substr(0, at)] += std::pow(norm(t.values), 2);
  std::map<std::string, double> errors;
  for (const TensorInfo& info : ours.tensors()) {
    const std::span<const float> a = ours.grad(info.name), b = torch.at(info.name).values;
    if (a.size() != b.size()) {
      errors[info.name] = INFINITY;
      continue;
    }
    double scale = norm(b);
    if (const auto at = info.name.find(".dx_proj_"); at != std::string::npos)
      scale = std::max(scale, std::sqrt(scorer_norm[info.name.substr(0, at)]));
    double diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    errors[info.name] = std::sqrt(diff) / std::max(scale, 1e-30);
  }
  return errors;
}

// Lines `layer sequence c0 c1 ...` of the gate-loss candidates the last training forward drew.
void write_candidates(const std::filesystem::path& path, const Model& model) {
  std::ofstream out(path);
  for (int l = 0; l < model.config().num_hidden_layers; ++l) {
    const auto& per_sequence = model.gate_candidates(l);
    for (std::size_t q = 0; q < per_sequence.size(); ++q) {
      out << l << " " << q;
      for (std::int32_t c : per_sequence[q]) out << " " << c;
      out << "\n";
    }
  }
}

void write_batch(const std::filesystem::path& path, const TokenBatch& tb) {
  std::ofstream out(path);
  for (int q = 0; q < tb.batch.num_sequences(); ++q) {
    const int begin = tb.batch.start(q), end = tb.batch.start(q + 1);
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
    HAX_ORACLE_UNAVAILABLE("/usr/bin/python3 with torch and numpy is not available (scripts/install-deps.sh installs it)");
  Model model(c.config);
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
  tb.padded_length = c.padded_length;
  const testing::ScratchDir dir;
  training::save_model(dir / "ckpt", model);
  write_batch(dir / "batch.txt", tb);

  // Ours first: the training forward draws the gate-loss candidates that the oracle is then given.
  const int M = tb.batch.rows(), V = c.config.vocab_size;
  Arena arena(model.arena_floats(tb.batch, M, c.padded_length));
  model.params().zero_grad();
  const BatchResult result = model.forward(tb, arena, {c.training, /*noise_seed=*/99});
  model.backward(tb, arena);
  std::string flags;
  if (c.padded_length > 0) flags += " --padded-length " + std::to_string(c.padded_length);
  if (c.training) {
    write_candidates(dir / "candidates.txt", model);
    flags += " --gate-candidates " + (dir / "candidates.txt").string();
  }
  const auto r = testing::run_command(std::string("/usr/bin/python3 ") + HAX_SOURCE_DIR +
                                      "/tools/oracle/mamba_torch.py " + (dir / "ckpt").string() + " " +
                                      (dir / "batch.txt").string() + " " + (dir / "torch").string() + flags);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const float torch_loss = io::load_npy<float>(dir / "torch/loss.npy").values.at(0);
  EXPECT_NEAR(result.loss, torch_loss, 1e-5 * std::abs(torch_loss));
  const float torch_gate = io::load_npy<float>(dir / "torch/gate_loss.npy").values.at(0);
  EXPECT_NEAR(result.gate_loss, torch_gate, 1e-5 * std::abs(torch_gate));
  if (c.training && c.config.has_key_selection()) EXPECT_GT(torch_gate, 0.0f) << "the gate loss is not exercised";

  const io::SafetensorsFile grads_file(dir / "torch/grads.safetensors");
  std::map<std::string, io::TensorData> grads;
  for (const TensorInfo& t : model.params().tensors()) {
    ASSERT_TRUE(grads_file.contains(t.name)) << t.name;
    grads[t.name] = grads_file.read(t.name);
  }
  for (const auto& [name, error] : gradient_errors(model.params(), grads)) EXPECT_LT(error, 1e-4) << name;

  std::vector<float> logits(std::size_t(M) * V);
  model.logits(logits.data(), tb.inputs, tb.batch, arena, {}, c.padded_length);
  const auto torch_logits = io::load_npy<float>(dir / "torch/logits.npy");
  ASSERT_EQ(torch_logits.values.size(), logits.size());
  EXPECT_LT(relative_error(logits, torch_logits.values), 1e-5);
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

// The sparse models: a tiny config, every pattern, in training mode.
ModelConfig sparse_config(const std::string& arch, ops::sparse::Semantics semantics) {
  ModelConfig c = small_config();
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.state_size = 4;
  c.time_step_rank = 2;
  c.sparse_arch = arch;
  c.sparse_keys = 8;  // w = 8 (one pattern) or 4 (two); dilation 32 // w
  c.num_hash = 3;
  c.data_max_length = 32;
  c.semantics = semantics;
  c.lsh_resample = "never";  // the saved projection H, which the oracle reads from the checkpoint
  return c;
}

class SparseOracle : public ::testing::TestWithParam<std::string> {};

TEST_P(SparseOracle, MatchesPyTorchInCausalSemantics) {
  check_against_torch({sparse_config(GetParam(), ops::sparse::Semantics::causal), {13, 29, 7}, /*training=*/true});
}

INSTANTIATE_TEST_SUITE_P(Patterns, SparseOracle,
                         ::testing::Values("full", "sliding_window", "sliding_window+sink", "dilated",
                                           "sliding_window+dilated", "sign_bin_lsh", "argmax_lsh", "key_selection",
                                           "sign_bin_lsh+key_selection"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             if (ch == '+') ch = '_';
                           return name;
                         });

// `paper`: the statistics, the empty-row fallback and the gate targets count the padding, here padded past the
// longest sequence.
TEST(SparseOracle, HaxMatchesPyTorchInPaperSemantics) {
  check_against_torch(
      {sparse_config("sign_bin_lsh+key_selection", ops::sparse::Semantics::paper), {13, 29, 7}, true, 40});
}

// The ablations of `paper` (hax_paper_without): each ingredient turned off alone, on the padded layout. The uniform
// fallback only acts where a query has no key, so it is checked on LSH alone (key selection always gives one); the
// gate targets' padding only where a sequence is shorter than the budget (the 2-token one).
class PaperAblationOracle : public ::testing::TestWithParam<std::string> {};

TEST_P(PaperAblationOracle, MatchesPyTorch) {
  const std::string arch = GetParam() == "uniform_fallback" ? "sign_bin_lsh" : "sign_bin_lsh+key_selection";
  ModelConfig c = sparse_config(arch, ops::sparse::Semantics::paper);
  c.paper_without = {GetParam()};
  check_against_torch({c, {13, 2, 29, 7}, true, 40});
}

INSTANTIATE_TEST_SUITE_P(Ingredients, PaperAblationOracle,
                         ::testing::ValuesIn(ops::sparse::PaperIngredients::names()));

// `causal` with the running statistics: LSH inputs centred and scaled over their prefix, key-selection features
// normalized over their prefix; each alone and both.
class RunningStatisticsOracle : public ::testing::TestWithParam<std::pair<bool, bool>> {};

TEST_P(RunningStatisticsOracle, HaxMatchesPyTorch) {
  ModelConfig c = sparse_config("sign_bin_lsh+key_selection", ops::sparse::Semantics::causal);
  if (GetParam().first) c.lsh_statistics = "running";
  if (GetParam().second) c.ks_normalization = "running";
  check_against_torch({c, {13, 29, 7}, true});
}

INSTANTIATE_TEST_SUITE_P(Options, RunningStatisticsOracle,
                         ::testing::Values(std::pair{true, false}, std::pair{false, true}, std::pair{true, true}),
                         [](const auto& info) {
                           return std::string(info.param.first ? "lsh" : "") + (info.param.second ? "ks" : "");
                         });

TEST(SparseOracle, DilatedMatchesPyTorchInPaperSemantics) {
  check_against_torch({sparse_config("dilated", ops::sparse::Semantics::paper), {13, 29, 7}, true, 0});
}

TEST(SparseOracle, HaxMatchesPyTorchInEvaluationMode) {
  check_against_torch({sparse_config("sign_bin_lsh+key_selection", ops::sparse::Semantics::causal), {13, 29, 7}});
}

// ---- Mamba2 and Samba: the same oracle entry, which dispatches on config.json's model_type --------------------------

ModelConfig load_config(const char* name) { return ModelConfig::load(cat(HAX_SOURCE_DIR, "/configs/", name)); }

TEST(Mamba2Oracle, MatchesPyTorchAtThePaperConfig) { check_against_torch({load_config("mamba2.json"), {150, 112}}); }

// Two groups (B, C shared by pairs of heads), biases, another kernel, three layers, odd lengths.
TEST(Mamba2Oracle, MatchesPyTorchWithGroupsAndBiases) {
  ModelConfig c = testing::tiny_config("mamba2");
  c.use_bias = true;
  c.conv_kernel = 3;
  c.num_hidden_layers = 3;
  check_against_torch({c, {23, 1, 70, 4}});
}

class Mamba2SparseOracle : public ::testing::TestWithParam<std::string> {};

TEST_P(Mamba2SparseOracle, MatchesPyTorchInCausalSemantics) {
  check_against_torch({testing::tiny_config("mamba2", GetParam()), {13, 29, 7}, /*training=*/true});
}

INSTANTIATE_TEST_SUITE_P(Patterns, Mamba2SparseOracle, ::testing::ValuesIn(testing::all_sparse_archs()),
                         [](const auto& info) { return testing::arch_identifier(info.param); });

TEST(Mamba2SparseOracle, HaxMatchesPyTorchInPaperSemantics) {
  check_against_torch(
      {testing::tiny_config("mamba2", "sign_bin_lsh+key_selection", ops::sparse::Semantics::paper), {13, 29, 7},
       true, 40});
}

TEST(Mamba2SparseOracle, HaxMatchesPyTorchAtThePaperConfig) {
  ModelConfig c = load_config("mamba2.json");
  c.sparse_arch = "sign_bin_lsh+key_selection";
  c.lsh_resample = "never";
  check_against_torch({c, {150, 112}, true});
}

TEST(SambaOracle, MatchesPyTorchAtThePaperConfig) { check_against_torch({load_config("samba.json"), {150, 70}}); }

// A window of 5 keys on sequences of up to 70 tokens, attention in the middle layer of three.
TEST(SambaOracle, MatchesPyTorchWithAShortWindow) {
  ModelConfig c = testing::tiny_config("samba");
  c.num_hidden_layers = 3;
  check_against_torch({c, {23, 1, 70, 4}});
}

}  // namespace
}  // namespace hax::models
