#include "hax/training/hf_checkpoint.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/engine/error.h"
#include "hax/io/known_keys.h"
#include "hax/io/safetensors.h"
#include "hax/io/whole_file.h"
#include "hax/models/model_params.h"
#include "hax/training/checkpoint.h"

namespace hax::training {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kTransformers = "transformers";
constexpr const char* kMambaSsm = "mamba_ssm";
constexpr double kPythonInfinity = 1e308;  // what strict_json_text makes of Python's Infinity

// JSON as Python writes it: transformers saves float("inf") (Mamba2's default time_step_limit) as the bare token
// Infinity, which strict JSON refuses. Outside strings, [-]Infinity becomes [-]1e308 and NaN null.
std::string strict_json_text(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (in_string) {
      out += ch;
      if (ch == '\\' && i + 1 < text.size()) out += text[++i];
      else if (ch == '"') in_string = false;
      continue;
    }
    const auto at = [&](std::string_view word) { return text.compare(i, word.size(), word) == 0; };
    if (at("Infinity")) {
      out += "1e308", i += 7;
    } else if (at("NaN")) {
      out += "null", i += 2;
    } else {
      in_string = ch == '"';
      out += ch;
    }
  }
  return out;
}

json read_python_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot open '", path.string(), "'");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return json::parse(strict_json_text(text.str()));
  } catch (const json::exception& e) {
    fail("'", path.string(), "' is not valid JSON: ", e.what());
  }
}

