// Reference SwiGLU: a plain loop over the reference sigmoid, any scalar type. Same contract as swiglu.h.
#pragma once

#include <cstddef>

#include "hax/ops/activations_ref.h"  // ref::sigmoid

namespace hax::ops::ref {

template <class Real>
void swiglu_forward(Real* out, const Real* gate, const Real* up, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

template <class Real>
void swiglu_backward(Real* dgate, Real* dup, const Real* dout, const Real* gate, const Real* up, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const Real s = sigmoid(gate[i]);
    if (dgate) dgate[i] += dout[i] * up[i] * s * (Real(1) + gate[i] * (Real(1) - s));
    if (dup) dup[i] += dout[i] * gate[i] * s;
  }
}

}  // namespace hax::ops::ref
