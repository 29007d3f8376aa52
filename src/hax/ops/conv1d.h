// Causal depthwise 1-D convolution over time with bias, as Mamba's conv1d (PyTorch Conv1d with groups = channels
// and padding K-1, truncated to the first T outputs), with an optional carried state so that a sequence can be
// processed in chunks.
#pragma once

#include <cstddef>

namespace hax::ops {

// x (B,T,C), w (C,K) (the memory of PyTorch's (C,1,K) weight), b (C) or null, x_prev (B,K-1,C) or null -> y (B,T,C):
//   y[b,t,c] = b[c] + sum_{k<K} w[c,k] * in(b, t-K+1+k)[c],
// where in(b, tau) is x[b,tau] for tau >= 0 and x_prev[b, K-1+tau] for tau < 0 (the K-1 inputs before this chunk;
// null means zeros, i.e. the start of the sequence).
void conv1d_causal_forward(float* y, const float* x, const float* w, const float* b, const float* x_prev, int B, int T,
                           int C, int K);

// Accumulates dx (B,T,C), dw (C,K), db (C) and dx_prev (B,K-1,C) from dy (B,T,C); any of them may be null.
// x_prev is the forward's carried state (null: zeros).
void conv1d_causal_backward(float* dx, float* dw, float* db, float* dx_prev, const float* dy, const float* x,
                            const float* w, const float* x_prev, int B, int T, int C, int K);

// The carried state after a chunk: x_prev (B,K-1,C) becomes the last K-1 inputs up to the end of the chunk x (B,T,C)
// (rows of x_prev itself when T < K-1), the x_prev of the next chunk's forward.
void conv1d_advance_state(float* x_prev, const float* x, int B, int T, int C, int K);

// Row tau in [-(K-1), T) of sequence b of a conv input: a row of x (B,T,C) for tau >= 0, else of the carried state
// x_prev (B,K-1,C). Null where that buffer is null. Works for the inputs and, with the gradients, for dx / dx_prev.
template <class Real>
Real* conv1d_input_row(Real* x, Real* x_prev, int b, int tau, int T, int C, int K) {
  Real* base = tau >= 0 ? x : x_prev;
  if (base == nullptr) return nullptr;
  const std::size_t row = tau >= 0 ? std::size_t(b) * T + tau : std::size_t(b) * (K - 1) + (K - 1 + tau);
  return base + row * C;
}

}  // namespace hax::ops