// Keys of Hugging Face's PretrainedConfig (and of its generation defaults) that change nothing a forward pass
// computes: provenance, output switches, labels, sampling settings.
const std::vector<std::string> kGenericKeys = {
    "_name_or_path", "architectures", "torch_dtype", "dtype", "transformers_version", "use_cache", "return_dict",
    "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss", "pruned_heads",
    "is_encoder_decoder", "is_decoder", "add_cross_attention", "tie_encoder_decoder", "chunk_size_feed_forward",
    "cross_attention_hidden_size", "id2label", "label2id", "problem_type", "tokenizer_class", "prefix",
    "sep_token_id", "decoder_start_token_id", "task_specific_params", "finetuning_task", "max_length", "min_length",
    "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty", "temperature", "top_k",
    "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "hax_seed"};

// A config object's keys, read with their types checked; finish() refuses the keys nobody asked for.
class ConfigKeys {
 public:
  ConfigKeys(const json& j, std::string where) : j_(j), where_(std::move(where)) {
    check(j.is_object(), where_, ": expected a JSON object");
  }
  const std::string& where() const { return where_; }

  template <class T>
  T get(const char* key, T fallback) {
    const json* value = find(key);
    if (!value || value->is_null()) return fallback;
    bool ok = false;
    if constexpr (std::is_same_v<T, bool>) ok = value->is_boolean();
    else if constexpr (std::is_integral_v<T>) ok = value->is_number_integer();
    else if constexpr (std::is_floating_point_v<T>) ok = value->is_number();
    else ok = value->is_string();
    check(ok, where_, ": \"", key, "\" is ", value->dump(), ", of the wrong type");
    return value->get<T>();
  }
  // The value at `key` (null when absent), marked as read.
  const json* find(const char* key) {
    known_.insert(key);
    const auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  // Keys that must be absent or hold `expected` (settings with one value hax computes).
  void expect(const char* key, const json& expected, const char* why) {
    const json* value = find(key);
    check(!value || value->is_null() || *value == expected, where_, ": \"", key, "\" is ", value ? value->dump() : "",
          ", which hax does not compute (", why, ")");
  }
  void ignore(const std::vector<std::string>& keys) { known_.insert(keys.begin(), keys.end()); }
  // Keys accepted but left out of the hint that lists the known ones (kGenericKeys: too many to be a help).
  void ignore_unlisted(const std::vector<std::string>& keys) { unlisted_.insert(keys.begin(), keys.end()); }
  void finish() const {
    const std::vector<std::string> known(known_.begin(), known_.end());
    for (const auto& item : j_.items())
      check(known_.contains(item.key()) || unlisted_.contains(item.key()), where_, ": \"", item.key(),
            "\" is not a config key hax knows", io::closest_key_hint(item.key(), known));
  }

 private:
  const json& j_;
  std::string where_;
  std::set<std::string> known_, unlisted_;
};

// "auto" (or absent): ceil(D / 16), as transformers and mamba_ssm compute it.
int time_step_rank(ConfigKeys& k, const char* key, int hidden_size) {
  const json* rank = k.find(key);
  if (!rank || rank->is_null() || *rank == "auto") return (hidden_size + 15) / 16;
  return k.get<int>(key, 0);
}

// int(expand * hidden_size), as transformers computes the inner width.
int expanded(ConfigKeys& k, const char* key, int hidden_size) {
  return static_cast<int>(k.get<double>(key, 2.0) * hidden_size);
}

// A dt clamp [lo, hi] after the softplus, which hax does not apply: only the no-op clamp (0, inf) is accepted.
void expect_no_dt_clamp(ConfigKeys& k, const char* key) {
  const json* limit = k.find(key);
  if (!limit || limit->is_null()) return;
  const bool no_op = limit->is_array() && limit->size() == 2 && (*limit)[0].is_number() && (*limit)[1].is_number() &&
                     (*limit)[0].get<double>() <= 0 && (*limit)[1].get<double>() >= kPythonInfinity;
  check(no_op, k.where(), ": \"", key, "\" is ", limit->dump(), ": hax does not clamp dt (only [0.0, Infinity], "
        "no clamp, is supported)");
}

// Mamba2 with several groups: transformers' gated RMSNorm normalizes each group's channels on their own, hax's
// all I channels together (the reference's); they agree for one group only.
void expect_one_group(int n_groups, const std::string& where) {
  check(n_groups == 1, where, ": Mamba2 with n_groups ", n_groups, " is not supported (hax's gated RMSNorm spans all ",
        "channels, transformers' normalizes each group on its own; they agree for n_groups 1 only)");
}

// transformers' MambaConfig / Mamba2Config, with their defaults for absent keys.
HfConfig read_transformers_config(ConfigKeys& k, bool mamba2) {
  HfConfig hf;
  hf.layout = kTransformers;
  models::ModelConfig& c = hf.config;
  c.model_type = mamba2 ? "mamba2" : "mamba";
  c.vocab_size = k.get("vocab_size", mamba2 ? 32768 : 50280);
  c.hidden_size = k.get("hidden_size", mamba2 ? 4096 : 768);
  c.state_size = k.get("state_size", mamba2 ? 128 : 16);
  c.num_hidden_layers = k.get("num_hidden_layers", mamba2 ? 64 : 32);
  c.layer_norm_epsilon = k.get("layer_norm_epsilon", 1e-5);
  c.intermediate_size = expanded(k, "expand", c.hidden_size);
  if (!mamba2) c.intermediate_size = k.get("intermediate_size", c.intermediate_size);  // Mamba2 derives it
  c.conv_kernel = k.get("conv_kernel", 4);
  c.time_step_rank = time_step_rank(k, "time_step_rank", c.hidden_size);
  c.use_bias = k.get("use_bias", false);
  c.use_conv_bias = k.get("use_conv_bias", true);
  c.initializer_range = k.get("initializer_range", 0.1);
  c.time_step_min = k.get("time_step_min", 1e-3);
  c.time_step_max = k.get("time_step_max", 0.1);
  c.time_step_floor = k.get("time_step_floor", 1e-4);
  c.rescale_prenorm_residual = k.get("rescale_prenorm_residual", false);
  c.pad_token_id = k.get("pad_token_id", mamba2 ? 1 : 0);
  c.bos_token_id = k.get("bos_token_id", 0);
  c.eos_token_id = k.get("eos_token_id", mamba2 ? 2 : 0);
  c.seed = k.get<std::uint64_t>("hax_seed", 1);
  hf.tie_word_embeddings = k.get("tie_word_embeddings", !mamba2);
  const json* act = k.find("hidden_act");
  check(!act || *act == "silu" || *act == "swish", k.where(), ": \"hidden_act\" is ", act ? act->dump() : "",
        ", which hax does not compute (SiLU only)");
  k.expect("rms_norm", true, "RMSNorm only");
  if (mamba2) {
    c.num_heads = k.get("num_heads", 128);
    c.head_dim = k.get("head_dim", 64);
    c.n_groups = k.get("n_groups", 8);
    c.chunk_size = k.get("chunk_size", 256);
    expect_no_dt_clamp(k, "time_step_limit");
    expect_one_group(c.n_groups, k.where());
    k.expect("norm_before_gate", false, "the gate before the norm");  // some released configs carry it
  } else {
    c.time_step_scale = k.get("time_step_scale", 1.0);
    // Keys that state-spaces/mamba-*-hf configs carry over from mamba_ssm, which transformers ignores.
    k.ignore({"d_model", "n_layer", "fused_add_norm", "pad_vocab_size_multiple", "ssm_cfg"});
  }
  // Initialization and runtime switches: no effect on what a forward pass computes.
  k.ignore({"residual_in_fp32", "time_step_init_scheme", "use_mambapy"});
  return hf;
}

// mamba_ssm's ssm_cfg of a Mamba (Mamba-1) layer.
void read_mamba_ssm_mixer(ConfigKeys& s, models::ModelConfig& c) {
  c.state_size = s.get("d_state", 16);
  c.conv_kernel = s.get("d_conv", 4);
  c.intermediate_size = expanded(s, "expand", c.hidden_size);
  c.time_step_rank = time_step_rank(s, "dt_rank", c.hidden_size);
  c.time_step_min = s.get("dt_min", 1e-3);
  c.time_step_max = s.get("dt_max", 0.1);
  c.time_step_floor = s.get("dt_init_floor", 1e-4);
  c.time_step_scale = s.get("dt_scale", 1.0);
  c.use_conv_bias = s.get("conv_bias", true);
  c.use_bias = s.get("bias", false);
  s.ignore({"dt_init", "use_fast_path", "layer_idx"});
}

// mamba_ssm's ssm_cfg of a Mamba2 layer.
void read_mamba_ssm_mixer2(ConfigKeys& s, models::ModelConfig& c) {
  c.model_type = "mamba2";
  c.state_size = s.get("d_state", 128);
  c.conv_kernel = s.get("d_conv", 4);
  c.intermediate_size = expanded(s, "expand", c.hidden_size);
  c.head_dim = s.get("headdim", 64);
  c.num_heads = c.head_dim > 0 ? c.intermediate_size / c.head_dim : 0;
  c.n_groups = s.get("ngroups", 1);
  c.chunk_size = s.get("chunk_size", 256);
  c.time_step_min = s.get("dt_min", 1e-3);
  c.time_step_max = s.get("dt_max", 0.1);
  c.time_step_floor = s.get("dt_init_floor", 1e-4);
  c.use_conv_bias = s.get("conv_bias", true);
  c.use_bias = s.get("bias", false);
  s.expect("d_ssm", nullptr, "the SSM spans the whole inner width");
  s.expect("rmsnorm", true, "the gated RMSNorm");
  s.expect("norm_before_gate", false, "the gate before the norm");
  s.expect("D_has_hdim", false, "one D per head");
  expect_no_dt_clamp(s, "dt_limit");
  expect_one_group(c.n_groups, s.where());
  s.ignore({"A_init_range", "use_mem_eff_path", "layer_idx", "activation", "learnable_init_states"});
}

// mamba_ssm's MambaConfig (MambaLMHeadModel): d_model, n_layer, ssm_cfg, the vocabulary padded up to a multiple.
HfConfig read_mamba_ssm_config(ConfigKeys& k) {
  HfConfig hf;
  hf.layout = kMambaSsm;
  models::ModelConfig& c = hf.config;
  c.model_type = "mamba";
  c.hidden_size = k.get("d_model", 2560);
  c.num_hidden_layers = k.get("n_layer", 64);
  const int multiple = k.get("pad_vocab_size_multiple", 8), vocab = k.get("vocab_size", 50277);
  check(multiple > 0, k.where(), ": \"pad_vocab_size_multiple\" must be > 0");
  c.vocab_size = (vocab + multiple - 1) / multiple * multiple;
  c.pad_token_id = c.bos_token_id = c.eos_token_id = 0;
  c.seed = k.get<std::uint64_t>("hax_seed", 1);
  hf.tie_word_embeddings = k.get("tie_embeddings", true);
  k.expect("rms_norm", true, "RMSNorm only");
  k.expect("d_intermediate", 0, "blocks without an MLP");
  const json* attn = k.find("attn_layer_idx");
  check(!attn || attn->is_null() || attn->empty(), k.where(), ": \"attn_layer_idx\" is ", attn ? attn->dump() : "",
        ": mamba_ssm's attention layers are not supported");
  k.ignore({"attn_cfg", "residual_in_fp32", "fused_add_norm"});
  static const json empty = json::object();
  const json* ssm = k.find("ssm_cfg");
  ConfigKeys s(ssm && !ssm->is_null() ? *ssm : empty, k.where() + ": ssm_cfg");
  const std::string layer = s.get<std::string>("layer", "Mamba1");
  check(layer == "Mamba1" || layer == "Mamba2", s.where(), ": \"layer\" \"", layer, "\" is not known (Mamba1, Mamba2)");
  if (layer == "Mamba1") read_mamba_ssm_mixer(s, c);
  else read_mamba_ssm_mixer2(s, c);
  s.finish();
  return hf;
}

// The name of a hax tensor in a checkpoint of `layout`.
std::string hf_name(const std::string& name, const std::string& layout) {
  if (name == models::kLmHeadName) return name;
  if (layout == kMambaSsm && name == models::kEmbeddingsName) return "backbone.embedding.weight";
  return "backbone." + name;
}

// The weights of a folder: model.safetensors, or the shards model.safetensors.index.json lists.
class HfWeights {
 public:
  explicit HfWeights(const fs::path& dir) {
    if (fs::exists(dir / "model.safetensors")) {
      source_ = dir / "model.safetensors";
      add_file(source_);
      for (const std::string& name : files_.back()->names()) by_name_[name] = files_.back().get();
    } else if (fs::exists(dir / "model.safetensors.index.json")) {
      source_ = dir / "model.safetensors.index.json";
      open_shards(dir);
    } else {
      const bool pickle = fs::exists(dir / "pytorch_model.bin");
      fail("'", dir.string(), "' has no model.safetensors (nor a model.safetensors.index.json of shards)",
           pickle ? ": its pytorch_model.bin is a PyTorch pickle, which hax does not read; save the model with "
                    "safetensors first (transformers: save_pretrained(..., safe_serialization=True))"
                  : "");
    }
  }

  const fs::path& source() const { return source_; }
  bool contains(const std::string& name) const { return by_name_.contains(name); }
  // Every tensor name, in order.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, file] : by_name_) out.push_back(name);
    return out;
  }
  const io::SafetensorsFile& file(const std::string& name) const { return *by_name_.at(name); }
  std::string where(const std::string& name) const { return cat(file(name).path().string(), ": tensor '", name, "'"); }
  std::vector<float> read(const std::string& name) const { return file(name).read(name).values; }

 private:
  const io::SafetensorsFile* add_file(const fs::path& path) {
    files_.push_back(std::make_unique<io::SafetensorsFile>(path));
    return files_.back().get();
  }

  void open_shards(const fs::path& dir) {
    const json index = read_python_json(source_);
    const auto map = index.find("weight_map");
    check(map != index.end() && map->is_object(), source_.string(), ": no \"weight_map\" object");
    std::map<std::string, const io::SafetensorsFile*> shards;
    for (const auto& [name, shard] : map->items()) {
      check(shard.is_string() && fs::path(shard.get<std::string>()).filename() == shard.get<std::string>(),
            source_.string(), ": the shard of '", name, "' is ", shard.dump(), ", not a file name in the folder");
      const std::string shard_name = shard.get<std::string>();
      if (!shards.contains(shard_name)) {
        check(fs::exists(dir / shard_name), source_.string(), ": shard '", shard_name, "' is missing");
        shards[shard_name] = add_file(dir / shard_name);
      }
      check(shards[shard_name]->contains(name), source_.string(), ": tensor '", name, "' is not in its shard '",
            shard_name, "'");
      by_name_[name] = shards[shard_name];
    }
    for (const auto& file : files_)
      for (const std::string& name : file->names())
        check(by_name_.contains(name) && by_name_.at(name) == file.get(), file->path().string(), ": tensor '", name,
              "' is not listed for this shard in ", source_.filename().string());
  }

  fs::path source_;
  std::vector<std::unique_ptr<io::SafetensorsFile>> files_;
  std::map<std::string, const io::SafetensorsFile*> by_name_;
};

// What a config's tensors are, for error messages: "MambaForCausalLM (4 layers, hidden_size 64, ...)".
std::string describe(const HfConfig& hf) {
  const models::ModelConfig& c = hf.config;
  return cat(hf.layout == kMambaSsm ? "mamba_ssm " : "", c.is_mamba2() ? "Mamba2" : "Mamba", " with ",
             c.num_hidden_layers, " layers, vocab ", c.vocab_size, ", hidden ", c.hidden_size, ", inner ",
             c.intermediate_size, ", state ", c.state_size);
}

// Whether the output layer is a separate lm_head.weight (else the embedding's transpose), per the weights and
// tie_word_embeddings.
bool has_untied_lm_head(const HfWeights& weights, const HfConfig& hf, const fs::path& config_path) {
  const std::string lm_head = models::kLmHeadName, embeddings = hf_name(models::kEmbeddingsName, hf.layout);
  if (!weights.contains(lm_head)) {
    check(hf.tie_word_embeddings, config_path.string(), ": tie_word_embeddings is false, but ",
          weights.source().string(), " has no '", lm_head, "'");
    return false;
  }
  if (!weights.contains(embeddings)) return false;  // reported as a missing tensor
  const auto& shape = weights.file(lm_head).shape(lm_head);
  check(shape == weights.file(embeddings).shape(embeddings), weights.where(lm_head), " has shape ",
        shape_string(shape), ", the embedding ", shape_string(weights.file(embeddings).shape(embeddings)));
  if (weights.read(lm_head) == weights.read(embeddings)) return false;
  check(!hf.tie_word_embeddings, weights.where(lm_head), " differs from the embedding, but ", config_path.string(),
        " says the two are tied (tie_word_embeddings true): which one is meant?");
  return true;
}

// Every tensor the model needs is there with its shape, and nothing else is.
void check_tensors(const HfWeights& weights, const ParamStore& layout, const HfConfig& hf) {
  std::set<std::string> expected;
  for (const TensorInfo& t : layout.tensors()) {
    const std::string name = hf_name(t.name, hf.layout);
    expected.insert(name);
    check(weights.contains(name), weights.source().string(), ": no tensor '", name, "', which a ", describe(hf),
          " has", weights.contains(t.name) ? " (the folder looks like a hax checkpoint, which needs no conversion)" : "");
    const auto& shape = weights.file(name).shape(name);
    check(shape == t.shape, weights.where(name), " has shape ", shape_string(shape), ", but a ", describe(hf),
          " needs ", shape_string(t.shape));
  }
  expected.insert(models::kLmHeadName);  // tied or not, has_untied_lm_head checked it
  for (const std::string& name : weights.names())
    check(expected.contains(name), weights.where(name), " is not a tensor of a ", describe(hf),
          " (is config.json the checkpoint's own?)");
}

}  // namespace

