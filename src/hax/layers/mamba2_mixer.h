// The Mamba2 mixer (reference.md §4.2-4.4; fla Mamba2 / EnhancedMamba2), forward and backward on a packed batch of M
// real rows, with I = H * P channels in H heads of P and B, C shared by the heads of each of G groups:
//   z | xBC | dt_raw = u W_in^T                     (M, I), (M, C = I + 2GN), (M, H): in_proj's three row blocks
//   x | Bm | Cm      = silu(causal_depthwise_conv(xBC))   (M, I), (M, GN), (M, GN) per sequence
//   y                = SSD(x, dt_raw + dt_bias, A = -exp(A_log), Bm, Cm) + D x        (M, I)  (ops/ssd.h)
//   y               += E * attn                      only with a sparse arch: attn = SparseBranch(x) (V = x)
//   n                = GatedRMSNorm(y, z; w_norm)    (M, I): y silu(z), normalized over the I channels
//   out              = n W_out^T                     (M, D)
// Unlike Mamba-1, the attention term is not gated by silu(z) before the sum: it goes through the same gate and the
// same normalization as the SSD output.
#pragma once

#include <optional>
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

struct Mamba2MixerConfig {
  int hidden = 0;       // D
  int heads = 0;        // H
  int head_dim = 0;     // P (I = H * P)
  int groups = 1;       // G
  int state = 0;        // N
  int conv_kernel = 4;  // K
  bool use_bias = false;
  bool use_conv_bias = true;
  float norm_eps = 1e-5f;
  int ssd_chunk = 32;   // positions per SSD chunk (any value is exact; 32 was fastest on CPU, bench/bench_ssd.cpp)
  std::optional<SparseConfig> sparse;  // channels = I, state = N
};

class Mamba2Mixer {
 public:
  // Binds "<prefix>in_proj.weight", conv1d, dt_bias, A_log, D, norm.weight, out_proj and the sparse branch's tensors.
  Mamba2Mixer(const Mamba2MixerConfig& config, ParamStore& store, ParamStore& buffers, const std::string& prefix);

  struct Saved {
    const float* u = nullptr;  // (M, D), the caller's
    float *z, *xbc, *xbc_conv, *x, *Bm, *Cm, *dt_raw, *y, *rstd, *normed, *ssd;
    float* attn = nullptr;  // (M, I) with a sparse branch
    SparseBranch::Saved sparse;
  };

  void forward(float* out, const float* u, const PackedBatch& batch, const SparseStep& step, Arena& arena,
               Saved& saved) const;
  void backward(float* du, const float* dout, const PackedBatch& batch, const Saved& saved, float gate_weight,
                Arena& arena) const;
  Mixer::ArenaNeeds arena_floats(const PackedBatch& batch, int padded_length) const;

  MixerState start_state() const;
  void forward_chunk(float* out, const float* u, int T, MixerState& state, Arena& arena) const;
  std::size_t chunk_arena_floats(int T, int position) const;

  const SparseBranch* sparse() const { return sparse_ ? &*sparse_ : nullptr; }

 private:
  int inner() const { return H_ * P_; }
  std::size_t state_floats() const { return std::size_t(H_) * P_ * N_; }
  int conv_channels() const { return H_ * P_ + 2 * G_ * N_; }
  // Where each sequence's SSD saved state starts; the last entry is the total.
  std::vector<std::size_t> ssd_offsets(const PackedBatch& batch) const;
  std::size_t ssd_floats(const PackedBatch& batch) const;  // ssd_offsets(batch).back(), allocation-free
  void forward_impl(float* out, const float* u, const PackedBatch& batch, const SparseStep& step, Arena& arena,
                    Saved& saved, MixerState* state) const;

  int D_, H_, P_, G_, N_, K_, chunk_;
  float eps_;
  std::optional<SparseBranch> sparse_;
  BoundTensor in_proj_w_, in_proj_b_, conv_w_, conv_b_, dt_bias_, a_log_, d_skip_, norm_w_, out_proj_w_, out_proj_b_;
};

}  // namespace hax::layers
