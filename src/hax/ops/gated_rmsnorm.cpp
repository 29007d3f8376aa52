#include "hax/ops/gated_rmsnorm.h"

#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/engine/error.h"
#include "hax/ops/fast_math.h"
#include "hax/ops/parallel.h"

namespace hax::ops {

void gated_rmsnorm_forward(float* out, float* rstd, const float* y, const float* z, const float* w, int M, int D,
                           float eps) {
  check(M >= 0 && D > 0, "gated rmsnorm: bad shape M=", M, " D=", D);
  parallel_for(M, worth_threads(std::size_t(M) * D), [&](int m) {
    const std::size_t row = std::size_t(m) * D;
    const float *yr = y + row, *zr = z + row;
    float* o = out + row;
    // out holds v until the row's rstd is known.
    float sum_sq = 0.0f;
#pragma omp simd reduction(+ : sum_sq)
    for (int i = 0; i < D; ++i) {
      const float v = yr[i] * fast_silu(zr[i]);
      o[i] = v;
      sum_sq += v * v;
    }
    const float r = 1.0f / std::sqrt(sum_sq / static_cast<float>(D) + eps);
    if (rstd) rstd[m] = r;
#pragma omp simd
    for (int i = 0; i < D; ++i) o[i] *= r * w[i];
  });
}

void gated_rmsnorm_backward(float* dy, float* dz, float* dw, const float* dout, const float* y, const float* z,
                            const float* w, const float* rstd, int M, int D) {
  check(M >= 0 && D > 0, "gated rmsnorm backward: bad shape M=", M, " D=", D);
  // One pass over the rows: dy and dz row by row, and dw's per-row terms into each thread's partial sum. The row's
  // sigmoid(z) is computed once, into a thread's scratch row, and shared by the three uses.
  const std::vector<double> dw_sum = parallel_row_sums(M, dw ? D : 0, D, [&](int m, double* acc) {
    thread_local std::vector<float> sig_row;
    sig_row.resize(D);
    float* __restrict sig = sig_row.data();
    const std::size_t row = std::size_t(m) * D;
    const float *g = dout + row, *yr = y + row, *zr = z + row;
    const float r = rstd[m];
    float dot = 0.0f;  // Σ_i dout_i w_i v_i: how the loss moves with r
#pragma omp simd reduction(+ : dot)
    for (int i = 0; i < D; ++i) {
      sig[i] = fast_sigmoid(zr[i]);
      dot += g[i] * w[i] * yr[i] * zr[i] * sig[i];
    }
    const float coef = r * r * r * dot / static_cast<float>(D);
    if (dy && dz) {
      float* __restrict dyr = dy + row;
      float* __restrict dzr = dz + row;
#pragma omp simd
      for (int i = 0; i < D; ++i) {
        const float silu = zr[i] * sig[i], dv = r * w[i] * g[i] - coef * yr[i] * silu;
        dyr[i] += dv * silu;
        dzr[i] += dv * yr[i] * silu_grad(zr[i], sig[i]);
      }
    } else if (dy || dz) {
      for (int i = 0; i < D; ++i) {
        const float silu = zr[i] * sig[i], dv = r * w[i] * g[i] - coef * yr[i] * silu;
        if (dy) dy[row + i] += dv * silu;
        if (dz) dz[row + i] += dv * yr[i] * silu_grad(zr[i], sig[i]);
      }
    }
    if (dw) {
#pragma omp simd
      for (int i = 0; i < D; ++i) acc[i] += g[i] * yr[i] * zr[i] * sig[i] * r;
    }
  });
  if (dw) add_sums(dw, dw_sum);
}

}  // namespace hax::ops
