// Reference gated RMSNorm: plain loops, any scalar type. Same contract as gated_rmsnorm.h.
#pragma once

#include <cmath>
#include <cstddef>

#include "hax/ops/activations_ref.h"  // sigmoid

namespace hax::ops::ref {

template <class Real>
void gated_rmsnorm_forward(Real* out, Real* rstd, const Real* y, const Real* z, const Real* w, int M, int D, Real eps) {
  for (int m = 0; m < M; ++m) {
    const std::size_t row = std::size_t(m) * D;
    Real sum_sq = 0;
    for (int i = 0; i < D; ++i) {
      const Real v = y[row + i] * z[row + i] * sigmoid(z[row + i]);
      out[row + i] = v;
      sum_sq += v * v;
    }
    const Real r = Real(1) / std::sqrt(sum_sq / Real(D) + eps);
    if (rstd) rstd[m] = r;
    for (int i = 0; i < D; ++i) out[row + i] *= r * w[i];
  }
}

template <class Real>
void gated_rmsnorm_backward(Real* dy, Real* dz, Real* dw, const Real* dout, const Real* y, const Real* z, const Real* w,
                            const Real* rstd, int M, int D) {
  for (int m = 0; m < M; ++m) {
    const std::size_t row = std::size_t(m) * D;
    const Real r = rstd[m];
    auto gated = [&](int i) { return y[row + i] * z[row + i] * sigmoid(z[row + i]); };
    Real dot = 0;  // Σ_i dout_i w_i v_i: how the loss moves with r
    for (int i = 0; i < D; ++i) dot += dout[row + i] * w[i] * gated(i);
    for (int i = 0; i < D; ++i) {
      const Real s = sigmoid(z[row + i]), v = gated(i);
      const Real dv = r * w[i] * dout[row + i] - v * r * r * r * dot / Real(D);
      if (dy) dy[row + i] += dv * z[row + i] * s;
      if (dz) dz[row + i] += dv * y[row + i] * s * (Real(1) + z[row + i] * (Real(1) - s));
      if (dw) dw[i] += dout[row + i] * v * r;
    }
  }
}

}  // namespace hax::ops::ref
