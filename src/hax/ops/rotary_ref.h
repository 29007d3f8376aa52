// Reference rotary embedding: angles and rotation in Real, straight from the formulas of rotary.h (for Real =
// float the angles are fp32, as the PyTorch reference computes them). Same contract as rotary.h.
#pragma once

#include <cmath>
#include <cstddef>

#include "hax/ops/rotary.h"

namespace hax::ops::ref {

// out[d], out[d + P/2] of every head = the pair rotated by +angle (sign 1) or -angle (sign -1), stored (accumulate
// false) or added (true).
template <class Real>
void rotary_apply(Real* out, const Real* in, int T, int heads, int head_dim, int position0, float theta, Real sign,
                  bool accumulate) {
  check_rotary(T, heads, head_dim, position0, theta);
  const int half = head_dim / 2;
  for (int t = 0; t < T; ++t)
    for (int d = 0; d < half; ++d) {
      const Real inv_freq = Real(1) / std::pow(Real(theta), Real(2 * d) / Real(head_dim));
      const Real angle = Real(position0 + t) * inv_freq;
      const Real c = std::cos(angle), s = sign * std::sin(angle);
      for (int h = 0; h < heads; ++h) {
        const std::size_t i = std::size_t(t) * heads * head_dim + std::size_t(h) * head_dim + d;
        const Real x1 = in[i], x2 = in[i + half];
        const Real y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
        out[i] = accumulate ? out[i] + y1 : y1;
        out[i + half] = accumulate ? out[i + half] + y2 : y2;
      }
    }
}

template <class Real>
void rotary_forward(Real* out, const Real* in, int T, int heads, int head_dim, int position0, float theta) {
  rotary_apply(out, in, T, heads, head_dim, position0, theta, Real(1), false);
}

template <class Real>
void rotary_backward(Real* din, const Real* dout, int T, int heads, int head_dim, int position0, float theta) {
  rotary_apply(din, dout, T, heads, head_dim, position0, theta, Real(-1), true);
}

}  // namespace hax::ops::ref
