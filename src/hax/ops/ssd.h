// Mamba2's SSD scan (state-space duality; mamba_ssm mamba_chunk_scan_combined, reference.md §4.4) for ONE
// sequence, fp32. Head h (of H) has P channels and uses the Bm / Cm of group g(h) = h / (H / G):
//   dt[t, h] = softplus(dt_raw[t, h] + dt_bias[h])                  (PyTorch softplus, threshold 20)
//   S[t, h]  = exp(dt[t, h] A[h]) S[t-1, h] + dt[t, h] x[t, h, :] ⊗ Bm[t, g, :]    S: (P, N), A = -exp(A_log)
//   y[t, h, p] = Σ_n S[t, h][p, n] Cm[t, g, n] + D[h] x[t, h, p]                    S[-1] = h0 (or 0)
//
// The fast kernel is the chunked ("dual") form: within a chunk of Q positions the output is a masked quadratic form
// plus the contribution of the state entering the chunk,
//   Y = (Cm Bm^T ∘ L) X + diag(exp(cs)) Cm S_in^T + D X,   L[i, j] = exp(cs[i] - cs[j]) dt[j] for j <= i, else 0,
// with cs the cumulative sums of dt A within the chunk, and the state moves on chunk by chunk:
//   S_out = exp(cs[Q-1]) S_in + X^T diag(exp(cs[Q-1] - cs) dt) Bm.
// Almost all the work is small GEMMs. Every exponent is a difference of cumulative sums of non-positive numbers, so
// no exp() can overflow. The forward saves only the state entering each chunk; the backward recomputes the rest.
// Memory: O(T Q G + H T N) scratch per call, never (T, H, P, N) and never T x T.
//
// hax::ops::ref (ssd_ref.h) is the plain sequential recurrence that the fast kernel is tested against.
#pragma once

#include <cstddef>

namespace hax::ops {

struct SsdShape {
  int seq_len = 0;   // T
  int heads = 0;     // H
  int head_dim = 0;  // P
  int groups = 1;    // G (H % G == 0; head h uses group h / (H / G))
  int state = 0;     // N
  int chunk = 64;    // Q: positions per chunk (an evaluation strategy only: any chunk gives the same result up to
                     // rounding)
};

// All row-major and dense. Optional pointers may be null.
template <class S>
struct SsdInputs {
  const S* x = nullptr;        // (T, H, P)  row t is H*P contiguous floats
  const S* dt_raw = nullptr;   // (T, H)     before the bias
  const S* dt_bias = nullptr;  // (H)
  const S* A_log = nullptr;    // (H)        A = -exp(A_log)
  const S* Bm = nullptr;       // (T, G, N)
  const S* Cm = nullptr;       // (T, G, N)
  const S* D = nullptr;        // (H) optional (null: no skip term)
  const S* h0 = nullptr;       // (H, P, N) optional initial state (null: zeros)
  // The drop-in op (capi/, mamba_ssm's mamba_chunk_scan_combined) passes A itself (all < 0) instead of A_log, may
  // leave dt_bias out (null: 0) and may turn the softplus off (dt = dt_raw + dt_bias, which must be >= 0).
  bool dt_softplus = true;
  const S* A = nullptr;  // (H)
};

// Gradients, ACCUMULATED (+=) like every backward in the engine; any pointer may be null = not wanted.
template <class S>
struct SsdGrads {
  S *dx = nullptr, *ddt_raw = nullptr, *ddt_bias = nullptr, *dA_log = nullptr, *dBm = nullptr, *dCm = nullptr,
    *dD = nullptr, *dh0 = nullptr;
  S* dA = nullptr;  // (H) with A given instead of A_log
};

// Floats the forward keeps for the backward: the state entering each chunk, (ceil(T / Q), H, P, N).
std::size_t ssd_saved_floats(const SsdShape& shape);

// y (T, H, P); hT (H, P, N) optional final state (may be null; must not alias h0); saved: ssd_saved_floats floats
// (may be null when no backward follows). Throws hax::Error on a bad shape or a missing input.
void ssd_forward(const SsdShape& shape, const SsdInputs<float>& in, float* y, float* hT, float* saved);

// The recurrent form, for streaming a few positions (a decoded token): h (H, P, N) is the state entering the
// positions and is updated in place, one position at a time (h = exp(dt A) h + dt x Bm^T; y = h Cm + D x). Equal to
// ssd_forward with h0 = h and hT written back, up to rounding, at O(H P N) per position with no scratch and no
// allocation (the chunked kernel's per-chunk Q x Q scratch costs far more than one position). in.h0 is ignored;
// shape.chunk is not used. Forward only: nothing is saved for a backward.
void ssd_step_forward(const SsdShape& shape, const SsdInputs<float>& in, float* y, float* h);

// dy (T, H, P); dhT (H, P, N) optional gradient reaching the final state. `saved` is what the forward wrote with the
// same inputs and shape.
void ssd_backward(const SsdShape& shape, const SsdInputs<float>& in, const float* saved, const float* dy,
                  const float* dhT, const SsdGrads<float>& grads);

}  // namespace hax::ops
