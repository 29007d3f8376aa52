#include "hax/ops/activations.h"

#include "hax/ops/fast_math.h"
#include "hax/ops/parallel.h"

namespace hax::ops {

void silu_forward(float* y, const float* x, std::size_t n) {
  parallel_range(n, [&](std::size_t begin, std::size_t end) {
#pragma omp simd
    for (std::size_t i = begin; i < end; ++i) y[i] = x[i] * fast_sigmoid(x[i]);
  });
}

void silu_backward(float* dx, const float* dy, const float* x, std::size_t n) {
  parallel_range(n, [&](std::size_t begin, std::size_t end) {
#pragma omp simd
    for (std::size_t i = begin; i < end; ++i) {
      const float s = fast_sigmoid(x[i]);
      dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
  });
}

void softplus_forward(float* y, const float* x, std::size_t n) {
  parallel_range(n, [&](std::size_t begin, std::size_t end) {
#pragma omp simd
    for (std::size_t i = begin; i < end; ++i) y[i] = fast_softplus(x[i]);
  });
}

void softplus_backward(float* dx, const float* dy, const float* x, std::size_t n) {
  parallel_range(n, [&](std::size_t begin, std::size_t end) {
#pragma omp simd
    for (std::size_t i = begin; i < end; ++i)
      dx[i] += dy[i] * select(x[i] > kSoftplusThreshold, 1.0f, fast_sigmoid(x[i]));
  });
}

}  // namespace hax::ops
