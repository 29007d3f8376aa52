#include "hax/ops/ssd.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <vector>

#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/ops/fast_math.h"
#include "hax/ops/parallel.h"

namespace hax::ops {
namespace {

struct Sizes {
  int T, H, P, G, N, Q;
  int chunks;           // ceil(T / Q)
  int heads_per_group;  // H / G
  int HP() const { return H * P; }
  int GN() const { return G * N; }
  int group(int h) const { return h / heads_per_group; }
  int length(int c) const { return std::min(Q, T - c * Q); }  // positions in chunk c
};

Sizes validated_sizes(const SsdShape& shape, const char* what) {
  const SsdShape& s = shape;
  check(s.seq_len >= 0 && s.heads >= 1 && s.head_dim >= 1 && s.groups >= 1 && s.state >= 1, what,
        ": bad shape T=", s.seq_len, " H=", s.heads, " P=", s.head_dim, " G=", s.groups, " N=", s.state);
  check(s.heads % s.groups == 0, what, ": heads H=", s.heads, " are not a multiple of groups G=", s.groups);
  check(s.chunk >= 1, what, ": chunk must be >= 1, got ", s.chunk);
  return {s.seq_len,         s.heads, s.head_dim, s.groups, s.state, s.chunk, (s.seq_len + s.chunk - 1) / s.chunk,
          s.heads / s.groups};
}

void check_inputs(const Sizes& s, const SsdInputs<float>& in, const char* what) {
  check((in.A_log == nullptr) != (in.A == nullptr), what, ": exactly one of A_log and A must be given");
  check(s.T == 0 || (in.x && in.dt_raw && in.Bm && in.Cm), what, ": x, dt_raw, Bm and Cm are required");
}

// Heads run on separate threads when the sequence is long enough to pay for it (and never when called from inside
// a parallel loop over sequences: nested regions are inactive). Heads are independent and every cross-head sum is
// added in head order afterwards, so the results do not depend on the thread count.
bool heads_in_parallel(const Sizes& s) { return s.H > 1 && worth_threads(std::size_t(s.T) * s.H * s.P * s.N); }

// A of head h: -exp(A_log), or as given.
float head_A(const SsdInputs<float>& in, int h) { return in.A_log ? -std::exp(in.A_log[h]) : in.A[h]; }

// dt of position t and head h: softplus(dt_raw + dt_bias) (or the bare sum), and, given grad, its derivative there
// (left as it is for the bare sum).
inline float head_dt(const Sizes& s, const SsdInputs<float>& in, int t, int h, float* grad = nullptr) {
  const float v = in.dt_raw[std::size_t(t) * s.H + h] + (in.dt_bias ? in.dt_bias[h] : 0.0f);
  return in.dt_softplus ? fast_softplus(v, grad) : v;
}

// dt for every (t, h), and (with dsoftplus) its derivative: (T, H).
void compute_dt(const Sizes& s, const SsdInputs<float>& in, float* dt, float* dsoftplus) {
  for (int t = 0; t < s.T; ++t) {
    const std::size_t row = std::size_t(t) * s.H;
#pragma omp simd
    for (int h = 0; h < s.H; ++h) {
      float grad = 1.0f;
      dt[row + h] = head_dt(s, in, t, h, &grad);
      if (dsoftplus) dsoftplus[row + h] = grad;
    }
  }
}

// Scratch that is written before it is read: not zero-filled (the (H, T, N) gradient partials are megabytes).
using Floats = std::unique_ptr<float[]>;
Floats uninitialized(std::size_t n) { return std::make_unique_for_overwrite<float[]>(n); }

// The work-sharing loops below are called from inside the kernels' one parallel region (or from none).

// cb (chunks, G, Q, Q) = Cm Bm^T of every chunk and group, the part of the quadratic form that all heads of a group
// share. Only the lower triangle (j <= i) is used.
void chunk_products(const Sizes& s, const SsdInputs<float>& in, float* cb) {
#pragma omp for schedule(static)
  for (int k = 0; k < s.chunks * s.G; ++k) {
    const int c = k / s.G, g = k % s.G, L = s.length(c);
    const std::size_t rows = std::size_t(c) * s.Q * s.GN() + std::size_t(g) * s.N;
    gemm(Trans::No, Trans::Yes, L, L, s.N, 1.0f, in.Cm + rows, s.GN(), in.Bm + rows, s.GN(), 0.0f,
         cb + std::size_t(k) * s.Q * s.Q, s.Q);
  }
}

// Working memory of one head's walk over its chunks.
struct HeadScratch {
  explicit HeadScratch(const Sizes& s)
      : dt(s.Q),
        cs(s.Q),
        e(s.Q),
        w(s.Q),
        dcs(s.Q),
        ddt(s.Q),
        M(std::size_t(s.Q) * s.Q),
        dM(std::size_t(s.Q) * s.Q),
        state(std::size_t(s.P) * s.N),
        dstate(std::size_t(s.P) * s.N),
        Bw(std::size_t(s.Q) * s.N),
        Ce(std::size_t(s.Q) * s.N),
        XdS(std::size_t(s.Q) * s.N),
        dYS(std::size_t(s.Q) * s.N) {}
  std::vector<float> dt;      // (Q)  dt of the chunk's positions
  std::vector<float> cs;      // (Q)  cs[i] = Σ_{j <= i} dt[j] A: cumulative log-decay within the chunk (<= 0)
  std::vector<float> e;       // (Q)  exp(cs[i]): decay from the chunk's entry to position i
  std::vector<float> w;       // (Q)  exp(cs[L-1] - cs[j]) dt[j]: weight of position j in the exit state
  std::vector<float> dcs;     // (Q)  dL/dcs
  std::vector<float> ddt;     // (Q)  dL/ddt through the places dt appears directly (not through cs)
  std::vector<float> M;       // (Q, Q)  the masked quadratic form: Cm Bm^T ∘ L
  std::vector<float> dM;      // (Q, Q)  backward: dL/dM, then dL/d(Cm Bm^T)
  std::vector<float> state;   // (P, N)  the state entering the chunk (forward)
  std::vector<float> dstate;  // (P, N)  dL/d(state leaving the chunk), then entering it (backward)
  std::vector<float> Bw;      // (Q, N)  diag(w) Bm
  std::vector<float> Ce;      // (Q, N)  diag(e) Cm
  std::vector<float> XdS;     // (Q, N)  X dstate (backward)
  std::vector<float> dYS;     // (Q, N)  dY state_in (backward)
};

// One chunk of one head: where its rows are.
struct ChunkView {
  int t0, L;
  std::size_t x_at;   // offset of (t0, h, 0) in (T, H, P) arrays; leading dimension H P
  std::size_t bc_at;  // offset of (t0, g, 0) in (T, G, N) arrays; leading dimension G N
};

ChunkView chunk_view(const Sizes& s, int h, int c) {
  const int t0 = c * s.Q;
  return {t0, s.length(c), std::size_t(t0) * s.HP() + std::size_t(h) * s.P,
          std::size_t(t0) * s.GN() + std::size_t(s.group(h)) * s.N};
}

// The triangular loops over j <= i of row i run on to the next multiple of the vector width (masking the extra
// elements) instead of ending in a scalar remainder loop as long as their vector part.
int vector_end(int i, int L) { return std::min(L, (i / kVecWidth + 1) * kVecWidth); }

// Fills w.dt, w.cs, w.e, w.w for the chunk, and w.M = (Cm Bm^T)[i, j] exp(cs[i] - cs[j]) dt[j] for j <= i, else 0.
void chunk_decays(const Sizes& s, const ChunkView& v, int h, float A, const float* dt_all, const float* cb,
                  HeadScratch& w) {
  const int L = v.L, Q = s.Q;
  float* __restrict cs = w.cs.data();
  float* __restrict dt = w.dt.data();
  float sum = 0.0f;  // a cumulative sum of non-positive numbers: never increases, so every cs[i] - cs[j] <= 0 (j <= i)
  for (int i = 0; i < L; ++i) {
    dt[i] = dt_all[std::size_t(v.t0 + i) * s.H + h];
    sum += dt[i] * A;
    cs[i] = sum;
  }
  float* __restrict e = w.e.data();
  float* __restrict exit_weight = w.w.data();
#pragma omp simd
  for (int i = 0; i < L; ++i) {
    e[i] = fast_exp_nonpositive(cs[i]);
    exit_weight[i] = fast_exp_nonpositive(sum - cs[i]) * dt[i];
  }
  for (int i = 0; i < L; ++i) {
    const float* __restrict cb_row = cb + std::size_t(i) * Q;
    float* __restrict m = w.M.data() + std::size_t(i) * Q;
    const float cs_i = cs[i];
    const int end = vector_end(i, L);
#pragma omp simd
    for (int j = 0; j < end; ++j) {
      const bool causal = j <= i;
      m[j] = select(causal, cb_row[j] * fast_exp_nonpositive(select(causal, cs_i - cs[j], 0.0f)) * dt[j], 0.0f);
    }
    std::fill(m + end, m + L, 0.0f);
  }
}

// diag(scale) rows of a (L, N) block with leading dimension ld, into a dense (L, N) array.
void scale_rows(float* out, const float* scale, const float* in, int ld, int L, int N) {
  for (int i = 0; i < L; ++i)
#pragma omp simd
    for (int n = 0; n < N; ++n) out[std::size_t(i) * N + n] = scale[i] * in[std::size_t(i) * ld + n];
}

// Y (L, P) of the chunk = M X + diag(e) Cm S_in^T + D X; then the state moves to the chunk's exit:
// S = e[L-1] S + X^T diag(w) Bm.
void forward_chunk(const Sizes& s, const SsdInputs<float>& in, const ChunkView& v, float D, float* y, HeadScratch& w) {
  const int L = v.L, P = s.P, N = s.N;
  const float* X = in.x + v.x_at;
  float* Y = y + v.x_at;
  gemm(Trans::No, Trans::No, L, P, L, 1.0f, w.M.data(), s.Q, X, s.HP(), 0.0f, Y, s.HP());
  scale_rows(w.Ce.data(), w.e.data(), in.Cm + v.bc_at, s.GN(), L, N);
  gemm(Trans::No, Trans::Yes, L, P, N, 1.0f, w.Ce.data(), N, w.state.data(), N, 1.0f, Y, s.HP());
  if (in.D) {
    for (int i = 0; i < L; ++i)
#pragma omp simd
      for (int p = 0; p < P; ++p) Y[std::size_t(i) * s.HP() + p] += D * X[std::size_t(i) * s.HP() + p];
  }
  const float exit_decay = w.e[L - 1];
  for (float& value : w.state) value *= exit_decay;
  scale_rows(w.Bw.data(), w.w.data(), in.Bm + v.bc_at, s.GN(), L, N);
  gemm(Trans::Yes, Trans::No, P, N, L, 1.0f, X, s.HP(), w.Bw.data(), N, 1.0f, w.state.data(), N);
}

void forward_head(const Sizes& s, const SsdInputs<float>& in, int h, const float* dt_all, const float* cb, float* y,
                  float* hT, float* saved, HeadScratch& w) {
  const std::size_t state_size = std::size_t(s.P) * s.N;
  const float A = head_A(in, h);
  const float D = in.D ? in.D[h] : 0.0f;
  if (in.h0)
    std::copy_n(in.h0 + h * state_size, state_size, w.state.begin());
  else
    std::fill(w.state.begin(), w.state.end(), 0.0f);
  for (int c = 0; c < s.chunks; ++c) {
    if (saved) std::copy_n(w.state.begin(), state_size, saved + (std::size_t(c) * s.H + h) * state_size);
    const ChunkView v = chunk_view(s, h, c);
    chunk_decays(s, v, h, A, dt_all, cb + std::size_t(c * s.G + s.group(h)) * s.Q * s.Q, w);
    forward_chunk(s, in, v, D, y, w);
  }
  if (hT) std::copy_n(w.state.begin(), state_size, hT + h * state_size);
}

// Per-head sums that are not per position, in double so that their order of addition hardly matters.
struct HeadSums {
  double dA = 0, dD = 0, ddt_bias = 0;
};

// Where one head's shares of the cross-head gradients dBm, dCm go: (T, N) each, added over the heads of a group in
// head order afterwards.
struct HeadPartials {
  float* dB;
  float* dC;
};

// The gradients through the quadratic form M = (Cm Bm^T) ∘ exp(cs[i] - cs[j]) dt[j]: dM becomes dL/d(Cm Bm^T) in
// place (zero above the diagonal), and the terms reaching cs and dt directly go to w.dcs and w.ddt. The diagonal
// (exp(0) = 1) does not depend on cs at all: leaving it out of dcs, rather than adding and subtracting its large
// terms, keeps the small sums of fast-decaying heads accurate.
void reverse_quadratic_form(const Sizes& s, const ChunkView& v, const float* cb, HeadScratch& w) {
  const int L = v.L;
  // Plain pointers: stores through the vectors' own data() would make gcc reload them and give up vectorizing.
  const float* __restrict cs = w.cs.data();
  const float* __restrict dt = w.dt.data();
  float* __restrict dcs = w.dcs.data();
  float* __restrict ddt = w.ddt.data();
  for (int i = 0; i < L; ++i) {
    float* __restrict dm = w.dM.data() + std::size_t(i) * s.Q;
    const float* __restrict cb_row = cb + std::size_t(i) * s.Q;
    const float cs_i = cs[i];
    const int end = vector_end(i, L);
    float row_sum = 0.0f;
#pragma omp simd reduction(+ : row_sum)
    for (int j = 0; j < end; ++j) {
      const bool below = j < i;
      const float decay = fast_exp_nonpositive(select(below, cs_i - cs[j], 0.0f));
      const float q = select(j <= i, dm[j] * decay, 0.0f);  // dL/dM exp(cs[i] - cs[j])
      const float z = q * cb_row[j];                        // dL/ddt[j] through M[i, j]
      const float z_cs = select(below, z * dt[j], 0.0f);    // dL/dcs[i], and minus dL/dcs[j], through M[i, j]
      dm[j] = q * dt[j];
      ddt[j] += z;
      dcs[j] -= z_cs;
      row_sum += z_cs;
    }
    dcs[i] += row_sum;
    std::fill(dm + end, dm + L, 0.0f);
  }
}

// The backward of one chunk, given w.dstate = dL/d(state leaving it); leaves dL/d(state entering it) there.
void backward_chunk(const Sizes& s, const SsdInputs<float>& in, const ChunkView& v, float A, float D,
                    const float* state_in, const float* cb, const float* dsoftplus, const float* dy,
                    const SsdGrads<float>& g, HeadPartials part, HeadSums& sums, HeadScratch& w, int h) {
  const int L = v.L, P = s.P, N = s.N, Q = s.Q, HP = s.HP(), GN = s.GN();
  const float *X = in.x + v.x_at, *dY = dy + v.x_at, *Bm = in.Bm + v.bc_at, *Cm = in.Cm + v.bc_at;
  std::fill_n(w.dcs.begin(), L, 0.0f);
  std::fill_n(w.ddt.begin(), L, 0.0f);
  scale_rows(w.Bw.data(), w.w.data(), Bm, GN, L, N);
  scale_rows(w.Ce.data(), w.e.data(), Cm, GN, L, N);

  // dX = M^T dY + diag(w) Bm dS^T + D dY.
  if (g.dx) {
    float* dX = g.dx + v.x_at;
    gemm(Trans::Yes, Trans::No, L, P, L, 1.0f, w.M.data(), Q, dY, HP, 1.0f, dX, HP);
    gemm(Trans::No, Trans::Yes, L, P, N, 1.0f, w.Bw.data(), N, w.dstate.data(), N, 1.0f, dX, HP);
    if (in.D)
      for (int i = 0; i < L; ++i)
#pragma omp simd
        for (int p = 0; p < P; ++p) dX[std::size_t(i) * HP + p] += D * dY[std::size_t(i) * HP + p];
  }
  double dD = 0.0;
  for (int i = 0; i < L; ++i)
#pragma omp simd reduction(+ : dD)
    for (int p = 0; p < P; ++p) dD += dY[std::size_t(i) * HP + p] * X[std::size_t(i) * HP + p];
  sums.dD += dD;

  // The quadratic form: dM = dY X^T, then dL/d(Cm Bm^T) and the decay terms.
  gemm(Trans::No, Trans::Yes, L, L, P, 1.0f, dY, HP, X, HP, 0.0f, w.dM.data(), Q);
  reverse_quadratic_form(s, v, cb, w);

  // The exit state S_out = e[L-1] S_in + X^T diag(w) Bm, with dS = dL/dS_out: dw[j] = Σ_n (X dS)[j, n] Bm[j, n].
  gemm(Trans::No, Trans::No, L, N, P, 1.0f, X, HP, w.dstate.data(), N, 0.0f, w.XdS.data(), N);
  const float exit_decay = w.e[L - 1], last = w.cs[L - 1];
  float d_last = 0.0f;  // dL/dcs[L-1] from the exit state
  for (int j = 0; j < L; ++j) {
    float dw = 0.0f;
#pragma omp simd reduction(+ : dw)
    for (int n = 0; n < N; ++n) dw += w.XdS[std::size_t(j) * N + n] * Bm[std::size_t(j) * GN + n];
    w.ddt[j] += dw * fast_exp_nonpositive(last - w.cs[j]);
    if (j == L - 1) continue;  // exp(cs[L-1] - cs[L-1]) = 1 does not depend on cs (see reverse_quadratic_form)
    d_last += dw * w.w[j];
    w.dcs[j] -= dw * w.w[j];
  }
  float carried = 0.0f;  // Σ dS ∘ S_in
#pragma omp simd reduction(+ : carried)
  for (int i = 0; i < P * N; ++i) carried += w.dstate[i] * state_in[i];
  w.dcs[L - 1] += d_last + exit_decay * carried;

  // The entry state's term diag(e) Cm S_in^T of Y: dCm += diag(e) dY S_in, dcs[i] += e[i] Σ_n Cm[i, n] (dY S_in)[i, n].
  gemm(Trans::No, Trans::No, L, N, P, 1.0f, dY, HP, state_in, N, 0.0f, w.dYS.data(), N);
  for (int i = 0; i < L; ++i) {
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int n = 0; n < N; ++n) dot += Cm[std::size_t(i) * GN + n] * w.dYS[std::size_t(i) * N + n];
    w.dcs[i] += w.e[i] * dot;
  }
  if (part.dC) {
    float* dC = part.dC + std::size_t(v.t0) * N;
    gemm(Trans::No, Trans::No, L, N, L, 1.0f, w.dM.data(), Q, Bm, GN, 0.0f, dC, N);
    for (int i = 0; i < L; ++i)
#pragma omp simd
      for (int n = 0; n < N; ++n) dC[std::size_t(i) * N + n] += w.e[i] * w.dYS[std::size_t(i) * N + n];
  }
  if (part.dB) {
    float* dB = part.dB + std::size_t(v.t0) * N;
    gemm(Trans::Yes, Trans::No, L, N, L, 1.0f, w.dM.data(), Q, Cm, GN, 0.0f, dB, N);
    for (int j = 0; j < L; ++j)
#pragma omp simd
      for (int n = 0; n < N; ++n) dB[std::size_t(j) * N + n] += w.w[j] * w.XdS[std::size_t(j) * N + n];
  }

