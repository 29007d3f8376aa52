// Turns a model config into its list of residual blocks (models/model.h): the layer configs each mixer kind takes
// (layers/*.h), read off the model's config.json keys, and the mixers bound to the model's parameter store.
#pragma once

#include <vector>

#include "hax/engine/params.h"
#include "hax/layers/attention.h"
#include "hax/layers/gated_mlp.h"
#include "hax/layers/mamba2_mixer.h"
#include "hax/layers/mamba_mixer.h"
#include "hax/models/config.h"
#include "hax/models/model.h"

namespace hax::models {

// The sparse branch's settings, for a model with a sparse arch (channels = I, state = N).
layers::SparseConfig sparse_config(const ModelConfig& config);
layers::MambaMixerConfig mamba_mixer_config(const ModelConfig& config);
layers::Mamba2MixerConfig mamba2_mixer_config(const ModelConfig& config);
layers::AttentionConfig attention_config(const ModelConfig& config);
layers::GatedMlpConfig gated_mlp_config(const ModelConfig& config);

// The blocks of config.model_type, bound to `params` (allocated, names of models/model_params.h) and `buffers`.
std::vector<Block> build_blocks(const ModelConfig& config, ParamStore& params, ParamStore& buffers);

}  // namespace hax::models
