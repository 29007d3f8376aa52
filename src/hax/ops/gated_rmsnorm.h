// Mamba2's gated RMSNorm (mamba_ssm RMSNormGated with norm_before_gate=False and one group, reference.md §4.3):
// the gate comes first, then the norm over all D columns:
//   v = y * silu(z),   out = v * rstd * w,   rstd = 1 / sqrt(mean_i(v_i^2) + eps).
#pragma once

namespace hax::ops {

// y, z, out (M, D); w (D); rstd (M) receives each row's rstd for the backward pass (null when no backward follows).
void gated_rmsnorm_forward(float* out, float* rstd, const float* y, const float* z, const float* w, int M, int D,
                           float eps);

// Accumulates dy, dz (M, D) and dw (D); any of them may be null. rstd is the forward's. With r = rstd[m] and
// dv = r w dout - v r^3 (Σ_i dout_i w_i v_i) / D: dy += dv silu(z), dz += dv y silu'(z), dw += Σ_rows dout v r.
void gated_rmsnorm_backward(float* dy, float* dz, float* dw, const float* dout, const float* y, const float* z,
                            const float* w, const float* rstd, int M, int D);

}  // namespace hax::ops
