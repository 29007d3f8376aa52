// Model configuration, read from and written to Hugging Face-style config.json (the reference's configs/*.json).
// Every field the engine uses is validated on load; an error names the file and the key.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace hax::models {

struct ModelConfig {
  std::string model_type = "mamba";  // "mamba" (Mamba-1); more architectures arrive with later issues
  int vocab_size = 100;
  int hidden_size = 64;         // D
  int intermediate_size = 128;  // I = expand * D
  int state_size = 16;          // N
  int time_step_rank = 8;       // R
  int conv_kernel = 4;          // K
  int num_hidden_layers = 2;
  double layer_norm_epsilon = 1e-5;
  double initializer_range = 0.1;
  bool use_bias = false;       // in_proj / out_proj bias
  bool use_conv_bias = true;
  double time_step_min = 1e-3;
  double time_step_max = 0.1;
  double time_step_floor = 1e-4;
  double time_step_scale = 1.0;
  int pad_token_id = 3;
  int bos_token_id = 1;
  int eos_token_id = 2;
  std::uint64_t seed = 1;  // hax extension: the seed of the initialization (and of fixed LSH projections later)

  // Parses a config object. `where` names the source (a path) for error messages.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& where);
  static ModelConfig load(const std::string& path);
  nlohmann::json to_json() const;
  void validate(const std::string& where) const;
};

}  // namespace hax::models
