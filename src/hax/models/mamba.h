// The Mamba-1 language model of the reference (reference.md §3.1, §5.1): embedding, then per layer
// h = h + Mixer(RMSNorm(h)), a final RMSNorm, and logits = h E^T with the tied input embedding E.
// Works on packed batches (layers/packed_batch.h): padding never reaches the model.
#pragma once

#include <cstdint>
#include <vector>

#include "hax/engine/arena.h"
#include "hax/engine/params.h"
#include "hax/layers/mamba_mixer.h"
#include "hax/layers/packed_batch.h"
#include "hax/models/config.h"

namespace hax::models {

// One training/evaluation batch: packed input tokens, the next-token labels, and which rows are scored.
struct TokenBatch {
  layers::PackedBatch batch;
  std::vector<std::int32_t> inputs;  // (M)
  std::vector<std::int32_t> labels;  // (M) the token that follows each input
  std::vector<std::uint8_t> scored;  // (M) 1 where the loss and accuracy look at this row's prediction
};

struct BatchResult {
  double loss = 0;                       // mean cross-entropy over the scored rows
  std::vector<double> sequence_accuracy; // per sequence: fraction of its scored rows predicted right (NaN if none)
  int scored_rows = 0;
};

class MambaModel {
 public:
  // Declares and allocates the parameters; initializes them from config.seed unless `initialize` is false.
  explicit MambaModel(const ModelConfig& config, bool initialize = true);

  const ModelConfig& config() const { return config_; }
  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }

  // Loss and accuracy over the scored rows. Keeps the activations (in the arena, which it resets first) for a
  // following backward().
  BatchResult forward(const TokenBatch& batch, Arena& arena);
  // Gradient of forward()'s mean loss, accumulated into params().grads().
  void backward(const TokenBatch& batch, Arena& arena);

  // Logits of every row (M, V), for inference and cross-implementation checks.
  void logits(float* out, const std::vector<std::int32_t>& inputs, const layers::PackedBatch& batch, Arena& arena);

  // Floats of arena that forward + backward need for `sequences` sequences of `rows` real tokens in all,
  // `scored` of them scored (an upper bound).
  std::size_t arena_floats(int rows, int scored, int sequences) const;

 private:
  // Runs embedding and layers; leaves the last hidden state in hidden_.back().
  void forward_body(const std::vector<std::int32_t>& inputs, const layers::PackedBatch& batch, Arena& arena);

  ModelConfig config_;
  ParamStore params_;
  std::vector<layers::MambaMixer> mixers_;
  std::vector<std::string> norm_names_;

  // Forward state kept for backward (pointers into the arena).
  std::vector<float*> hidden_;  // L+1 of (M, D): the residual stream before each layer, and after the last
  std::vector<float*> normed_;  // L of (M, D)
  std::vector<float*> rstd_;    // L of (M)
  std::vector<layers::MambaMixer::Saved> saved_;
  std::vector<int> scored_rows_;
  float *final_in_ = nullptr, *final_rstd_ = nullptr, *final_out_ = nullptr, *logits_ = nullptr;
  std::vector<std::int32_t> scored_labels_;
};

}  // namespace hax::models
