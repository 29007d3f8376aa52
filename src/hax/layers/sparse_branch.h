// The sparse-attention branch of the enhanced Mamba mixer (reference.md §3.3, §3.5-3.10), on a packed batch of M
// real rows:
//   K | Q = xc W_xx^T                     (M, N) each: K is the FIRST half; then K /= sqrt(N)
//   V     = xc                            (M, I): the values are the conv output itself
//   keys  = per query, the union of the arch's patterns (ops/sparse/sparse_keys.h), from LSH buckets of Q and K
//           (ops/sparse/lsh.h) and key-selection scores of a small MLP (ops/sparse/key_scorer.h)
//   attn  = softmax attention of each query over its keys only   (M, I)
//   gate  = the key scorer's ranking loss on sampled candidates (training and key_selection only)
// The mixer adds E ⊙ attn ⊙ silu(z) to the scan output (ops/sparse/attention_gate.h).
//
// Under `causal` the branch works on the packed rows directly. Under `paper` it works on each sequence right-padded
// with zero rows to the batch's padded length, because the reference's statistics (LSH centring, key-selection
// normalization, the uniform attention of an empty row, the gate-loss targets) all count the padding; only the
// real rows' outputs and gradients come back.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hax/engine/arena.h"
#include "hax/engine/params.h"
#include "hax/layers/bound_tensor.h"
#include "hax/layers/mixer_state.h"
#include "hax/layers/packed_batch.h"
#include "hax/ops/sparse/key_scorer.h"
#include "hax/ops/sparse/semantics.h"
#include "hax/ops/sparse/sparse_keys.h"

namespace hax::layers {

// The branch's own configuration (the model's sparse_* keys, read by models/).
struct SparseConfig {
  int channels = 0;  // I: the width of the values (the mixer's conv output) and of xx_proj's input
  int state = 0;     // N: the width of Q and K
  ops::sparse::SparseArch arch;
  int num_hash = 8;  // LSH hyperplanes
  ops::sparse::Semantics semantics = ops::sparse::Semantics::causal;
  std::string lsh_resample = "never";  // "never", "training" or "every_forward" (models::ModelConfig)
  // Under `paper`: which of its ingredients are on (all, unless an ablation turns some off). Ignored under `causal`.
  ops::sparse::PaperIngredients paper_ingredients;
  // `causal` only: LSH inputs centred and scaled by the statistics of their prefix (hax_lsh_statistics "running").
  bool lsh_running_statistics = false;
  // `causal` only: key-selection features normalized over their prefix (hax_ks_normalization "running").
  bool ks_running_normalization = false;
};

// The name of the per-layer LSH projection buffer, beside the branch's parameters.
inline constexpr const char* kLshProjectionName = "lsh_projection";

// What changes from one forward call to the next.
struct SparseStep {
  bool training = false;         // draws the gate-loss candidates and computes the gate loss
  std::uint64_t noise_seed = 0;  // this layer's draws: fresh LSH projections (when resampled) and gate candidates
  int padded_length = 0;         // `paper`: the length every sequence is padded to (at least the longest)
};

class SparseBranch {
 public:
  // Binds "<prefix>xx_proj.weight", "<prefix>E", "<prefix>dx_proj_*" of `store` and "<prefix>lsh_projection" of
  // `buffers` (models/mamba_params.h).
  SparseBranch(const SparseConfig& config, ParamStore& store, ParamStore& buffers, const std::string& prefix);

  struct Saved {
    const float* xc = nullptr;  // (M, I), owned by the mixer
    PackedBatch layout;         // the rows the branch computes on: the batch itself, or its padded copy (`paper`)
    float *KQ = nullptr;        // (M, 2N): xx_proj's output
    float *Q = nullptr, *K = nullptr, *V = nullptr;  // (P, N), (P, N), (P, I) on the layout's P rows
    float *features = nullptr, *hidden1 = nullptr, *hidden2 = nullptr, *score = nullptr;  // key selection
    float* probs = nullptr;                            // softmax weights, sequence q from probs_at[q]
    std::vector<std::size_t> probs_at;                 // (S + 1)
    std::vector<ops::sparse::SparseKeys> keys;         // per sequence
    std::vector<std::vector<std::int32_t>> candidates; // gate loss, per sequence: positions within the sequence
    std::vector<std::vector<float>> targets;           // gate loss targets, per sequence
    double gate_loss = 0;                              // this layer's ranking loss (0 when not computed)
    bool has_gate = false;
  };