  // On to the state entering the chunk: dS_in = e[L-1] dS + dY^T diag(e) Cm.
  for (float& value : w.dstate) value *= exit_decay;
  gemm(Trans::Yes, Trans::No, P, N, L, 1.0f, dY, HP, w.Ce.data(), N, 1.0f, w.dstate.data(), N);

  // cs[i] = Σ_{k <= i} dt[k] A: dL/d(dt[k] A) = Σ_{i >= k} dcs[i].
  float da = 0.0f;
  for (int k = L - 1; k >= 0; --k) {
    da += w.dcs[k];
    const float dv = (w.ddt[k] + da * A) * dsoftplus[std::size_t(v.t0 + k) * s.H + h];
    sums.dA += double(da) * w.dt[k];
    sums.ddt_bias += dv;
    if (g.ddt_raw) g.ddt_raw[std::size_t(v.t0 + k) * s.H + h] += dv;
  }
}

void backward_head(const Sizes& s, const SsdInputs<float>& in, int h, const float* saved, const float* dt_all,
                   const float* dsoftplus, const float* cb, const float* dy, const float* dhT, const SsdGrads<float>& g,
                   HeadPartials part, HeadScratch& w) {
  const std::size_t state_size = std::size_t(s.P) * s.N;
  const float A = head_A(in, h);
  const float D = in.D ? in.D[h] : 0.0f;
  if (dhT)
    std::copy_n(dhT + h * state_size, state_size, w.dstate.begin());
  else
    std::fill(w.dstate.begin(), w.dstate.end(), 0.0f);
  HeadSums sums;
  for (int c = s.chunks - 1; c >= 0; --c) {
    const ChunkView v = chunk_view(s, h, c);
    const float* chunk_cb = cb + std::size_t(c * s.G + s.group(h)) * s.Q * s.Q;
    chunk_decays(s, v, h, A, dt_all, chunk_cb, w);
    backward_chunk(s, in, v, A, D, saved + (std::size_t(c) * s.H + h) * state_size, chunk_cb, dsoftplus, dy, g, part,
                   sums, w, h);
  }
  if (g.dh0)
    for (std::size_t i = 0; i < state_size; ++i) g.dh0[h * state_size + i] += w.dstate[i];
  if (g.dA_log && in.A_log) g.dA_log[h] += static_cast<float>(sums.dA * A);  // dA/dA_log = A
  if (g.dA && in.A) g.dA[h] += static_cast<float>(sums.dA);
  if (g.dD && in.D) g.dD[h] += static_cast<float>(sums.dD);
  if (g.ddt_bias) g.ddt_bias[h] += static_cast<float>(sums.ddt_bias);
}

// grad (T, G, N) += Σ over the heads of each group of the per-head partials (H, T, N), in head order.
void add_group_sums(const Sizes& s, const float* partials, float* grad) {
  if (!grad) return;
  const std::size_t head_stride = std::size_t(s.T) * s.N;
#pragma omp for schedule(static)
  for (int t = 0; t < s.T; ++t) {
    for (int g = 0; g < s.G; ++g) {
      float* out = grad + (std::size_t(t) * s.G + g) * s.N;
      for (int n = 0; n < s.N; ++n) {
        float sum = 0.0f;
        for (int h = g * s.heads_per_group; h < (g + 1) * s.heads_per_group; ++h)
          sum += partials[h * head_stride + std::size_t(t) * s.N + n];
        out[n] += sum;
      }
    }
  }
}

}  // namespace

