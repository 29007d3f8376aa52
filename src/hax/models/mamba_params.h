// The Mamba-1 model's parameters: names and shapes exactly as the reference PyTorch model (fla MambaModel /
// EnhancedMambaModel, reference.md §3.2), and the reference initialization (§3.11), drawn from the config's seed.
#pragma once

#include <string>

#include "hax/engine/params.h"
#include "hax/models/config.h"

namespace hax::models {

// "layers.3.mixer." for layer 3.
std::string mamba_layer_prefix(int layer);

// Declares every tensor of the model in `store` (before store.allocate()).
void declare_mamba_parameters(ParamStore& store, const ModelConfig& config);

// Fills an allocated store with the reference initialization. Each tensor draws from its own RNG stream
// (forked from config.seed by the tensor's index), so adding a tensor never changes the others' values.
void init_mamba_parameters(ParamStore& store, const ModelConfig& config);

// Non-trainable tensors (PyTorch's buffers): the per-layer LSH projection H "layers.<l>.mixer.lsh_projection"
// (N, num_hash) of a model with an LSH pattern. Saved in model.safetensors beside the parameters, never updated by
// the optimizer, and not counted as parameters.
inline constexpr const char* kLshProjectionName = "lsh_projection";
void declare_mamba_buffers(ParamStore& buffers, const ModelConfig& config);
// H ~ Normal(0, 1), drawn from config.seed.
void init_mamba_buffers(ParamStore& buffers, const ModelConfig& config);

}  // namespace hax::models
