// Rotary position embedding (RoPE), GPT-NeoX / non-interleaved layout (reference.md §5.3: fla's Attention, q and k
// of each head): within a head of P elements (P even), element d and element d + P/2 (d < P/2) are rotated as a
// pair by the angle position * inv_freq[d], inv_freq[d] = 1 / theta^(2d/P):
//   out[d]       = x[d] cos - x[d + P/2] sin
//   out[d + P/2] = x[d + P/2] cos + x[d] sin
// Angles: cos and sin are computed in double and rounded to float once, so they are exact to float precision at any
// position. (The reference computes fp32 angles and rounds cos/sin to bf16; at position 1000 an fp32 angle is already
// off by ~3e-5 rad, so the two agree to that, not to the last bit.) The fast kernel evaluates them with exact double
// sincos at every multiple of 64 positions and the angle-addition formula in double in between (error ~1e-14,
// invisible after rounding): each position's cos and sin are a function of the position alone, so the same row gets
// the same bits whether it comes in a whole sequence, a chunk or one decoded token.
#pragma once

namespace hax::ops {

// out, in (T, heads * head_dim): row t holds `heads` heads of head_dim and sits at position position0 + t.
// out may equal in (in place); no other overlap. hax::Error when head_dim is odd.
void rotary_forward(float* out, const float* in, int T, int heads, int head_dim, int position0, float theta);

// din (T, heads * head_dim) += R^T dout, the inverse rotation (angle -position * inv_freq[d]). din must not alias
// dout.
void rotary_backward(float* din, const float* dout, int T, int heads, int head_dim, int position0, float theta);

// hax::Error unless the arguments describe a rotation (head_dim even and positive, T, heads, position0 >= 0,
// theta > 0). Both versions call it.
void check_rotary(int T, int heads, int head_dim, int position0, float theta);

}  // namespace hax::ops
