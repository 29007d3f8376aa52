// SwiGLU, the gate of the gated MLP (reference.md §5.3: MLP(x) = (silu(x Wg^T) * (x Wu^T)) Wd^T): the elementwise
// part, silu(gate) * up. The matrix products around it are linear_forward / linear_backward.
#pragma once

#include <cstddef>

namespace hax::ops {

// out (n) = silu(gate) * up, all contiguous.
void swiglu_forward(float* out, const float* gate, const float* up, std::size_t n);

// dgate (n) += dout * up * silu'(gate); dup (n) += dout * silu(gate). Either may be null.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, std::size_t n);

}  // namespace hax::ops
