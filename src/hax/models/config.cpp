#include "hax/models/config.h"

#include <algorithm>
#include <fstream>

#include "hax/engine/error.h"
#include "hax/io/known_keys.h"

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
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      check(it->is_array() && std::all_of(it->begin(), it->end(), [](const auto& e) { return e.is_string(); }),
            "expected a list of strings");
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

ops::sparse::PaperIngredients ModelConfig::paper_ingredients() const {
  if (semantics != ops::sparse::Semantics::paper) return ops::sparse::PaperIngredients::none();
  ops::sparse::PaperIngredients on;
  for (const std::string& name : paper_without) on.turn_off(name);  // names checked by validate()
  return on;
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

bool ModelConfig::is_attention_layer(int layer) const {
  return is_samba() && std::find(attn_layers.begin(), attn_layers.end(), layer) != attn_layers.end();
}

int ModelConfig::mlp_intermediate_size() const {
  const int wanted = static_cast<int>(hidden_size * hidden_ratio * 2.0 / 3.0);
  return 256 * ((wanted + 255) / 256);
}

namespace {

// Every key hax reads from a config.
const std::vector<std::string> kConfigKeys = {
    "model_type", "vocab_size", "hidden_size", "expand", "intermediate_size", "state_size", "time_step_rank",
    "conv_kernel", "num_hidden_layers", "layer_norm_epsilon", "norm_eps", "num_heads", "head_dim", "n_groups",
    "chunk_size", "rescale_prenorm_residual", "attn", "hidden_ratio", "max_position_embeddings", "use_bias",
    "use_conv_bias", "initializer_range", "time_step_min", "time_step_max", "time_step_floor", "time_step_scale",
    "pad_token_id", "bos_token_id", "eos_token_id", "hax_untied_lm_head", "hax_seed", "sparse_arch", "sparse_keys", "num_hash",
    "data_max_length", "hax_semantics", "hax_lsh_resample", "hax_paper_without", "hax_lsh_statistics",
    "hax_ks_normalization"};
const std::vector<std::string> kAttentionKeys = {"layers", "num_heads", "num_kv_heads", "window_size", "rope_theta",
                                                 "qkv_bias"};

// Keys of the reference's configs that change nothing hax computes, with the values at which that holds (none
// listed: any value) and why.
struct InertKey {
  const char* name;
  std::vector<nlohmann::json> values;
};
const std::vector<InertKey> kInertKeys = {
    {"transformers_version", {}},  // provenance
    {"use_cache", {}},             // an inference-time cache switch of Hugging Face's; hax streams with ModelState
    {"fuse_cross_entropy", {}},    // fused kernels of the same math
    {"fuse_norm", {}},
    {"fuse_swiglu", {}},
    {"tie_word_embeddings", {}},   // the reference's trainer multiplies by Emb^T whatever it says, as hax does
    {"residual_in_fp32", {}},      // hax keeps every activation in fp32 (README: precision)
    {"hidden_act", {"silu", "swish"}},
    {"time_step_init_scheme", {"random"}},
    {"rms_norm", {true}},
};

// Unknown keys, and inert keys at a value hax does not implement, are errors naming the key and the closest one.
void check_config_keys(const nlohmann::json& j, const std::string& where) {
  std::vector<std::string> known = kConfigKeys;
  for (const InertKey& k : kInertKeys) known.push_back(k.name);
  for (const auto& item : j.items()) {
    check(std::find(known.begin(), known.end(), item.key()) != known.end(), where, ": \"", item.key(),
          "\" is not a config key hax knows", io::closest_key_hint(item.key(), known));
    for (const InertKey& k : kInertKeys) {
      if (item.key() != k.name || k.values.empty()) continue;
      std::string accepted;
      for (const auto& v : k.values) accepted += (accepted.empty() ? "" : " or ") + v.dump();
      check(std::find(k.values.begin(), k.values.end(), item.value()) != k.values.end(), where, ": \"", k.name,
            "\" is ", item.value().dump(), ", which hax does not implement (it computes ", accepted, ")");
    }
  }
  if (auto attn = j.find("attn"); attn != j.end() && attn->is_object())
    for (const auto& item : attn->items())
      check(std::find(kAttentionKeys.begin(), kAttentionKeys.end(), item.key()) != kAttentionKeys.end(), where,
            ": \"attn.", item.key(), "\" is not a key of Samba's attention",
            io::closest_key_hint(item.key(), kAttentionKeys));
}

// Samba's "attn" object.
void read_attention(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  auto it = j.find("attn");
  if (it == j.end() || it->is_null()) return;
  const std::string inner = where + ": \"attn\"";
  check(it->is_object(), inner, " must be an object");
  if (auto layers = it->find("layers"); layers != it->end()) {
    check(layers->is_array(), inner, ".layers must be an array of layer indices");
    c.attn_layers.clear();
    for (const auto& l : *layers) {
      check(l.is_number_integer(), inner, ".layers holds ", l.dump(), ", not a layer index");
      c.attn_layers.push_back(l.get<int>());
    }
  }
  read_field(*it, "num_heads", c.attn_num_heads, inner);
  c.attn_num_kv_heads = c.attn_num_heads;
  read_field(*it, "num_kv_heads", c.attn_num_kv_heads, inner);
  read_field(*it, "window_size", c.attn_window, inner);
  read_field(*it, "rope_theta", c.rope_theta, inner);
  read_field(*it, "qkv_bias", c.qkv_bias, inner);
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& where) {
  check(j.is_object(), where, ": a model config must be a JSON object");
  check_config_keys(j, where);
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
  read_field(j, "norm_eps", c.layer_norm_epsilon, where);  // Samba's name for it
  read_field(j, "num_heads", c.num_heads, where);
  read_field(j, "head_dim", c.head_dim, where);
  read_field(j, "n_groups", c.n_groups, where);
  read_field(j, "chunk_size", c.chunk_size, where);
  read_field(j, "rescale_prenorm_residual", c.rescale_prenorm_residual, where);
  read_field(j, "hidden_ratio", c.hidden_ratio, where);
  read_field(j, "max_position_embeddings", c.max_position_embeddings, where);
  read_attention(j, c, where);
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
  read_field(j, "hax_untied_lm_head", c.untied_lm_head, where);
  read_field(j, "hax_seed", c.seed, where);
  read_field(j, "sparse_arch", c.sparse_arch, where);
  read_field(j, "sparse_keys", c.sparse_keys, where);
  read_field(j, "num_hash", c.num_hash, where);
  read_field(j, "data_max_length", c.data_max_length, where);
  std::string semantics = "causal";
  read_field(j, "hax_semantics", semantics, where);
  c.semantics = parse_semantics(semantics, where);
  read_field(j, "hax_lsh_resample", c.lsh_resample, where);
  read_field(j, "hax_paper_without", c.paper_without, where);
  read_field(j, "hax_lsh_statistics", c.lsh_statistics, where);
  read_field(j, "hax_ks_normalization", c.ks_normalization, where);
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
  check(is_mamba() || is_mamba2() || is_samba(), where, ": model_type \"", model_type,
        "\" is not supported (supported: mamba, mamba2, samba)");
  auto positive = [&](const char* key, long long v) { check(v > 0, where, ": \"", key, "\" must be > 0, got ", v); };
  if (is_mamba2()) validate_mamba2(where);
  if (is_samba()) validate_samba(where);
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
  positive("data_max_length", data_max_length);
  try {
    parsed_sparse_arch();
  } catch (const Error& e) {
    fail(where, ": \"sparse_arch\": ", e.what());
  }
  // Sign-bin LSH has 2^num_hash buckets; argmax LSH has num_hash (the paper's pre-training uses h = k = 128).
  const int max_hash = parsed_sparse_arch().has(ops::sparse::Pattern::sign_bin_lsh) ? 20 : kMaxArgmaxHash;
  check(num_hash > 0 && num_hash <= max_hash, where, ": \"num_hash\" must be in [1, ", max_hash, "]",
        max_hash == 20 ? " (2^num_hash sign-bin buckets)" : "", ", got ", num_hash);
  const std::string mode = lsh_resample_mode();
  check(mode == "never" || mode == "training" || mode == "every_forward", where, ": \"hax_lsh_resample\" \"", mode,
        "\" is not known (known: never, training, every_forward)");
  validate_paper_without(where);
  validate_causal_option(where, "hax_lsh_statistics", lsh_statistics, "none", "lsh_statistics");
  validate_causal_option(where, "hax_ks_normalization", ks_normalization, "position", "ks_normalization");
}

// A `causal` option that is either `fallback` (the default) or "running".
void ModelConfig::validate_causal_option(const std::string& where, const char* key, const std::string& value,
                                         const std::string& fallback, const char* paper_ingredient) const {
  check(value == fallback || value == "running", where, ": \"", key, "\" \"", value, "\" is not known (known: ",
        fallback, ", running)");
  check(value == fallback || semantics == ops::sparse::Semantics::causal, where, ": \"", key,
        "\" \"running\" is a `causal` option (`paper` has its own whole-sequence statistics; --paper-without ",
        paper_ingredient, " turns them off)");
}

void ModelConfig::validate_paper_without(const std::string& where) const {
  if (paper_without.empty()) return;
  check(semantics == ops::sparse::Semantics::paper, where, ": \"hax_paper_without\" turns off ingredients of `paper` "
        "semantics, but the semantics is causal");
  const auto& known = ops::sparse::PaperIngredients::names();
  for (const std::string& name : paper_without)
    check(std::find(known.begin(), known.end(), name) != known.end(), where, ": \"hax_paper_without\": \"", name,
          "\" is not an ingredient of `paper`", io::closest_key_hint(name, known));
}

void ModelConfig::validate_mamba2(const std::string& where) const {
  check(num_heads > 0 && head_dim > 0 && n_groups > 0, where, ": Mamba2 needs num_heads, head_dim and n_groups > 0");
  check(num_heads * head_dim == intermediate_size, where, ": Mamba2 needs num_heads * head_dim (", num_heads, " * ",
        head_dim, ") = intermediate_size = expand * hidden_size (", intermediate_size, ")");
  check(num_heads % n_groups == 0, where, ": n_groups ", n_groups, " does not divide num_heads ", num_heads);
  check(chunk_size > 0, where, ": \"chunk_size\" must be > 0");
}

void ModelConfig::validate_samba(const std::string& where) const {
  check(!has_sparse(), where, ": Samba takes no sparse arch (the reference raises an error for it too)");
  check(attn_num_heads > 0 && hidden_size % attn_num_heads == 0, where, ": attn.num_heads ", attn_num_heads,
        " must divide hidden_size ", hidden_size);
  check((hidden_size / attn_num_heads) % 2 == 0, where, ": the attention head size ", hidden_size / attn_num_heads,
        " must be even (rotary embeddings rotate pairs)");
  check(attn_num_kv_heads == attn_num_heads, where, ": attn.num_kv_heads ", attn_num_kv_heads,
        " != num_heads: hax implements multi-head attention only (the reference's Samba has num_kv_heads = num_heads)");
  check(!qkv_bias, where, ": attn.qkv_bias true is not implemented (the reference's Samba has none)");
  check(attn_window > 0, where, ": attn.window_size must be > 0");
  check(rope_theta > 0, where, ": attn.rope_theta must be > 0");
  check(hidden_ratio > 0, where, ": hidden_ratio must be > 0");
  for (int l : attn_layers)
    check(l >= 0 && l < num_hidden_layers, where, ": attn.layers holds ", l, ", outside 0..", num_hidden_layers - 1);
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
  if (untied_lm_head) j["hax_untied_lm_head"] = true;
  if (is_mamba2()) {
    j["num_heads"] = num_heads;
    j["head_dim"] = head_dim;
    j["n_groups"] = n_groups;
    j["chunk_size"] = chunk_size;
    j["rescale_prenorm_residual"] = rescale_prenorm_residual;
  }
  if (is_samba()) {
    j["attn"] = {{"layers", attn_layers}, {"num_heads", attn_num_heads}, {"num_kv_heads", attn_num_kv_heads},
                 {"qkv_bias", qkv_bias}, {"rope_theta", rope_theta}, {"window_size", attn_window}};
    j["hidden_ratio"] = hidden_ratio;
    j["max_position_embeddings"] = max_position_embeddings;
  }
  if (!has_sparse()) return j;
  j["sparse_arch"] = sparse_arch;
  j["sparse_keys"] = sparse_keys;
  j["num_hash"] = num_hash;
  j["data_max_length"] = data_max_length;
  j["hax_semantics"] = semantics_name(semantics);
  j["hax_lsh_resample"] = lsh_resample_mode();
  if (!paper_without.empty()) j["hax_paper_without"] = paper_without;
  if (lsh_statistics != "none") j["hax_lsh_statistics"] = lsh_statistics;
  if (ks_normalization != "position") j["hax_ks_normalization"] = ks_normalization;
  return j;
}

}  // namespace hax::models
