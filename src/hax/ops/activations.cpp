#include "hax/ops/activations.h"

#include "hax/ops/fast_math.h"
#include "hax/ops/parallel.h"

namespace hax::ops {

void silu_forward(float* y, const float* x, std::size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallelElements)
  for (std::size_t i = 0; i < n; ++i) y[i] = fast_silu(x[i]);
}

void silu_backward(float* dx, const float* dy, const float* x, std::size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallelElements)
  for (std::size_t i = 0; i < n; ++i) dx[i] += dy[i] * fast_silu_grad(x[i]);
}

void softplus_forward(float* y, const float* x, std::size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallelElements)
  for (std::size_t i = 0; i < n; ++i) y[i] = fast_softplus(x[i]);
}

void softplus_backward(float* dx, const float* dy, const float* x, std::size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallelElements)
  for (std::size_t i = 0; i < n; ++i) dx[i] += dy[i] * fast_softplus_grad(x[i]);
}

}  // namespace hax::ops
