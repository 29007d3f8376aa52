#include "hax/models/blocks.h"

#include <memory>

#include "hax/models/model_params.h"

namespace hax::models {

layers::SparseConfig sparse_config(const ModelConfig& c) {
  return {c.intermediate_size, c.state_size,         c.parsed_sparse_arch(),
          c.num_hash,          c.semantics,          c.lsh_resample_mode(), c.paper_ingredients(),
          c.lsh_statistics == "running", c.ks_normalization == "running"};
}

layers::MambaMixerConfig mamba_mixer_config(const ModelConfig& c) {
  layers::MambaMixerConfig m{c.hidden_size,  c.intermediate_size, c.state_size, c.time_step_rank,
                             c.conv_kernel, c.use_bias,          c.use_conv_bias, {}};
  if (c.has_sparse()) m.sparse = sparse_config(c);
  return m;
}

layers::Mamba2MixerConfig mamba2_mixer_config(const ModelConfig& c) {
  layers::Mamba2MixerConfig m;
  m.hidden = c.hidden_size;
  m.heads = c.num_heads;
  m.head_dim = c.head_dim;
  m.groups = c.n_groups;
  m.state = c.state_size;
  m.conv_kernel = c.conv_kernel;
  m.use_bias = c.use_bias;
  m.use_conv_bias = c.use_conv_bias;
  m.norm_eps = static_cast<float>(c.layer_norm_epsilon);
  if (c.has_sparse()) m.sparse = sparse_config(c);
  return m;
}

layers::AttentionConfig attention_config(const ModelConfig& c) {
  return {c.hidden_size, c.attn_num_heads, c.attn_window, static_cast<float>(c.rope_theta)};
}

layers::GatedMlpConfig gated_mlp_config(const ModelConfig& c) { return {c.hidden_size, c.mlp_intermediate_size()}; }

std::vector<Block> build_blocks(const ModelConfig& c, ParamStore& params, ParamStore& buffers) {
  std::vector<Block> blocks;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string m = layer_mixer_prefix(l);
    std::unique_ptr<layers::Mixer> mixer;
    if (c.is_mamba2())
      mixer = std::make_unique<layers::MixerOf<layers::Mamba2Mixer>>(mamba2_mixer_config(c), params, buffers, m);
    else if (c.is_attention_layer(l))
      mixer = std::make_unique<layers::MixerOf<layers::Attention>>(attention_config(c), params, m);
    else
      mixer = std::make_unique<layers::MixerOf<layers::MambaMixer>>(mamba_mixer_config(c), params, buffers, m);
    blocks.push_back({mixer_norm_name(c, l), std::move(mixer)});
    if (c.is_samba())
      blocks.push_back({mlp_norm_name(l), std::make_unique<layers::MixerOf<layers::GatedMlp>>(
                                              gated_mlp_config(c), params, layer_mlp_prefix(l))});
  }
  return blocks;
}

}  // namespace hax::models
