// The models' parameters: names and shapes exactly as the reference PyTorch models (fla MambaModel /
// EnhancedMambaModel, reference.md §3.2; Mamba2Model / EnhancedMamba2Model, §4.2; SambaModel, §5.3), and the
// reference initialization (§3.11, §4.5, §5.3), drawn from the config's seed.
//   every model:  embeddings.weight (V, D), norm_f.weight (D); lm_head.weight (V, D) with config.untied_lm_head
//   mamba/mamba2: layers.<l>.norm.weight, layers.<l>.mixer.*
//   samba:        layers.<l>.mixer_norm.weight, layers.<l>.mixer.* (Mamba, or q/k/v/o_proj for attention),
//                 layers.<l>.mlp_norm.weight, layers.<l>.mlp.{gate,up,down}_proj.weight
#pragma once

#include <string>

#include "hax/engine/params.h"
#include "hax/models/config.h"

namespace hax::models {

// The output layer's own weights (config.untied_lm_head); otherwise the output layer is the embedding's transpose.
inline constexpr const char* kLmHeadName = "lm_head.weight";
inline constexpr const char* kEmbeddingsName = "embeddings.weight";
// The weights the output layer multiplies by: kLmHeadName or kEmbeddingsName.
const char* output_weight_name(const ModelConfig& config);

// "layers.3.mixer." for layer 3.
std::string layer_mixer_prefix(int layer);
// Samba's gated MLP of layer 3: "layers.3.mlp.".
std::string layer_mlp_prefix(int layer);
// The RMSNorm weights before layer l's mixer and (Samba) its MLP.
std::string mixer_norm_name(const ModelConfig& config, int layer);
std::string mlp_norm_name(int layer);

// Declares every tensor of the model in `store` (before store.allocate()).
void declare_parameters(ParamStore& store, const ModelConfig& config);

// Fills an allocated store with the reference initialization. Each tensor draws from its own RNG stream
// (forked from config.seed by the tensor's index), so adding a tensor never changes the others' values.
void init_parameters(ParamStore& store, const ModelConfig& config);

// Non-trainable tensors (PyTorch's buffers): the per-layer LSH projection H "layers.<l>.mixer.lsh_projection"
// (N, num_hash) of a model with an LSH pattern. Saved in model.safetensors beside the parameters, never updated by
// the optimizer, and not counted as parameters.
void declare_buffers(ParamStore& buffers, const ModelConfig& config);
// H ~ Normal(0, 1), drawn from config.seed.
void init_buffers(ParamStore& buffers, const ModelConfig& config);

}  // namespace hax::models
