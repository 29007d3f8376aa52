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

}  // namespace hax::models
