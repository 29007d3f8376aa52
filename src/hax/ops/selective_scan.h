// Mamba-1 selective scan, as mamba_ssm's selective_scan_fn with delta_bias, delta_softplus and z gating
// (reference.md §3.4), fp32. For each batch b and channel c, with state index n:
//   Δ[t]     = softplus(dt_raw[t] + dt_bias)                 (PyTorch softplus, threshold 20; the bare sum when
//                                                              delta_softplus is off)
//   h[t, n]  = exp(Δ[t] A[n]) h[t-1, n] + Δ[t] Bm[t, n] x[t]   A = -exp(A_log) (or A given), h[-1] = h0 (or 0)
//   y[t]     = (Σ_n Cm[t, n] h[t, n] + D x[t]) silu(z[t])      (no silu(z) factor without z; D = 0 without D)
// The model passes A_log and every optional input; the drop-in PyTorch ops (capi/) pass A itself and leave out what
// their caller left out. The kernel needs a decaying state: A < 0 and Δ >= 0 (true of every Mamba: A = -exp(A_log),
// Δ a softplus); callers with other inputs check this first (capi/ does).
// Bm and Cm are shared by all channels. Positions t >= lengths[b] are padding: no compute, y = 0, no gradient, and
// the final state is the one after the last real position.
//
// Memory stays O(B I N T / chunk): the forward saves the state every `chunk` steps and the backward recomputes each
// chunk's states from that checkpoint before walking it in reverse. Nothing of size (B, T, I, N) is ever stored.
//
// hax::ops::ref below is the plain version (all states kept, any scalar type) that the fast one is tested against.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace hax::ops {

struct ScanShape {
  int batch = 0;     // B
  int seq_len = 0;   // T
  int channels = 0;  // I (d_inner)
  int state = 0;     // N (d_state)
};

// All row-major and dense. Optional pointers may be null.
template <class S>
struct ScanInputs {
  const S* x = nullptr;                   // (B, T, I)  the conv output
  const S* dt_raw = nullptr;              // (B, T, I)  dt_proj output, bias not added
  const S* dt_bias = nullptr;             // (I)        optional (null: 0)
  const S* A_log = nullptr;               // (I, N)     A = -exp(A_log); exactly one of A_log and A
  const S* Bm = nullptr;                  // (B, T, N)
  const S* Cm = nullptr;                  // (B, T, N)
  const S* D = nullptr;                   // (I)        optional (null: 0)
  const S* z = nullptr;                   // (B, T, I)  optional gate (null: no silu(z) factor)
  const S* h0 = nullptr;                  // (B, I, N) optional initial state; null = zeros
  const std::int32_t* lengths = nullptr;  // (B) optional real lengths in [0, T]; null = all T
  bool delta_softplus = true;             // Δ = softplus(dt_raw + dt_bias); off: Δ = dt_raw + dt_bias
  const S* A = nullptr;                   // (I, N)     A itself (all < 0), instead of A_log
};

// Gradients, ACCUMULATED (+=) like every backward in the engine. dx, ddt_raw, dBm, dCm are required; so are dA_log
// (inputs with A_log) or dA (inputs with A), and dz with z; the rest may be null.
template <class S>
struct ScanGrads {
  S* dx = nullptr;        // (B, T, I)
  S* ddt_raw = nullptr;   // (B, T, I)
  S* ddt_bias = nullptr;  // (I)
  S* dA_log = nullptr;    // (I, N)
  S* dBm = nullptr;       // (B, T, N)
  S* dCm = nullptr;       // (B, T, N)
  S* dD = nullptr;        // (I)
  S* dz = nullptr;        // (B, T, I)
  S* dh0 = nullptr;       // (B, I, N) optional
  S* dA = nullptr;        // (I, N)  with A given instead of A_log
};

constexpr int kScanChunk = 32;  // steps between saved states: memory / recompute trade-off

// Floats of the checkpoint buffer: (B, ceil(T / chunk), I, N). Checkpoint k is the state before step k * chunk.
std::size_t scan_checkpoint_floats(const ScanShape& shape, int chunk = kScanChunk);

// Writes y (B, T, I) and, if not null, the final state hT (B, I, N) and the checkpoints (scan_checkpoint_floats).
// Throws hax::Error on a bad shape, chunk or length.
void selective_scan_forward(const ScanShape& shape, const ScanInputs<float>& in, float* y, float* hT,
                            float* checkpoints, int chunk = kScanChunk);

// dy (B, T, I); dhT (B, I, N) optional: the gradient reaching the final state (chunked training). `checkpoints` is
// what the forward wrote with the same inputs and chunk.
void selective_scan_backward(const ScanShape& shape, const ScanInputs<float>& in, const float* checkpoints,
                             const float* dy, const float* dhT, const ScanGrads<float>& grads, int chunk = kScanChunk);

