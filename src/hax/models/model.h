// The language models of the reference (reference.md §3.1, §4.1, §5.1-5.3), all one shape: an embedding, a list of
// residual blocks h = h + Mixer(RMSNorm(h)), a final RMSNorm, and logits = h E^T with the tied input embedding E
// (or, with config.untied_lm_head, an output layer of its own: logits = h W^T, W = "lm_head.weight").
// config.model_type chooses the blocks (models/blocks.h):
//   mamba:  per layer one block with a Mamba mixer (with the sparse branch when the config has a sparse arch);
//   mamba2: per layer one block with a Mamba2 mixer (likewise);
//   samba:  per layer a Mamba or sliding-window attention block, then a gated-MLP block.
// Works on packed batches (layers/packed_batch.h): padding never reaches the model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <span>
#include <vector>

#include "hax/engine/arena.h"
#include "hax/engine/params.h"
#include "hax/layers/mixer.h"
#include "hax/layers/packed_batch.h"
#include "hax/models/config.h"
#include "hax/models/model_state.h"

namespace hax::models {

// One training/evaluation batch: packed input tokens, the next-token labels, and which rows are scored.
struct TokenBatch {
  layers::PackedBatch batch;
  std::vector<std::int32_t> inputs;  // (M)
  std::vector<std::int32_t> labels;  // (M) the token that follows each input
  std::vector<std::uint8_t> scored;  // (M) 1 where the loss and accuracy look at this row's prediction
  // `paper` semantics only: the length the reference would pad every sequence to (its statistics count the
  // padding). 0: the longest sequence of the batch.
  int padded_length = 0;
};

// What a forward call does besides the math.
struct ForwardOptions {
  bool training = false;         // computes the gate loss (key selection) for backward
  std::uint64_t noise_seed = 0;  // the draws of this call: gate-loss candidates, resampled LSH projections
};

// The weight of the gate (ranking) loss in the training objective CE + 0.1 * sum over layers (reference.md §3.9).
inline constexpr float kGateLossWeight = 0.1f;

struct BatchResult {
  double loss = 0;                       // mean cross-entropy over the scored rows
  double gate_loss = 0;                  // sum over layers of the gate loss (training with key selection only)
  std::vector<double> sequence_accuracy; // per sequence: fraction of its scored rows predicted right (NaN if none)
  int scored_rows = 0;
};

// One residual block: h = h + mixer(RMSNorm(h; norm weight)).
struct Block {
  std::string norm_name;  // the RMSNorm weight's parameter name
  std::unique_ptr<layers::Mixer> mixer;
};

class Model {
 public:
  // Declares and allocates the parameters; initializes them from config.seed unless `initialize` is false.
  explicit Model(const ModelConfig& config, bool initialize = true);
  // Fills the parameters and buffers with `load` (which may replace their storage, as io::load_params_mapped does)
  // before the layers bind to them.
  using ParamsLoader = std::function<void(ParamStore& params, ParamStore& buffers)>;
  Model(const ModelConfig& config, const ParamsLoader& load);

  const ModelConfig& config() const { return config_; }
  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }
  // Non-trainable tensors saved with the parameters (the fixed LSH projections; models/mamba_params.h).
  ParamStore& buffers() { return buffers_; }
  const ParamStore& buffers() const { return buffers_; }

  // Loss and accuracy over the scored rows. Keeps the activations (in the arena, which it resets first) for a
  // following backward().
  BatchResult forward(const TokenBatch& batch, Arena& arena, const ForwardOptions& options = {});
  // Gradient of forward()'s objective, mean CE + kGateLossWeight * gate loss, accumulated into params().grads().
  void backward(const TokenBatch& batch, Arena& arena);

  // Logits of every row (M, V), for inference and cross-implementation checks.
  void logits(float* out, const std::vector<std::int32_t>& inputs, const layers::PackedBatch& batch, Arena& arena,
              const ForwardOptions& options = {}, int padded_length = 0);

  // Streaming inference (shared/spec/semantics.md, property 3): a prefill in chunks of any size, and decoding one
  // token at a time, give the logits of logits() over the whole sequence up to float rounding. Per token the SSM
  // costs O(1) and the sparse branch O(k) for its k keys (plus a KV cache row); no prefix is recomputed.
  // The state of an empty sequence; hax::Error under `paper` semantics with a sparse arch (its statistics look at
  // the whole padded sequence) or with LSH projections redrawn every forward.
  ModelState start_state() const;
  // logits (T, V) of the next T = tokens.size() tokens of the state's sequence; advances the state. Uses the arena
  // as logits() does (reset first; prefill_arena_floats). With last_only, only the last token's logits (V): what
  // a prompt needs, and the output layer is most of a small model's work per token at a large vocabulary.
  void prefill(float* logits, ModelState& state, std::span<const std::int32_t> tokens, Arena& arena,
               bool last_only = false);
  std::size_t prefill_arena_floats(const ModelState& state, int T) const;
  // The same with an arena of its own: logits (T, V).
  std::vector<float> prefill(ModelState& state, std::span<const std::int32_t> tokens);
  // One token: its logits (V), i.e. the next-token distribution.
  std::vector<float> decode(ModelState& state, std::int32_t token);

  // Floats of arena that forward + backward need for `batch` with `scored` scored rows (an upper bound).
  std::size_t arena_floats(const layers::PackedBatch& batch, int scored, int padded_length = 0) const;

  // The residual blocks, in order.
  const std::vector<Block>& blocks() const { return blocks_; }
  // The gate-loss candidates of the last training forward, per sequence (positions within it), for block b (empty
  // when the block has no key selection).
  const std::vector<std::vector<std::int32_t>>& gate_candidates(int block) const;

 private:
  // Runs embedding and layers; leaves the last hidden state in hidden_.back().
  // With a state (a batch of one sequence), the layers continue from it and advance it (prefill).
  void forward_body(std::span<const std::int32_t> inputs, const layers::PackedBatch& batch,
                    const ForwardOptions& options, int padded_length, Arena& arena, ModelState* state = nullptr);
  // out (M, V) = the final norm and tied output layer on the last hidden state of forward_body.
  // The logits (M, V) of the M rows of the last block's output starting at `hidden`.
  void output_logits(float* out, const float* hidden, int M, Arena& arena) const;

  ModelConfig config_;
  ParamStore params_;
  ParamStore buffers_;
  std::vector<Block> blocks_;

  // Forward state kept for backward (pointers into the arena).
  std::vector<float*> hidden_;  // B+1 of (M, D): the residual stream before each block, and after the last
  std::vector<float*> normed_;  // B of (M, D)
  std::vector<float*> rstd_;    // B of (M)
  std::vector<int> scored_rows_;
  bool training_ = false;
  float *final_in_ = nullptr, *final_rstd_ = nullptr, *final_out_ = nullptr, *logits_ = nullptr;
  std::vector<std::int32_t> scored_labels_;
};

}  // namespace hax::models
