// Reference linear and tied output layers: plain loops, any scalar type. Same contract as linear.h.
#pragma once

#include <cstddef>

namespace hax::ops::ref {

template <class Real>
void linear_forward(Real* y, const Real* x, const Real* W, const Real* b, int M, int K, int N) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      Real sum = b ? b[n] : Real(0);
      for (int k = 0; k < K; ++k) sum += x[std::size_t(m) * K + k] * W[std::size_t(n) * K + k];
      y[std::size_t(m) * N + n] = sum;
    }
}

template <class Real>
void linear_backward(Real* dx, Real* dW, Real* db, const Real* dy, const Real* x, const Real* W, int M, int K, int N) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      const Real g = dy[std::size_t(m) * N + n];
      if (db) db[n] += g;
      for (int k = 0; k < K; ++k) {
        if (dx) dx[std::size_t(m) * K + k] += g * W[std::size_t(n) * K + k];
        if (dW) dW[std::size_t(n) * K + k] += g * x[std::size_t(m) * K + k];
      }
    }
}

template <class Real>
void tied_output_forward(Real* logits, const Real* h, const Real* E, int M, int D, int V) {
  linear_forward<Real>(logits, h, E, nullptr, M, D, V);
}

template <class Real>
void tied_output_backward(Real* dh, Real* dE, const Real* dlogits, const Real* h, const Real* E, int M, int D, int V) {
  linear_backward<Real>(dh, dE, nullptr, dlogits, h, E, M, D, V);
}

}  // namespace hax::ops::ref
