// Reference SiLU and softplus: plain loops over std::exp/std::log1p, any scalar type. Same contract as
// activations.h.
#pragma once

#include <cmath>
#include <cstddef>

#include "hax/ops/activations.h"

namespace hax::ops::ref {

template <class Real>
Real sigmoid(Real x) {
  return Real(1) / (Real(1) + std::exp(-x));
}

template <class Real>
void silu_forward(Real* y, const Real* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid(x[i]);
}

template <class Real>
void silu_backward(Real* dx, const Real* dy, const Real* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const Real s = sigmoid(x[i]);
    dx[i] += dy[i] * s * (Real(1) + x[i] * (Real(1) - s));
  }
}

template <class Real>
void softplus_forward(Real* y, const Real* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] > Real(kSoftplusThreshold) ? x[i] : std::log1p(std::exp(x[i]));
}

template <class Real>
void softplus_backward(Real* dx, const Real* dy, const Real* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dx[i] += dy[i] * (x[i] > Real(kSoftplusThreshold) ? Real(1) : sigmoid(x[i]));
}

}  // namespace hax::ops::ref
