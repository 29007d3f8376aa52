// The Mamba-1 mixer (reference.md §3.3 without the sparse branch, = fla's MambaMixer), forward and backward on a
// packed batch (M real rows):
//   x | z   = u W_in^T                          (M, I) each: the two halves of in_proj
//   xc      = silu(causal_depthwise_conv(x))     (M, I) per sequence
//   dtl|B|C = xc W_x^T                           (M, R), (M, N), (M, N): the three row blocks of x_proj
//   dt_raw  = dtl W_dt^T                         (M, I) (the dt bias is added inside the scan)
//   y       = selective_scan(xc, dt_raw, A_log, B, C, D, z)   = (SSM(xc) + D xc) * silu(z)
//   y      += E * attn * silu(z)                 (M, I) only with a sparse arch: attn = SparseBranch(xc)
//   out     = y W_out^T                          (M, D)
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "hax/engine/arena.h"
#include "hax/engine/params.h"
#include "hax/layers/bound_tensor.h"
#include "hax/layers/mixer.h"
#include "hax/layers/mixer_state.h"
#include "hax/layers/packed_batch.h"
#include "hax/layers/sparse_branch.h"

namespace hax::layers {

struct MambaMixerConfig {
  int hidden = 0;     // D
  int inner = 0;      // I
  int state = 0;      // N
  int dt_rank = 0;    // R
  int conv_kernel = 4;  // K
  bool use_bias = false;       // in_proj / out_proj bias
  bool use_conv_bias = true;
  std::optional<SparseConfig> sparse;  // the sparse-attention branch (its channels = I, state = N)
};

class MambaMixer {
 public:
  // Binds to the tensors "<prefix>in_proj.weight", ... of an allocated store, and the sparse branch's buffers
  // (names as declared by models/model_params.h).
  MambaMixer(const MambaMixerConfig& config, ParamStore& store, ParamStore& buffers, const std::string& prefix);

  // Activations the backward pass needs, carved from the arena by forward().
  struct Saved {
    const float* u = nullptr;  // (M, D) the input (owned by the caller)
    float *x, *z, *x_conv, *xc, *dtl, *Bm, *Cm, *dt_raw, *y, *checkpoints;
    float* attn = nullptr;      // (M, I) the sparse branch's output, when there is one
    SparseBranch::Saved sparse;
  };

  // out (M, D) = mixer(u (M, D)). Allocates `saved` in the arena. `step` matters only to the sparse branch.
  void forward(float* out, const float* u, const PackedBatch& batch, const SparseStep& step, Arena& arena,
               Saved& saved) const;
  // du (M, D) += d mixer / d u · dout; parameter gradients accumulate into the store's gradient buffer; the key
  // scorer's gradient is gate_weight times that of the gate loss. Scratch is released before returning.
  void backward(float* du, const float* dout, const PackedBatch& batch, const Saved& saved, float gate_weight,
                Arena& arena) const;

  // Streaming inference (layers/mixer_state.h). The state of an empty sequence; hax::Error where the sparse branch
  // cannot stream (`paper` semantics).
  MixerState start_state() const;
  // out (T, D) = the mixer at the next T positions of the sequence of `state`, from their inputs u (T, D): what
  // forward() gives at those positions of the whole sequence. Advances the state. The arena's scratch (forward()'s
  // for a T-row batch plus the sparse branch's chunk_arena_floats) is released before returning.
  void forward_chunk(float* out, const float* u, int T, MixerState& state, Arena& arena) const;
  // forward_chunk's two ways: a chunk of T rows run as forward() runs a batch of one sequence (any T), and a single
  // token fused into one parallel region (layers/mamba_token.cpp), which forward_chunk takes for T = 1. The first is
  // the second's reference in the tests.
  void forward_chunk_as_batch(float* out, const float* u, int T, MixerState& state, Arena& arena) const;
  void forward_token(float* out, const float* u, MixerState& state, Arena& arena) const;
  void token_share(float* out, const float* u, float* xz, float* xc, float* dbc, float* y, float* tail,
                   float* h) const;

  const SparseBranch* sparse() const { return sparse_ ? &*sparse_ : nullptr; }

  // Arena floats of forward (kept) and backward (scratch) for `batch` (layers/mixer.h), and of forward_chunk.
  Mixer::ArenaNeeds arena_floats(const PackedBatch& batch, int padded_length) const;
  std::size_t chunk_arena_floats(int T, int position) const;

 private:
  // Where each sequence's scan checkpoints start in Saved::checkpoints; the last entry is the total.
  std::vector<std::size_t> checkpoint_offsets(const PackedBatch& batch) const;
  std::size_t checkpoint_floats(const PackedBatch& batch) const;  // checkpoint_offsets(batch).back(), allocation-free
  // forward(), or with a state (a batch of one sequence) forward_chunk's math: the conv starts from the state's
  // tail, the scan from its h, the sparse branch from its stream and cache, and all three advance.
  void forward_impl(float* out, const float* u, const PackedBatch& batch, const SparseStep& step, Arena& arena,
                    Saved& saved, MixerState* state) const;

  int D_, I_, N_, R_, K_;
  std::optional<SparseBranch> sparse_;
  BoundTensor in_proj_w_, in_proj_b_, conv_w_, conv_b_, x_proj_w_, dt_proj_w_, dt_proj_b_, a_log_, d_skip_, out_proj_w_,
      out_proj_b_;
};

}  // namespace hax::layers
