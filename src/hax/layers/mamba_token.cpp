// MambaMixer::forward_token: one decoded token (T = 1) in a single parallel region.
//
// forward_chunk runs a token as a chunk of one row: some ten separate ops per layer, each its own parallel region (or
// OpenBLAS call) with serial work between them. At one row every op is tiny except the projections, which read the
// layer's weights once (decoding is bound by memory bandwidth), so at two threads the time went to waking the
// other thread between ops, not to work. Here each thread takes a share of the projection rows and of the channels,
// and the threads meet at a barrier only where a step needs every channel of the one before: four per layer.
// forward_chunk (T = 1) is this function's reference, and the tests hold them equal.
#include <algorithm>
#include <cmath>
#include <utility>

#include <omp.h>

#include "hax/layers/mamba_mixer.h"
#include "hax/ops/fast_math.h"
#include "hax/ops/linear.h"
#include "hax/ops/parallel.h"
#include "hax/ops/sparse/attention_gate.h"

namespace hax::layers {
namespace {

// This thread's share [begin, end) of n items, in blocks of `align` items (so shares of rows and channels start on
// whole cache lines of the output).
std::pair<int, int> thread_share(int n, int align = 16) {
  const int threads = omp_get_num_threads(), t = omp_get_thread_num();
  const int blocks = (n + align - 1) / align;
  const int b0 = int(std::int64_t(blocks) * t / threads), b1 = int(std::int64_t(blocks) * (t + 1) / threads);
  return {std::min(n, b0 * align), std::min(n, b1 * align)};
}

// out[r] = bias[r] + W[r, :] . v for this thread's rows r of W (rows, K).
void project_share(float* out, const float* W, const float* bias, const float* v, int rows, int K) {
  const auto [r0, r1] = thread_share(rows);
  if (r0 < r1) ops::gemv_rows(out + r0, W + std::size_t(r0) * K, v, bias ? bias + r0 : nullptr, r1 - r0, K);
}

}  // namespace

// One thread's share of a decoded token (all of it outside a parallel region). Its buffers come as arguments, not
// as a lambda's captures: the compiler then keeps the pointers in registers (through captured references, the scan
// loop ran at half speed).
void MambaMixer::token_share(float* out, const float* u, float* xz, float* xc, float* dbc, float* y, float* tail,
                             float* h) const {
  const int I = I_, N = N_, R = R_, K = K_, P = R_ + 2 * N_;
  const float *x = xz, *z = xz + I, *dtl = dbc, *Bm = dbc + R, *Cm = dbc + R + N;
  project_share(xz, in_proj_w_.value, in_proj_b_.value, u, 2 * I, D_);
#pragma omp barrier
  const auto [c0, c1] = thread_share(I);
  // The causal conv over the last K inputs, then the tail moves on by one; SiLU.
#pragma omp simd
  for (int c = c0; c < c1; ++c) {
    float acc = conv_b_.value ? conv_b_.value[c] : 0.0f;
    for (int k = 0; k < K - 1; ++k) acc += conv_w_.value[std::size_t(c) * K + k] * tail[std::size_t(k) * I + c];
    acc += conv_w_.value[std::size_t(c) * K + K - 1] * x[c];
    for (int k = 0; k + 1 < K - 1; ++k) tail[std::size_t(k) * I + c] = tail[std::size_t(k + 1) * I + c];
    if (K > 1) tail[std::size_t(K - 2) * I + c] = x[c];
    xc[c] = ops::fast_silu(acc);
  }
#pragma omp barrier
  project_share(dbc, x_proj_w_.value, nullptr, xc, P, I);
#pragma omp barrier
  // Per channel: Δ = softplus(dt_proj(dtl) + bias), h = exp(Δ A) h + Δ B x, y = (C . h + D x) silu(z).
  for (int c = c0; c < c1; ++c) {
    const float* w_dt = dt_proj_w_.value + std::size_t(c) * R;
    float dt = dt_proj_b_.value[c];
#pragma omp simd reduction(+ : dt)
    for (int r = 0; r < R; ++r) dt += w_dt[r] * dtl[r];
    const float delta = ops::fast_softplus(dt), delta_x = delta * xc[c];
    float* hc = h + std::size_t(c) * N;
    const float* a_log = a_log_.value + std::size_t(c) * N;
    float yc = 0.0f;
#pragma omp simd reduction(+ : yc)
    for (int n = 0; n < N; ++n) {
      const float decay = ops::fast_exp_nonpositive(-delta * ops::fast_exp(a_log[n]));  // exp(Δ A), A = -exp(A_log)
      hc[n] = decay * hc[n] + delta_x * Bm[n];
      yc += Cm[n] * hc[n];
    }
    y[c] = (yc + d_skip_.value[c] * xc[c]) * ops::fast_silu(z[c]);
  }
  if (!sparse_) {
#pragma omp barrier
    project_share(out, out_proj_w_.value, out_proj_b_.value, y, D_, I);
  }
}

void MambaMixer::forward_token(float* out, const float* u, MixerState& state, Arena& arena) const {
  const int I = I_, P = R_ + 2 * N_;
  const std::size_t mark = arena.mark();
  float* xz = arena.alloc_uninitialized(2 * std::size_t(I), "mamba token x, z").data();  // [x | z]
  float* xc = arena.alloc_uninitialized(I, "mamba token conv out").data();
  float* dbc = arena.alloc_uninitialized(P, "mamba token x_proj out").data();  // [dtl | B | C]
  float* y = arena.alloc_uninitialized(I, "mamba token y").data();
  // Threads only where the weights are large enough to pay for a region (the paper's D = 64 layers are not).
  const bool threaded = std::size_t(2 * I) * D_ >= ops::kMinParallelElements;
  ops::parallel_region(threaded, [&] {
    token_share(out, u, xz, xc, dbc, y, state.conv_tail.data() /* (K-1, I) */, state.h.data() /* (I, N) */);
  });
  if (sparse_) {
    // The sparse branch streams on its own (its key cache and scorer); its output joins y through the gate.
    float* attn = arena.alloc(I, "sparse attention out").data();
    sparse_->forward_chunk(attn, xc, 1, *state.sparse, arena);
    ops::sparse::attention_gate_forward(y, attn, sparse_->E(), xz + I /* z */, 1, I);
    ops::linear_forward(out, y, out_proj_w_.value, out_proj_b_.value, 1, I, D_);
  }
  arena.release(mark);
}

}  // namespace hax::layers
