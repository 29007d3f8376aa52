#include "hax/ops/rmsnorm.h"

#include <cmath>
#include <cstddef>

#include "hax/ops/parallel.h"

namespace hax::ops {

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int M, int D, float eps) {
  parallel_for(M, worth_threads(std::size_t(M) * D), [&](int m) {
    const float* xr = x + std::size_t(m) * D;
    float* yr = y + std::size_t(m) * D;
    float sum_sq = 0.0f;
#pragma omp simd reduction(+ : sum_sq)
    for (int i = 0; i < D; ++i) sum_sq += xr[i] * xr[i];
    const float r = 1.0f / std::sqrt(sum_sq / static_cast<float>(D) + eps);
    if (rstd) rstd[m] = r;
#pragma omp simd
    for (int i = 0; i < D; ++i) yr[i] = xr[i] * r * w[i];
  });
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd, int M,
                      int D) {
  // One pass over the rows: dx row by row, and dw's per-row terms into each thread's partial sum.
  const std::vector<double> dw_sum = parallel_row_sums(M, dw ? D : 0, D, [&](int m, double* acc) {
    const float* xr = x + std::size_t(m) * D;
    const float* g = dy + std::size_t(m) * D;
    const float r = rstd[m];
    if (dx) {
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int i = 0; i < D; ++i) dot += g[i] * w[i] * xr[i];
      const float coef = r * r * r * dot / static_cast<float>(D);
      float* dxr = dx + std::size_t(m) * D;
#pragma omp simd
      for (int i = 0; i < D; ++i) dxr[i] += r * w[i] * g[i] - coef * xr[i];
    }
    if (dw) {
#pragma omp simd
      for (int i = 0; i < D; ++i) acc[i] += g[i] * xr[i] * r;
    }
  });
  if (dw) add_sums(dw, dw_sum);
}

}  // namespace hax::ops
