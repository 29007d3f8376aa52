#include "hax/ops/sparse/attention_gate.h"

#include "hax/ops/fast_math.h"
#include "hax/ops/parallel.h"

namespace hax::ops::sparse {

void attention_gate_forward(float* y, const float* attn, const float* E, const float* z, int M, int I) {
  parallel_for(M, worth_threads(std::size_t(M) * I), [&](int m) {
    const std::size_t row = std::size_t(m) * I;
    if (z) {
#pragma omp simd
      for (int c = 0; c < I; ++c) y[row + c] += E[c] * attn[row + c] * fast_silu(z[row + c]);
    } else {
#pragma omp simd
      for (int c = 0; c < I; ++c) y[row + c] += E[c] * attn[row + c];
    }
  });
}

void attention_gate_backward(float* dattn, float* dE, float* dz, const float* dy, const float* attn, const float* E,
                             const float* z, int M, int I) {
  // The mixer always asks for dattn and dz: that case gets a loop with no branches in it, which vectorizes (the
  // same math per element, so the same bits as the general loop).
  const std::vector<double> dE_sums = parallel_row_sums(M, I, I, [&](int m, double* acc) {
    const std::size_t row = std::size_t(m) * I;
    if (!z) {  // ungated
      for (int c = 0; c < I; ++c) {
        if (dattn) dattn[row + c] += dy[row + c] * E[c];
        acc[c] += double(dy[row + c] * attn[row + c]);
      }
      return;
    }
    if (dattn && dz) {
      float* __restrict da = dattn + row;
      float* __restrict dzr = dz + row;
      const float *y = dy + row, *a = attn + row, *zr = z + row;
#pragma omp simd
      for (int c = 0; c < I; ++c) {
        const float sig = fast_sigmoid(zr[c]), silu = zr[c] * sig;
        da[c] += y[c] * E[c] * silu;
        dzr[c] += y[c] * E[c] * a[c] * silu_grad(zr[c], sig);
        acc[c] += double(y[c] * a[c] * silu);
      }
      return;
    }
    for (int c = 0; c < I; ++c) {
      const std::size_t i = row + c;
      const float sig = fast_sigmoid(z[i]), silu = z[i] * sig;
      if (dattn) dattn[i] += dy[i] * E[c] * silu;
      if (dz) dz[i] += dy[i] * E[c] * attn[i] * silu_grad(z[i], sig);
      acc[c] += double(dy[i] * attn[i] * silu);
    }
  });
  if (dE) add_sums(dE, dE_sums);
}

}  // namespace hax::ops::sparse
