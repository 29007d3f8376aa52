// Reference RMSNorm: plain loops, any scalar type. Same contract as rmsnorm.h.
#pragma once

#include <cmath>
#include <cstddef>

namespace hax::ops::ref {

template <class Real>
void rmsnorm_forward(Real* y, Real* rstd, const Real* x, const Real* w, int M, int D, Real eps = Real(1e-5f)) {
  for (int m = 0; m < M; ++m) {
    const Real* xr = x + std::size_t(m) * D;
    Real sum_sq = 0;
    for (int i = 0; i < D; ++i) sum_sq += xr[i] * xr[i];
    const Real r = Real(1) / std::sqrt(sum_sq / Real(D) + eps);
    if (rstd) rstd[m] = r;
    for (int i = 0; i < D; ++i) y[std::size_t(m) * D + i] = xr[i] * r * w[i];
  }
}

template <class Real>
void rmsnorm_backward(Real* dx, Real* dw, const Real* dy, const Real* x, const Real* w, const Real* rstd, int M,
                      int D) {
  for (int m = 0; m < M; ++m) {
    const Real* xr = x + std::size_t(m) * D;
    const Real* g = dy + std::size_t(m) * D;
    const Real r = rstd[m];
    Real dot = 0;  // sum_i dy_i w_i x_i: how the loss moves with r
    for (int i = 0; i < D; ++i) dot += g[i] * w[i] * xr[i];
    for (int i = 0; i < D; ++i) {
      if (dx) dx[std::size_t(m) * D + i] += r * w[i] * g[i] - xr[i] * r * r * r * dot / Real(D);
      if (dw) dw[i] += g[i] * xr[i] * r;
    }
  }
}

}  // namespace hax::ops::ref