  // attn (M, I) = the branch on xc (M, I). Allocates `saved` in the arena.
  void forward(float* attn, const float* xc, const PackedBatch& batch, const SparseStep& step, Arena& arena,
               Saved& saved) const;
  // dxc (M, I) += the gradient through attention (dattn (M, I)); xx_proj's gradient accumulates; the scorer MLP's
  // gradients are gate_weight * d(gate loss), nothing else reaches it. Scratch is released before returning.
  void backward(float* dxc, const float* dattn, const PackedBatch& batch, const Saved& saved, float gate_weight,
                Arena& arena) const;

  // Floats of arena that forward (kept) and backward (scratch) need, for M real rows in S sequences of which the
  // longest is `longest` rows, padded to `padded_length` under `paper`.
  std::size_t arena_floats(int M, int S, int longest, int padded_length) const;

  // Streaming inference (layers/mixer_state.h). The state of an empty sequence; hax::Error under `paper` (its
  // statistics look at the whole padded sequence) or with LSH projections redrawn every forward.
  SparseState start_state() const;
  // attn (T, I) of the next T positions of the sequence of `state`, from their rows xc (T, I): what forward() gives
  // at those positions of the whole sequence. Appends them to the state, which keeps the keys and values of the
  // positions its patterns still hold (layers/mixer_state.h). Inference only: nothing is kept for a
  // backward; the scratch (chunk_arena_floats) is released before returning.
  void forward_chunk(float* attn, const float* xc, int T, SparseState& state, Arena& arena) const;
  std::size_t chunk_arena_floats(int T, int position) const;

  const ops::sparse::SparseArch& arch() const { return arch_; }

 private:
  bool paper() const { return semantics_ == ops::sparse::Semantics::paper; }
  // The semantics each op runs under: `paper` only where the semantics is `paper` and the ingredient is on.
  ops::sparse::Semantics lsh_semantics() const { return ingredient(ingredients_.lsh_statistics); }
  ops::sparse::Semantics ks_semantics() const { return ingredient(ingredients_.ks_normalization); }
  ops::sparse::Semantics attention_semantics() const { return ingredient(ingredients_.uniform_fallback); }
  bool gate_counts_padding() const { return paper() && ingredients_.gate_padding; }
  ops::sparse::Semantics ingredient(bool on) const { return ops::sparse::ingredient_semantics(paper() && on); }
  bool uses(ops::sparse::Pattern p) const { return arch_.has(p); }
  PackedBatch layout_of(const PackedBatch& batch, int padded_length) const;
  // H (N, num_hash) for this forward: the saved one, or a fresh draw.
  std::vector<float> lsh_projection(const SparseStep& step) const;
  void split_queries_keys(Saved& s, const PackedBatch& batch) const;
  // The arch's bucket count (PatternInputs::num_buckets); 0 without LSH.
  int num_buckets() const;
  // The LSH buckets of queries Q and keys K (T, N) under projection H, into `in` (spans into `buckets`: sign-bin
  // query, key; argmax query, key).
  // lsh_sums (4N): the running statistics' sums of Q then K over the `before` earlier positions (advanced); unused
  // otherwise. proj_scratch: 2 T num_hash floats (the callers own it, so a decoded token allocates nothing).
  void lsh_inputs(ops::sparse::PatternInputs& in, std::vector<std::int32_t> (&buckets)[4], const float* Q,
                  const float* K, int T, const float* H, double* lsh_sums, std::int64_t before,
                  float* proj_scratch) const;
  // proj (T, num_hash) of x (T, N) under this branch's statistics.
  void project(float* proj, const float* x, int T, const float* H, double* sums, std::int64_t before) const;
  void select_and_attend(float* attn_layout, Saved& s, const SparseStep& step) const;
  // features (T, 2N) of the rows Q, K (T, N) that follow `before` positions; sums (2N): the running sums of Q and of
  // c^2 (the latter for the running normalization), advanced.
  void ks_features(float* features, const float* Q, const float* K, int T, double* sums) const;
  void gate_loss_forward(Saved& s, const PackedBatch& batch, const SparseStep& step) const;
  void gate_loss_backward(const Saved& s, float gate_weight, Arena& arena) const;
  int ranked_candidates(int real_length, int layout_length) const;
  ops::sparse::ScorerWeights<float> scorer_weights() const;

  int I_, N_, num_hash_;
  ops::sparse::SparseArch arch_;
  ops::sparse::Semantics semantics_;
  ops::sparse::PaperIngredients ingredients_;
  bool lsh_running_, ks_running_;
  std::string lsh_resample_;
  BoundTensor xx_proj_, E_, w1_, b1_, w2_, b2_, w3_, b3_;
  const float* saved_lsh_projection_ = nullptr;

 public:
  const float* E() const { return E_.value; }
  float* E_grad() const { return E_.grad; }
};

}  // namespace hax::layers
