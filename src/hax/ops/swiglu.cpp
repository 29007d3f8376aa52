#include "hax/ops/swiglu.h"

#include "hax/ops/fast_math.h"
#include "hax/ops/parallel.h"

namespace hax::ops {

void swiglu_forward(float* out, const float* gate, const float* up, std::size_t n) {
  parallel_range(n, [&](std::size_t begin, std::size_t end) {
#pragma omp simd
    for (std::size_t i = begin; i < end; ++i) out[i] = fast_silu(gate[i]) * up[i];
  });
}

// One loop per combination of wanted gradients, so that no loop body tests a pointer.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, std::size_t n) {
  if (dgate && dup) {
    parallel_range(n, [&](std::size_t begin, std::size_t end) {
#pragma omp simd
      for (std::size_t i = begin; i < end; ++i) {
        const float s = fast_sigmoid(gate[i]);
        dgate[i] += dout[i] * up[i] * silu_grad(gate[i], s);
        dup[i] += dout[i] * (gate[i] * s);  // = dout * fast_silu(gate), as in the dup-only loop
      }
    });
  } else if (dgate) {
    parallel_range(n, [&](std::size_t begin, std::size_t end) {
#pragma omp simd
      for (std::size_t i = begin; i < end; ++i) dgate[i] += dout[i] * up[i] * silu_grad(gate[i], fast_sigmoid(gate[i]));
    });
  } else if (dup) {
    parallel_range(n, [&](std::size_t begin, std::size_t end) {
#pragma omp simd
      for (std::size_t i = begin; i < end; ++i) dup[i] += dout[i] * fast_silu(gate[i]);
    });
  }
}

}  // namespace hax::ops
