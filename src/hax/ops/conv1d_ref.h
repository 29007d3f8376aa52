// Reference causal depthwise conv1d: plain loops, any scalar type. Same contract as conv1d.h.
#pragma once

#include <cstddef>

#include "hax/ops/conv1d.h"

namespace hax::ops::ref {

template <class Real>
void conv1d_causal_forward(Real* y, const Real* x, const Real* w, const Real* b, const Real* x_prev, int B, int T,
                           int C, int K) {
  for (int s = 0; s < B; ++s)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c) {
        Real sum = b ? b[c] : Real(0);
        for (int k = 0; k < K; ++k) {
          const Real* in = conv1d_input_row(x, x_prev, s, t - K + 1 + k, T, C, K);
          if (in) sum += w[std::size_t(c) * K + k] * in[c];
        }
        y[(std::size_t(s) * T + t) * C + c] = sum;
      }
}

template <class Real>
void conv1d_causal_backward(Real* dx, Real* dw, Real* db, Real* dx_prev, const Real* dy, const Real* x, const Real* w,
                            const Real* x_prev, int B, int T, int C, int K) {
  for (int s = 0; s < B; ++s)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c) {
        const Real g = dy[(std::size_t(s) * T + t) * C + c];
        if (db) db[c] += g;
        for (int k = 0; k < K; ++k) {
          const int tau = t - K + 1 + k;
          const Real* in = conv1d_input_row(x, x_prev, s, tau, T, C, K);
          Real* din = conv1d_input_row(dx, dx_prev, s, tau, T, C, K);
          if (din) din[c] += w[std::size_t(c) * K + k] * g;
          if (dw && in) dw[std::size_t(c) * K + k] += in[c] * g;
        }
      }
}

}  // namespace hax::ops::ref
