#include "hax/ops/sparse/attention_gate.h"

#include "hax/ops/fast_math.h"
#include "hax/ops/parallel.h"

namespace hax::ops::sparse {

void attention_gate_forward(float* y, const float* attn, const float* E, const float* z, int M, int I) {
#pragma omp parallel for schedule(static) if (worth_threads(std::size_t(M) * I))
  for (int m = 0; m < M; ++m) {
    const std::size_t row = std::size_t(m) * I;
#pragma omp simd
    for (int c = 0; c < I; ++c) y[row + c] += E[c] * attn[row + c] * fast_silu(z[row + c]);
  }
}

void attention_gate_backward(float* dattn, float* dE, float* dz, const float* dy, const float* attn, const float* E,
                             const float* z, int M, int I) {
  const std::vector<double> dE_sums = parallel_row_sums(M, I, I, [&](int m, double* acc) {
    const std::size_t row = std::size_t(m) * I;
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
