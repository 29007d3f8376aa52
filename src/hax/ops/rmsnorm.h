// RMSNorm over the last dimension: y = x / sqrt(mean(x^2) + eps) * w.
#pragma once

namespace hax::ops {

// x (M,D), w (D) -> y (M,D); rstd (M) receives 1 / sqrt(mean(x^2) + eps) of each row for the backward pass
// (null when no backward follows).
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int M, int D, float eps = 1e-5f);

// With r = rstd[m]: dx += r w dy - x r^3 (sum_i dy_i w_i x_i) / D, dw += sum over rows of dy x r.
// rstd is the forward's; dx or dw may be null.
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd, int M,
                      int D);

}  // namespace hax::ops
