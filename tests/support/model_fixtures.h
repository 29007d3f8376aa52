// Small model configs shared by the suites that train or load a whole model (training, cli).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "hax/engine/arena.h"
#include "hax/engine/rng.h"
#include "hax/models/config.h"
#include "hax/models/model.h"

namespace hax::testing {

// A two-layer Mamba small enough that a few dozen training steps take well under a second.
inline models::ModelConfig tiny_mamba_config() {
  models::ModelConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.state_size = 4;
  c.time_step_rank = 2;
  c.num_hidden_layers = 2;
  return c;
}

// Every sparse arch the reference's command line names, plus argmax_lsh and full.
inline const std::vector<std::string>& all_sparse_archs() {
  static const std::vector<std::string> names = {
      "full",         "sliding_window", "sliding_window+sink", "dilated",       "sliding_window+dilated",
      "sign_bin_lsh", "argmax_lsh",     "key_selection",       "sign_bin_lsh+key_selection"};
  return names;
}

// "sliding_window+sink" -> "sliding_window_sink": gtest names allow [A-Za-z0-9_] only.
inline std::string arch_identifier(std::string arch) {
  for (char& c : arch)
    if (c == '+' || c == '@') c = '_';
  return arch.empty() ? "plain" : arch;
}

// A tiny Mamba with the sparse branch `arch` ("" for none). 8 keys make every pattern bite within a few dozen
// tokens: window 8 or 4, dilation 4 or 8 (data_max_length 32), top-8 or top-4, 8 sign-bin or 3 argmax buckets. The
// LSH projection is the saved one in both semantics, so runs and finite differences see the same buckets.
inline models::ModelConfig tiny_sparse_config(const std::string& arch,
                                              ops::sparse::Semantics semantics = ops::sparse::Semantics::causal) {
  models::ModelConfig c;
  c.vocab_size = 23;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.state_size = 4;
  c.time_step_rank = 2;
  c.num_hidden_layers = 2;
  c.seed = 5;
  c.sparse_arch = arch;
  c.sparse_keys = 8;
  c.num_hash = 3;
  c.data_max_length = 32;
  c.semantics = semantics;
  c.lsh_resample = "never";
  return c;
}

// A sparse arch of the suites may end in "@running": the arch with the running LSH statistics and key-selection
// normalization (hax_lsh_statistics, hax_ks_normalization), the causal stand-ins for `paper`'s.
inline constexpr const char* kRunningStatistics = "@running";

// The tiny config of tiny_sparse_config with another base model: "mamba", "mamba2" (4 heads of 4 channels in 2
// groups, so that B and C are shared by pairs of heads) or "samba" (attention at layer 1 with a window of 5 keys;
// no sparse arch, which Samba does not take).
inline models::ModelConfig tiny_config(const std::string& base, std::string arch = "",
                                       ops::sparse::Semantics semantics = ops::sparse::Semantics::causal) {
  const bool running = arch.ends_with(kRunningStatistics);
  if (running) arch.resize(arch.size() - std::string(kRunningStatistics).size());
  models::ModelConfig c = tiny_sparse_config(arch, semantics);
  if (running) c.lsh_statistics = c.ks_normalization = "running";
  c.model_type = base;
  if (base == "mamba2") {
    c.num_heads = 4;
    c.head_dim = 4;
    c.n_groups = 2;
    c.rescale_prenorm_residual = true;
  } else if (base == "samba") {
    c.sparse_arch.clear();
    c.attn_layers = {1};
    c.attn_num_heads = 2;
    c.attn_num_kv_heads = 2;
    c.attn_window = 5;
  }
  return c;
}

inline const std::vector<std::string>& all_bases() {
  static const std::vector<std::string> names = {"mamba", "mamba2", "samba"};
  return names;
}

// (base model, sparse arch) pairs for suites that run on every model: plain and every arch for Mamba and Mamba2,
// plain Samba. "" is no sparse branch.
using BaseArch = std::pair<std::string, std::string>;
inline const std::vector<BaseArch>& all_base_archs() {
  static const std::vector<BaseArch> cases = [] {
    std::vector<BaseArch> all;
    for (const char* base : {"mamba", "mamba2"}) {
      all.push_back({base, ""});
      for (const std::string& arch : all_sparse_archs()) all.push_back({base, arch});
      all.push_back({base, std::string("sign_bin_lsh+key_selection") + kRunningStatistics});
    }
    all.push_back({"samba", ""});
    return all;
  }();
  return cases;
}
inline std::string base_arch_identifier(const BaseArch& case_) {
  return case_.first + "_" + arch_identifier(case_.second);
}

// T token ids drawn uniformly below `vocab`.
inline std::vector<std::int32_t> random_tokens(int T, int vocab, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int32_t> tokens(T);
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng.below(vocab));
  return tokens;
}

