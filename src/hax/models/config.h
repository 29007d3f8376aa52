// Model configuration, read from and written to Hugging Face-style config.json (the reference's configs/*.json).
// Every field the engine uses is validated on load; an error names the file and the key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/ops/sparse/semantics.h"
#include "hax/ops/sparse/sparse_keys.h"

namespace hax::models {

// The most argmax-LSH hyperplanes (= buckets) a config may ask for; sign-bin LSH allows 20 (2^20 buckets).
inline constexpr int kMaxArgmaxHash = 4096;

struct ModelConfig {
  std::string model_type = "mamba";  // "mamba" (Mamba-1), "mamba2" or "samba" (models/model.h)
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
  // Mamba2 (reference.md §4): H heads of P channels (H * P = I), B and C shared by the heads of each of G groups.
  int num_heads = 8;
  int head_dim = 16;
  int n_groups = 1;
  int chunk_size = 256;  // the reference kernel's chunk; hax's SSD chooses its own (any chunk is exact)
  bool rescale_prenorm_residual = false;  // Mamba2: out_proj drawn U(+-1/sqrt(I)) / sqrt(layers)

  // Samba (reference.md §5.3): the layers (0-based) whose mixer is sliding-window attention instead of Mamba, and
  // the attention's settings (the config's "attn" object); every layer also has a gated MLP of width
  // 256 * ceil(int(D * hidden_ratio * 2/3) / 256).
  std::vector<int> attn_layers;
  int attn_num_heads = 4;
  int attn_num_kv_heads = 4;
  int attn_window = 64;  // keys per query, itself included
  double rope_theta = 10000.0;
  bool qkv_bias = false;
  int hidden_ratio = 4;
  int max_position_embeddings = 2048;

  // hax extension ("hax_untied_lm_head"): the output layer has weights of its own, "lm_head.weight" (V, D), instead
  // of the input embedding's (a Hugging Face checkpoint with tie_word_embeddings false; models/hf_checkpoint.h).
  // False: logits = h E^T with the embedding E, as the reference computes whatever "tie_word_embeddings" says.
  bool untied_lm_head = false;

  std::uint64_t seed = 1;  // hax extension ("hax_seed"): the seed of the initialization and of the LSH projections

  // The sparse-attention branch of the enhanced mixer (reference.md §3.3, §3.5-3.10). Empty: plain Mamba.
  std::string sparse_arch;    // "sliding_window", "sign_bin_lsh+key_selection", ... (ops/sparse/sparse_keys.h)
  int sparse_keys = 64;       // total key budget per query, split evenly over the patterns
  int num_hash = 8;           // LSH hyperplanes: 2^num_hash sign-bin buckets (<= 20), num_hash argmax buckets
  int data_max_length = 2048; // only sets the dilation: data_max_length // per-pattern budget
  ops::sparse::Semantics semantics = ops::sparse::Semantics::causal;  // "hax_semantics": "causal" or "paper"
  // When the LSH projection H is drawn ("hax_lsh_resample"): "never" uses the per-layer matrix saved in the
  // checkpoint; "training" draws a fresh one each training step (evaluation uses the saved one); "every_forward"
  // draws one every forward, evaluation included, as the reference does. Default: "every_forward" for `paper`,
  // "never" for `causal`.
  std::string lsh_resample;
  // `paper` only, for ablations ("hax_paper_without"): the ingredients of `paper` to replace by `causal`'s
  // (ops::sparse::PaperIngredients::names()). Empty: the reference's behaviour throughout.
  std::vector<std::string> paper_without;
  // `causal` only ("hax_lsh_statistics"): "none" (the default) hashes the raw vectors; "running" centres and scales
  // them by the statistics of their prefix, a causal stand-in for `paper`'s whole-sequence statistics.
  std::string lsh_statistics = "none";
  // `causal` only ("hax_ks_normalization"): "position" (the default) divides the key-selection feature cumsum(Q)_t
  // by its norm over the features; "running" divides each feature by its norm over the prefix, a causal stand-in for
  // `paper`'s norm over the whole sequence.
  std::string ks_normalization = "position";

  bool is_mamba() const { return model_type == "mamba"; }
  bool is_mamba2() const { return model_type == "mamba2"; }
  bool is_samba() const { return model_type == "samba"; }
  bool is_attention_layer(int layer) const;  // Samba: the layer's mixer is attention
  int mlp_intermediate_size() const;         // Samba's gated MLP width

  bool has_sparse() const { return !sparse_arch.empty(); }
  // The sparse arch with its budget and dilation from these fields (hax::Error for a bad name). Needs has_sparse().
  ops::sparse::SparseArch parsed_sparse_arch() const;
  bool has_key_selection() const;  // trains with the gate loss
  bool has_lsh() const;            // carries fixed LSH projections
  // lsh_resample with its default filled in.
  std::string lsh_resample_mode() const;
  // The ingredients of `paper` that are on (none under `causal`).
  ops::sparse::PaperIngredients paper_ingredients() const;

  // Parses a config object. `where` names the source (a path) for error messages.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& where);
  static ModelConfig load(const std::string& path);
  nlohmann::json to_json() const;
  void validate(const std::string& where) const;

 private:
  void validate_mamba2(const std::string& where) const;
  void validate_paper_without(const std::string& where) const;
  void validate_causal_option(const std::string& where, const char* key, const std::string& value,
                              const std::string& fallback, const char* paper_ingredient) const;
  void validate_samba(const std::string& where) const;
};

// "causal" / "paper"; an error names `where` for anything else.
ops::sparse::Semantics parse_semantics(const std::string& name, const std::string& where);
std::string semantics_name(ops::sparse::Semantics semantics);

}  // namespace hax::models
