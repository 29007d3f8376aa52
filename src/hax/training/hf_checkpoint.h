// Hugging Face checkpoints: a folder with config.json and model.safetensors (or shards listed by
// model.safetensors.index.json) in the layout of transformers' MambaForCausalLM or Mamba2ForCausalLM (the released
// state-spaces/mamba-*-hf models), or of mamba_ssm's MambaLMHeadModel (config d_model / n_layer / ssm_cfg, the
// original state-spaces/mamba-* releases saved as safetensors). Read into a hax model, and written from one.
//
// The tensors are hax's with a "backbone." prefix ("backbone.embedding.weight" in mamba_ssm's layout), plus
// "lm_head.weight" when the output layer is not tied. F32, F16 and BF16 are read (to float); we write F32.
// A separate lm_head.weight equal to the embedding is the tied layer; one that differs needs
// tie_word_embeddings false and becomes hax's untied output layer (ModelConfig::untied_lm_head).
//
// Everything is checked before anything is written: unknown config keys, settings hax does not compute
// (hidden_act other than SiLU, a dt clamp, Mamba2 with more than one group: transformers normalizes per group),
// missing or extra tensors, wrong shapes and unreadable dtypes are each one hax::Error naming the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "hax/models/model.h"

namespace hax::training {

// A Hugging Face folder's config as hax's, and how its tensors are named.
struct HfConfig {
  models::ModelConfig config;  // untied_lm_head false: the weights decide it (load_hf_model)
  bool tie_word_embeddings = true;
  std::string layout;  // "transformers" or "mamba_ssm"
};

// Reads config.json's object; `where` names it in errors.
HfConfig hf_config_from_json(const nlohmann::json& j, const std::string& where);
// The config.json of a hax model in transformers' layout. A hax::Error for what transformers cannot hold: a sparse
// branch, Samba, Mamba2 with n_groups > 1, an inner width that is not a multiple of the hidden size.
nlohmann::json hf_config_json(const models::ModelConfig& config);

// Reads and checks a folder. `progress`, when given, hears (parameters read, parameters in all) after each tensor.
using LoadProgress = std::function<void(std::uint64_t done, std::uint64_t total)>;
std::unique_ptr<models::Model> load_hf_model(const std::filesystem::path& dir, const LoadProgress& progress = {});
// Writes `model` as a MambaForCausalLM / Mamba2ForCausalLM folder (config.json, model.safetensors in F32), through
// a temp folder renamed into place.
void save_hf_model(const std::filesystem::path& dir, const models::Model& model);

}  // namespace hax::training