std::size_t ssd_saved_floats(const SsdShape& shape) {
  const Sizes s = validated_sizes(shape, "ssd");
  return std::size_t(s.chunks) * s.H * s.P * s.N;
}

void ssd_forward(const SsdShape& shape, const SsdInputs<float>& in, float* y, float* hT, float* saved) {
  const Sizes s = validated_sizes(shape, "ssd forward");
  check_inputs(s, in, "ssd forward");
  check(y != nullptr || s.T == 0, "ssd forward: no output buffer y");
  check(hT == nullptr || hT != in.h0, "ssd forward: the final state hT must not alias the initial state h0");
  std::vector<float> dt(std::size_t(s.T) * s.H);
  compute_dt(s, in, dt.data(), nullptr);
  const Floats cb = uninitialized(std::size_t(s.chunks) * s.G * s.Q * s.Q);
#pragma omp parallel if (heads_in_parallel(s))
  {
    chunk_products(s, in, cb.get());
    HeadScratch w(s);
#pragma omp for schedule(static)
    for (int h = 0; h < s.H; ++h) forward_head(s, in, h, dt.data(), cb.get(), y, hT, saved, w);
  }
}

void ssd_step_forward(const SsdShape& shape, const SsdInputs<float>& in, float* y, float* h) {
  const Sizes s = validated_sizes(shape, "ssd step");
  check_inputs(s, in, "ssd step");
  check(s.T == 0 || (y != nullptr && h != nullptr), "ssd step: needs the output y and the state h");
  // Heads are independent: a large state (a model of realistic size) shares them out; a small one stays on this
  // thread.
  parallel_for(s.H, heads_in_parallel(s), [&](int head) {
    const float A = head_A(in, head), D = in.D ? in.D[head] : 0.0f;
    float* __restrict state = h + std::size_t(head) * s.P * s.N;
    for (int t = 0; t < s.T; ++t) {
      const float dt = head_dt(s, in, t, head), decay = std::exp(dt * A);
      const float* x = in.x + (std::size_t(t) * s.H + head) * s.P;
      const std::size_t bc = (std::size_t(t) * s.G + s.group(head)) * s.N;
      const float* __restrict Bm = in.Bm + bc;
      const float* __restrict Cm = in.Cm + bc;
      float* out = y + (std::size_t(t) * s.H + head) * s.P;
      for (int p = 0; p < s.P; ++p) {
        float* __restrict row = state + std::size_t(p) * s.N;
        const float input = dt * x[p];
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int n = 0; n < s.N; ++n) {
          row[n] = decay * row[n] + input * Bm[n];
          dot += row[n] * Cm[n];
        }
        out[p] = dot + D * x[p];
      }
    }
  });
}

