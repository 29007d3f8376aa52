#include "hax/ops/conv1d.h"

#include <algorithm>
#include <vector>

#include "hax/ops/parallel.h"
#include "hax/ops/thread_scratch.h"

namespace hax::ops {
namespace {

// w (C,K) -> (K,C): tap k of all channels contiguous, so the loops over channels vectorize.
struct ConvTaps;  // the per-thread scratch's tag (thread_scratch.h)

// In the calling thread's scratch: streaming convolves once per decoded token, which must not allocate.
const float* taps_by_k(const float* w, int C, int K) {
  float* taps = thread_scratch<float, ConvTaps>(std::size_t(K) * C);
  for (int c = 0; c < C; ++c)
    for (int k = 0; k < K; ++k) taps[std::size_t(k) * C + c] = w[std::size_t(c) * K + k];
  return taps;
}

}  // namespace

void conv1d_causal_forward(float* y, const float* x, const float* w, const float* b, const float* x_prev, int B, int T,
                           int C, int K) {
  const float* taps = taps_by_k(w, C, K);
  parallel_for(B * T, worth_threads(std::size_t(B) * T * C * K), [&](int row) {
    const int s = row / T, t = row % T;
    float* out = y + std::size_t(row) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) out[c] = b ? b[c] : 0.0f;
    for (int k = 0; k < K; ++k) {
      const float* in = conv1d_input_row(x, x_prev, s, t - K + 1 + k, T, C, K);
      if (in == nullptr) continue;
      const float* tap = taps + std::size_t(k) * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) out[c] += tap[c] * in[c];
    }
  });
}

void conv1d_causal_backward(float* dx, float* dw, float* db, float* dx_prev, const float* dy, const float* x,
                            const float* w, const float* x_prev, int B, int T, int C, int K) {
  const float* taps = taps_by_k(w, C, K);
  // One pass over the input rows tau in [-(K-1), T) of every sequence. Input row tau feeds output t = tau+K-1-k
  // through tap k, so its dx is complete in one visit (no races); the weight and bias terms go into the thread's
  // partial sums: taps at acc[k*C + c], bias at acc[K*C + c].
  const int rows_per_seq = T + K - 1;
  const int width = (dw || db) ? (K + 1) * C : 0;
  const std::size_t row_elements = std::size_t(C) * K;
  const std::vector<double> sums = parallel_row_sums(B * rows_per_seq, width, row_elements, [&](int row, double* acc) {
    const int s = row / rows_per_seq, tau = row % rows_per_seq - (K - 1);
    const float* in = conv1d_input_row(x, x_prev, s, tau, T, C, K);
    float* din = conv1d_input_row(dx, dx_prev, s, tau, T, C, K);
    for (int k = 0; k < K; ++k) {
      const int t = tau + K - 1 - k;
      if (t < 0 || t >= T) continue;
      const float* g = dy + (std::size_t(s) * T + t) * C;
      const float* tap = taps + std::size_t(k) * C;
      if (din) {
#pragma omp simd
        for (int c = 0; c < C; ++c) din[c] += tap[c] * g[c];
      }
      if (dw && in) {
        double* dtap = acc + std::size_t(k) * C;
#pragma omp simd
        for (int c = 0; c < C; ++c) dtap[c] += in[c] * g[c];
      }
    }
    if (db && tau >= 0) {
      const float* g = dy + (std::size_t(s) * T + tau) * C;
      double* dbias = acc + std::size_t(K) * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) dbias[c] += g[c];
    }
  });
  if (dw)
    for (int c = 0; c < C; ++c)
      for (int k = 0; k < K; ++k) {
        float& tap_grad = dw[std::size_t(c) * K + k];
        tap_grad = static_cast<float>(tap_grad + sums[std::size_t(k) * C + c]);
      }
  if (db)
    for (int c = 0; c < C; ++c) db[c] = static_cast<float>(db[c] + sums[std::size_t(K) * C + c]);
}

void conv1d_advance_state(float* x_prev, const float* x, int B, int T, int C, int K) {
  for (int b = 0; b < B; ++b)
    // New row r is input row tau = T - (K-1) + r; from x_prev that is old row T + r >= r, so ascending r never
    // reads a row it has already overwritten.
    for (int r = 0; r < K - 1; ++r) {
      const float* in = conv1d_input_row(x, static_cast<const float*>(x_prev), b, T - (K - 1) + r, T, C, K);
      std::copy_n(in, C, x_prev + (std::size_t(b) * (K - 1) + r) * C);
    }
}

}  // namespace hax::ops