HfConfig hf_config_from_json(const json& j, const std::string& where) {
  ConfigKeys k(j, where);
  k.ignore_unlisted(kGenericKeys);
  const json* type = k.find("model_type");
  HfConfig hf;
  if (type && (*type == "mamba" || *type == "mamba2")) {
    hf = read_transformers_config(k, *type == "mamba2");
  } else {
    check(!type && j.contains("d_model"), where, ": model_type ", type ? type->dump() : "(none)",
          " is not one hax converts (known: \"mamba\" MambaForCausalLM, \"mamba2\" Mamba2ForCausalLM, or mamba_ssm's ",
          "config with d_model and n_layer)");
    hf = read_mamba_ssm_config(k);
  }
  check(!j.contains("quantization_config"), where, ": quantized checkpoints are not supported");
  k.finish();
  hf.config.validate(where);
  return hf;
}

json hf_config_json(const models::ModelConfig& c) {
  const std::string what = cat("a ", c.model_type, " model");
  check(!c.is_samba(), "Samba has no class in Hugging Face transformers (hax writes MambaForCausalLM and ",
        "Mamba2ForCausalLM)");
  check(!c.has_sparse(), what, " with sparse attention (sparse_arch \"", c.sparse_arch, "\") has no Hugging Face ",
        "counterpart: MambaForCausalLM and Mamba2ForCausalLM have no attention branch");
  check(c.intermediate_size % c.hidden_size == 0, what, " with intermediate_size ", c.intermediate_size,
        " cannot be written for transformers, which needs it to be expand x hidden_size ", c.hidden_size);
  if (c.is_mamba2()) expect_one_group(c.n_groups, what);
  json j = {{"architectures", {c.is_mamba2() ? "Mamba2ForCausalLM" : "MambaForCausalLM"}},
            {"model_type", c.model_type},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"state_size", c.state_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"expand", c.intermediate_size / c.hidden_size},
            {"conv_kernel", c.conv_kernel},
            {"time_step_rank", c.time_step_rank},
            {"layer_norm_epsilon", c.layer_norm_epsilon},
            {"use_bias", c.use_bias},
            {"use_conv_bias", c.use_conv_bias},
            {"hidden_act", "silu"},
            {"initializer_range", c.initializer_range},
            {"residual_in_fp32", true},
            {"time_step_min", c.time_step_min},
            {"time_step_max", c.time_step_max},
            {"time_step_floor", c.time_step_floor},
            {"rescale_prenorm_residual", c.rescale_prenorm_residual},
            {"pad_token_id", c.pad_token_id},
            {"bos_token_id", c.bos_token_id},
            {"eos_token_id", c.eos_token_id},
            {"tie_word_embeddings", !c.untied_lm_head},
            {"torch_dtype", "float32"},
            {"hax_seed", c.seed}};
  if (c.is_mamba2()) {
    j["num_heads"] = c.num_heads;
    j["head_dim"] = c.head_dim;
    j["n_groups"] = c.n_groups;
    j["chunk_size"] = c.chunk_size;
    j["rms_norm"] = true;
  } else {
    j["intermediate_size"] = c.intermediate_size;
    j["time_step_scale"] = c.time_step_scale;
    j["time_step_init_scheme"] = "random";
  }
  return j;
}

