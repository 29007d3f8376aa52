// Elementwise activations with PyTorch semantics: SiLU and softplus (threshold kSoftplusThreshold = 20, as
// torch.nn.functional.softplus). The fast versions are loops over the vectorizable functions of fast_math.h.
#pragma once

#include <cstddef>

#include "hax/ops/fast_math.h"  // kSoftplusThreshold

namespace hax::ops {

// y (n) = x * sigmoid(x).
void silu_forward(float* y, const float* x, std::size_t n);
// dx (n) += dy * sigmoid(x) * (1 + x (1 - sigmoid(x))).
void silu_backward(float* dx, const float* dy, const float* x, std::size_t n);

// y (n) = x if x > 20, else log1p(exp(x)).
void softplus_forward(float* y, const float* x, std::size_t n);
// dx (n) += dy * (x > 20 ? 1 : sigmoid(x)).
void softplus_backward(float* dx, const float* dy, const float* x, std::size_t n);

}  // namespace hax::ops