// The logits (T, V) of one sequence by the parallel forward: what streaming inference must reproduce.
inline std::vector<float> parallel_logits(models::Model& model, const std::vector<std::int32_t>& tokens) {
  layers::PackedBatch batch;
  batch.add_sequence(static_cast<int>(tokens.size()));
  std::vector<float> out(tokens.size() * std::size_t(model.config().vocab_size));
  Arena arena(model.arena_floats(batch, batch.rows()));
  model.logits(out.data(), tokens, batch, arena);
  return out;
}

// Every parameter moved off its initial value (E = 1, zero biases, ...), so every path carries gradient and signal.
inline void perturb_parameters(models::Model& model, std::uint64_t seed = 17) {
  Rng rng(seed);
  for (float& v : model.params().params()) v += 0.2f * static_cast<float>(rng.normal());
}

// Random tokens and labels for sequences of the given lengths, packed; about 60% of the rows scored.
inline models::TokenBatch random_batch(const models::ModelConfig& c, const std::vector<int>& lengths,
                                       std::uint64_t seed) {
  Rng rng(seed);
  models::TokenBatch tb;
  for (int len : lengths) {
    tb.batch.add_sequence(len);
    for (int t = 0; t < len; ++t) {
      tb.inputs.push_back(static_cast<int>(rng.below(c.vocab_size)));
      tb.labels.push_back(static_cast<int>(rng.below(c.vocab_size)));
      tb.scored.push_back(rng.uniform() < 0.6f);
    }
  }
  return tb;
}

// The gradient buffer after one forward + backward of `tb` (zeroed first), as a copy.
inline std::vector<float> batch_gradients(models::Model& model, const models::TokenBatch& tb,
                                          const models::ForwardOptions& options = {}) {
  Arena arena(model.arena_floats(tb.batch, tb.batch.rows(), tb.padded_length));
  model.params().zero_grad();
  model.forward(tb, arena, options);
  model.backward(tb, arena);
  return {model.params().grads().begin(), model.params().grads().end()};
}

// Central differences of `loss` for a few entries (every numel / per_tensor-th) of every parameter whose name passes
// `select`, against the analytic gradients `grads` (a copy of the gradient buffer). Returns how many were checked.
template <class Loss, class Select>
int check_finite_differences(models::Model& model, const std::vector<float>& grads, Loss&& loss, Select&& select,
                             std::size_t per_tensor = 3) {
  int checked = 0;
  for (const auto& t : model.params().tensors()) {
    if (!select(t.name)) continue;
    for (std::size_t k = 0; k < t.numel; k += std::max<std::size_t>(1, t.numel / per_tensor)) {
      float& p = model.params().params()[t.offset + k];
      const float saved = p, h = 1e-2f * std::max(1.0f, std::abs(saved));
      p = saved + h;
      const double up = loss();
      p = saved - h;
      const double down = loss();
      p = saved;
      const double fd = (up - down) / (2.0 * h), analytic = grads[t.offset + k];
      EXPECT_NEAR(analytic, fd, 2e-3 + 2e-2 * std::abs(fd)) << t.name << "[" << k << "]";
      ++checked;
    }
  }
  return checked;
}

}  // namespace hax::testing
