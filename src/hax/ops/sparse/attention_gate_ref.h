// Reference attention gate: plain loops, any scalar type. Same contract as attention_gate.h.
#pragma once

#include <cmath>
#include <cstddef>

#include "hax/ops/sparse/attention_gate.h"

namespace hax::ops::sparse::ref {

template <class Real>
void attention_gate_forward(Real* y, const Real* attn, const Real* E, const Real* z, int M, int I) {
  for (std::size_t m = 0; m < std::size_t(M); ++m)
    for (int c = 0; c < I; ++c) {
      const std::size_t i = m * I + c;
      y[i] += E[c] * attn[i] * (z ? z[i] / (Real(1) + std::exp(-z[i])) : Real(1));
    }
}

template <class Real>
void attention_gate_backward(Real* dattn, Real* dE, Real* dz, const Real* dy, const Real* attn, const Real* E,
                             const Real* z, int M, int I) {
  for (std::size_t m = 0; m < std::size_t(M); ++m)
    for (int c = 0; c < I; ++c) {
      const std::size_t i = m * I + c;
      const Real sig = z ? Real(1) / (Real(1) + std::exp(-z[i])) : Real(1), silu = z ? z[i] * sig : Real(1);
      if (dattn) dattn[i] += dy[i] * E[c] * silu;
      if (dE) dE[c] += dy[i] * attn[i] * silu;
      if (dz && z) dz[i] += dy[i] * E[c] * attn[i] * sig * (Real(1) + z[i] * (Real(1) - sig));
    }
}

}  // namespace hax::ops::sparse::ref