namespace ref {

template <class S>
S softplus(S v) {
  return v > S(20) ? v : std::log1p(std::exp(v));
}
template <class S>
S sigmoid(S v) {
  return S(1) / (S(1) + std::exp(-v));
}

template <class S>
int real_length(const ScanShape& shape, const ScanInputs<S>& in, int b) {
  return in.lengths ? in.lengths[b] : shape.seq_len;
}

// The optional inputs, read with their defaults.
template <class S>
S A_at(const ScanInputs<S>& in, std::size_t cn) {
  return in.A_log ? -std::exp(in.A_log[cn]) : in.A[cn];
}
template <class S>
S opt(const S* p, std::size_t i, S otherwise) {
  return p ? p[i] : otherwise;
}
template <class S>
S delta_of(const ScanInputs<S>& in, S v) {
  return in.delta_softplus ? softplus(v) : v;
}

// Runs the recurrence and keeps every state: states (B, T, I, N). Positions past the length stay 0.
template <class S>
std::vector<S> scan_states(const ScanShape& shape, const ScanInputs<S>& in) {
  const int T = shape.seq_len, I = shape.channels, N = shape.state;
  std::vector<S> states(std::size_t(shape.batch) * T * I * N, S(0));
  for (int b = 0; b < shape.batch; ++b) {
    for (int c = 0; c < I; ++c) {
      for (int n = 0; n < N; ++n) {
        const S A = A_at(in, std::size_t(c) * N + n);
        S h = in.h0 ? in.h0[(std::size_t(b) * I + c) * N + n] : S(0);
        for (int t = 0; t < real_length(shape, in, b); ++t) {
          const std::size_t bt = std::size_t(b) * T + t;
          const S delta = delta_of(in, in.dt_raw[bt * I + c] + opt(in.dt_bias, c, S(0)));
          h = std::exp(delta * A) * h + delta * in.Bm[bt * N + n] * in.x[bt * I + c];
          states[(bt * I + c) * N + n] = h;
        }
      }
    }
  }
  return states;
}

template <class S>
void selective_scan_forward(const ScanShape& shape, const ScanInputs<S>& in, S* y, S* hT) {
  const int T = shape.seq_len, I = shape.channels, N = shape.state;
  const std::vector<S> states = scan_states(shape, in);
  for (int b = 0; b < shape.batch; ++b) {
    const int len = real_length(shape, in, b);
    for (int t = 0; t < T; ++t) {
      const std::size_t bt = std::size_t(b) * T + t;
      for (int c = 0; c < I; ++c) {
        S s = opt(in.D, c, S(0)) * in.x[bt * I + c];
        for (int n = 0; n < N; ++n) s += in.Cm[bt * N + n] * states[(bt * I + c) * N + n];
        const S gate = in.z ? in.z[bt * I + c] * sigmoid(in.z[bt * I + c]) : S(1);
        y[bt * I + c] = t < len ? s * gate : S(0);
      }
    }
    if (!hT) continue;
    for (int c = 0; c < I; ++c) {
      for (int n = 0; n < N; ++n) {
        const std::size_t out = (std::size_t(b) * I + c) * N + n;
        hT[out] = len > 0 ? states[((std::size_t(b) * T + len - 1) * I + c) * N + n] : (in.h0 ? in.h0[out] : S(0));
      }
    }
  }
}

// Straight reverse-mode through the recurrence above, one (b, c) at a time.
template <class S>
void selective_scan_backward(const ScanShape& shape, const ScanInputs<S>& in, const S* dy, const S* dhT,
                             const ScanGrads<S>& g) {
  const int T = shape.seq_len, I = shape.channels, N = shape.state;
  const std::vector<S> states = scan_states(shape, in);
  std::vector<S> dh(N);
  for (int b = 0; b < shape.batch; ++b) {
    for (int c = 0; c < I; ++c) {
      for (int n = 0; n < N; ++n) dh[n] = dhT ? dhT[(std::size_t(b) * I + c) * N + n] : S(0);
      for (int t = real_length(shape, in, b) - 1; t >= 0; --t) {
        const std::size_t bt = std::size_t(b) * T + t, btc = bt * I + c;
        const S x = in.x[btc], v = in.dt_raw[btc] + opt(in.dt_bias, c, S(0));
        const S delta = delta_of(in, v), D = opt(in.D, c, S(0));
        S s = D * x;
        for (int n = 0; n < N; ++n) s += in.Cm[bt * N + n] * states[btc * N + n];
        S ds = dy[btc];
        if (in.z) {
          const S z = in.z[btc], sig_z = sigmoid(z);
          g.dz[btc] += dy[btc] * s * sig_z * (S(1) + z * (S(1) - sig_z));
          ds *= z * sig_z;
        }
        if (g.dD) g.dD[c] += ds * x;
        g.dx[btc] += ds * D;
        S ddelta = 0;
        for (int n = 0; n < N; ++n) {
          const S A = A_at(in, std::size_t(c) * N + n);
          const S Bn = in.Bm[bt * N + n];
          const S h_prev = t > 0 ? states[(btc - I) * N + n] : (in.h0 ? in.h0[(std::size_t(b) * I + c) * N + n] : S(0));
          const S decay = std::exp(delta * A);
          dh[n] += ds * in.Cm[bt * N + n];
          g.dCm[bt * N + n] += ds * states[btc * N + n];
          g.dBm[bt * N + n] += dh[n] * delta * x;
          g.dx[btc] += dh[n] * delta * Bn;
          ddelta += dh[n] * (h_prev * decay * A + Bn * x);
          const S dA = dh[n] * h_prev * decay * delta;
          if (in.A_log) g.dA_log[c * N + n] += dA * A;  // dA/dA_log = A
          else g.dA[c * N + n] += dA;
          dh[n] *= decay;
        }
        const S dv = ddelta * (!in.delta_softplus ? S(1) : v > S(20) ? S(1) : sigmoid(v));
        g.ddt_raw[btc] += dv;
        if (g.ddt_bias) g.ddt_bias[c] += dv;
      }
      if (!g.dh0) continue;
      for (int n = 0; n < N; ++n) g.dh0[(std::size_t(b) * I + c) * N + n] += dh[n];
    }
  }
}

}  // namespace ref
}  // namespace hax::ops