std::unique_ptr<models::Model> load_hf_model(const fs::path& dir, const LoadProgress& progress) {
  check(fs::is_directory(dir), "no Hugging Face checkpoint folder '", dir.string(), "'");
  const fs::path config_path = dir / "config.json";
  check(fs::exists(config_path), "'", dir.string(), "' has no config.json (a Hugging Face checkpoint folder holds ",
        "config.json and model.safetensors)");
  HfConfig hf = hf_config_from_json(read_python_json(config_path), config_path.string());
  const HfWeights weights(dir);
  hf.config.untied_lm_head = has_untied_lm_head(weights, hf, config_path);
  ParamStore layout;
  models::declare_parameters(layout, hf.config);
  check_tensors(weights, layout, hf);
  auto model = std::make_unique<models::Model>(hf.config, [&](ParamStore& params, ParamStore&) {
    std::uint64_t done = 0;
    for (const TensorInfo& t : params.tensors()) {
      const std::string name = hf_name(t.name, hf.layout);
      weights.file(name).read(name, params.param(t.name));
      if (progress) progress(done += t.numel, params.num_parameters());
    }
  });
  if (const auto bad = first_nonfinite(model->params(), model->params().params()))
    fail(weights.where(hf_name(bad->tensor, hf.layout)), " holds ", bad->value, " at flat index ", bad->index,
         ": a checkpoint with non-finite weights would only produce NaN");
  return model;
}

void save_hf_model(const fs::path& dir, const models::Model& model) {
  const json config = hf_config_json(model.config());  // refuses what transformers cannot hold, before any write
  check(model.buffers().tensors().empty(), "a model with buffers has no Hugging Face counterpart");
  std::vector<io::TensorView> tensors = io::layout_views(model.params(), model.params().params());
  for (io::TensorView& t : tensors) t.name = hf_name(t.name, kTransformers);
  write_folder(dir, [&](const fs::path& tmp) {
    io::write_json_file(tmp / "config.json", config);
    // transformers refuses a safetensors file without format "pt" in its metadata.
    io::save_safetensors(tmp / "model.safetensors", tensors, {{"format", "pt"}, {"producer", "hax"}});
  });
}

}  // namespace hax::training