void ssd_backward(const SsdShape& shape, const SsdInputs<float>& in, const float* saved, const float* dy,
                  const float* dhT, const SsdGrads<float>& grads) {
  const Sizes s = validated_sizes(shape, "ssd backward");
  check_inputs(s, in, "ssd backward");
  check(s.T == 0 || (saved != nullptr && dy != nullptr), "ssd backward: needs the forward's saved states and dy");
  std::vector<float> dt(std::size_t(s.T) * s.H), dsoftplus(dt.size());
  compute_dt(s, in, dt.data(), dsoftplus.data());
  const Floats cb = uninitialized(std::size_t(s.chunks) * s.G * s.Q * s.Q);
  const std::size_t head_stride = std::size_t(s.T) * s.N;
  const Floats dB = uninitialized(grads.dBm ? s.H * head_stride : 0);
  const Floats dC = uninitialized(grads.dCm ? s.H * head_stride : 0);
#pragma omp parallel if (heads_in_parallel(s))
  {
    chunk_products(s, in, cb.get());
    HeadScratch w(s);
#pragma omp for schedule(static)
    for (int h = 0; h < s.H; ++h) {
      const HeadPartials part{grads.dBm ? dB.get() + h * head_stride : nullptr,
                              grads.dCm ? dC.get() + h * head_stride : nullptr};
      backward_head(s, in, h, saved, dt.data(), dsoftplus.data(), cb.get(), dy, dhT, grads, part, w);
    }
    add_group_sums(s, dB.get(), grads.dBm);
    add_group_sums(s, dC.get(), grads.dCm);
  }
}

}  // namespace hax::ops
