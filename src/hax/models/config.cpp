#include "hax/models/config.h"

#include <fstream>

#include "hax/engine/error.h"

namespace hax::models {
namespace {

// Reads j[key] into `out` when present, checking its JSON type; absent keys keep the default.
template <class T>
void read_field(const nlohmann::json& j, const char* key, T& out, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    if constexpr (std::is_same_v<T, bool>) {
      check(it->is_boolean(), "expected true/false");
    } else if constexpr (std::is_integral_v<T>) {
      check(it->is_number_integer(), "expected an integer");
    } else if constexpr (std::is_floating_point_v<T>) {
      check(it->is_number(), "expected a number");
    } else {
      check(it->is_string(), "expected a string");
    }
    out = it->get<T>();
  } catch (const std::exception& e) {
    fail(where, ": config key \"", key, "\": ", e.what(), " (got ", it->dump(), ")");
  }
}

}  // namespace

ops::sparse::Semantics parse_semantics(const std::string& name, const std::string& where) {
  if (name == "causal") return ops::sparse::Semantics::causal;
  if (name == "paper") return ops::sparse::Semantics::paper;
  fail(where, ": semantics \"", name, "\" is not known (known: causal, paper)");
}

std::string semantics_name(ops::sparse::Semantics s) { return s == ops::sparse::Semantics::paper ? "paper" : "causal"; }

std::string ModelConfig::lsh_resample_mode() const {
  if (!lsh_resample.empty()) return lsh_resample;
  return semantics == ops::sparse::Semantics::paper ? "every_forward" : "never";
}

ops::sparse::SparseArch ModelConfig::parsed_sparse_arch() const {
  return ops::sparse::parse_sparse_arch(sparse_arch, sparse_keys, data_max_length);
}

bool ModelConfig::has_key_selection() const {
  return has_sparse() && parsed_sparse_arch().has(ops::sparse::Pattern::key_selection);
}

bool ModelConfig::has_lsh() const {
  if (!has_sparse()) return false;
  const ops::sparse::SparseArch arch = parsed_sparse_arch();
  return arch.has(ops::sparse::Pattern::sign_bin_lsh) || arch.has(ops::sparse::Pattern::argmax_lsh);
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& where) {
  check(j.is_object(), where, ": a model config must be a JSON object");
  ModelConfig c;
  read_field(j, "model_type", c.model_type, where);
  read_field(j, "vocab_size", c.vocab_size, where);
  read_field(j, "hidden_size", c.hidden_size, where);
  int expand = 2;
  read_field(j, "expand", expand, where);
  c.intermediate_size = expand * c.hidden_size;
  read_field(j, "intermediate_size", c.intermediate_size, where);
  read_field(j, "state_size", c.state_size, where);
  read_field(j, "time_step_rank", c.time_step_rank, where);
  read_field(j, "conv_kernel", c.conv_kernel, where);
  read_field(j, "num_hidden_layers", c.num_hidden_layers, where);
  read_field(j, "layer_norm_epsilon", c.layer_norm_epsilon, where);
  read_field(j, "initializer_range", c.initializer_range, where);
  read_field(j, "use_bias", c.use_bias, where);
  read_field(j, "use_conv_bias", c.use_conv_bias, where);
  read_field(j, "time_step_min", c.time_step_min, where);
  read_field(j, "time_step_max", c.time_step_max, where);
  read_field(j, "time_step_floor", c.time_step_floor, where);
  read_field(j, "time_step_scale", c.time_step_scale, where);
  read_field(j, "pad_token_id", c.pad_token_id, where);
  read_field(j, "bos_token_id", c.bos_token_id, where);
  read_field(j, "eos_token_id", c.eos_token_id, where);
  read_field(j, "hax_seed", c.seed, where);
  read_field(j, "sparse_arch", c.sparse_arch, where);
  read_field(j, "sparse_keys", c.sparse_keys, where);
  read_field(j, "num_hash", c.num_hash, where);
  read_field(j, "data_max_length", c.data_max_length, where);
  std::string semantics = "causal";
  read_field(j, "hax_semantics", semantics, where);
  c.semantics = parse_semantics(semantics, where);
  read_field(j, "hax_lsh_resample", c.lsh_resample, where);
  c.validate(where);
  return c;
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), "cannot open model config '", path, "'");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    fail("model config '", path, "' is not valid JSON: ", e.what());
  }
  return from_json(j, path);
}

void ModelConfig::validate(const std::string& where) const {
  check(model_type == "mamba", where, ": model_type \"", model_type, "\" is not supported (supported: mamba)");
  auto positive = [&](const char* key, long long v) { check(v > 0, where, ": \"", key, "\" must be > 0, got ", v); };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("state_size", state_size);
  positive("time_step_rank", time_step_rank);
  positive("conv_kernel", conv_kernel);
  positive("num_hidden_layers", num_hidden_layers);
  check(layer_norm_epsilon > 0, where, ": \"layer_norm_epsilon\" must be > 0");
  check(initializer_range >= 0, where, ": \"initializer_range\" must be >= 0");
  check(0 < time_step_min && time_step_min <= time_step_max, where,
        ": need 0 < time_step_min <= time_step_max, got ", time_step_min, " and ", time_step_max);
  check(pad_token_id >= 0 && pad_token_id < vocab_size, where, ": pad_token_id ", pad_token_id,
        " is outside the vocabulary of ", vocab_size);
  if (!has_sparse()) return;
  positive("sparse_keys", sparse_keys);
  check(num_hash > 0 && num_hash <= 20, where, ": \"num_hash\" must be in [1, 20], got ", num_hash);
  positive("data_max_length", data_max_length);
  try {
    parsed_sparse_arch();
  } catch (const Error& e) {
    fail(where, ": \"sparse_arch\": ", e.what());
  }
  const std::string mode = lsh_resample_mode();
  check(mode == "never" || mode == "training" || mode == "every_forward", where, ": \"hax_lsh_resample\" \"", mode,
        "\" is not known (known: never, training, every_forward)");
}

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j = {{"model_type", model_type},
          {"vocab_size", vocab_size},
          {"hidden_size", hidden_size},
          {"intermediate_size", intermediate_size},
          {"state_size", state_size},
          {"time_step_rank", time_step_rank},
          {"conv_kernel", conv_kernel},
          {"num_hidden_layers", num_hidden_layers},
          {"layer_norm_epsilon", layer_norm_epsilon},
          {"initializer_range", initializer_range},
          {"use_bias", use_bias},
          {"use_conv_bias", use_conv_bias},
          {"time_step_min", time_step_min},
          {"time_step_max", time_step_max},
          {"time_step_floor", time_step_floor},
          {"time_step_scale", time_step_scale},
          {"pad_token_id", pad_token_id},
          {"bos_token_id", bos_token_id},
          {"eos_token_id", eos_token_id},
          {"hax_seed", seed}};
  if (!has_sparse()) return j;
  j["sparse_arch"] = sparse_arch;
  j["sparse_keys"] = sparse_keys;
  j["num_hash"] = num_hash;
  j["data_max_length"] = data_max_length;
  j["hax_semantics"] = semantics_name(semantics);
  j["hax_lsh_resample"] = lsh_resample_mode();
  return j;
}

}  // namespace hax::models
