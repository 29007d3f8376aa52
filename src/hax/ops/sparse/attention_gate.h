// How the attention output enters the enhanced mixer (reference.md §3.3): the scan's y = (SSM + D x) silu(z) gains
// E ⊙ attn ⊙ silu(z), so attention is gated by the same silu(z) as the SSM and scaled per channel by E (init 1).
#pragma once

#include <cstddef>

namespace hax::ops::sparse {

// y (M, I) += E (I) * attn (M, I) * silu(z (M, I)). With z null there is no gate: y += E * attn (Mamba2, where the
// gate comes later, in the gated RMSNorm: reference.md §4.3).
void attention_gate_forward(float* y, const float* attn, const float* E, const float* z, int M, int I);

// dattn (M, I), dE (I), dz (M, I) += the gradients of sum(dy * E attn silu(z)). Any of them may be null (z null:
// ungated, as in the forward; dz is then ignored). dE is
// summed over rows in a fixed order, so the result does not depend on the thread count.
void attention_gate_backward(float* dattn, float* dE, float* dz, const float* dy, const float* attn, const float* E,
                             const float* z, int M, int I);

}  // namespace hax::ops::sparse
