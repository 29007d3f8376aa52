#include "hax/ops/swiglu.h"

#include "hax/ops/fast_math.h"
#include "hax/ops/parallel.h"

namespace hax::ops {

void swiglu_forward(float* out, const float* gate, const float* up, std::size_t n) {
#pragma omp parallel for simd schedule(static) if (worth_threads(n))
  for (std::size_t i = 0; i < n; ++i) out[i] = fast_silu(gate[i]) * up[i];
}

// One loop per combination of wanted gradients, so that no loop body tests a pointer.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, std::size_t n) {
  if (dgate && dup) {
#pragma omp parallel for simd schedule(static) if (worth_threads(n))
    for (std::size_t i = 0; i < n; ++i) {
      const float s = fast_sigmoid(gate[i]);
      dgate[i] += dout[i] * up[i] * silu_grad(gate[i], s);
      dup[i] += dout[i] * (gate[i] * s);  // = dout * fast_silu(gate), as in the dup-only loop
    }
  } else if (dgate) {
#pragma omp parallel for simd schedule(static) if (worth_threads(n))
    for (std::size_t i = 0; i < n; ++i) dgate[i] += dout[i] * up[i] * silu_grad(gate[i], fast_sigmoid(gate[i]));
  } else if (dup) {
#pragma omp parallel for simd schedule(static) if (worth_threads(n))
    for (std::size_t i = 0; i < n; ++i) dup[i] += dout[i] * fast_silu(gate[i]);
  }
}

}  // namespace hax::ops
