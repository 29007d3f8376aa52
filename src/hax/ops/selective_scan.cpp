#include "hax/ops/selective_scan.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "hax/engine/aligned_buffer.h"
#include "hax/engine/error.h"
#include "hax/ops/fast_math.h"

namespace hax::ops {
namespace {

// Channels per block of work. The recurrence is vectorized across channels (x, Δ, z, y are contiguous in I and
// Bm[t, n], Cm[t, n] are one scalar for all of them): 16 lanes are two AVX2 vectors and one 64-byte line of each
// (B, T, I) row, so two threads never write the same cache line. Every state is kept as (N, kLanes).
constexpr int kLanes = 16;

struct Sizes {
  int B, T, I, N;
  int chunk;
  int num_chunks;  // ceil(T / chunk)
  int blocks;      // ceil(I / kLanes)
};

int length_of(const ScanInputs<float>& in, int T, int b) { return in.lengths ? in.lengths[b] : T; }

Sizes validated_sizes(const ScanShape& shape, const ScanInputs<float>& in, int chunk) {
  check(shape.batch >= 0 && shape.seq_len >= 0 && shape.channels >= 0 && shape.state >= 0,
        "selective scan: negative size B=", shape.batch, " T=", shape.seq_len, " I=", shape.channels,
        " N=", shape.state);
  check(chunk >= 1, "selective scan: checkpoint chunk must be >= 1, got ", chunk);
  for (int b = 0; b < shape.batch; ++b) {
    const int len = length_of(in, shape.seq_len, b);
    check(len >= 0 && len <= shape.seq_len, "selective scan: length ", len, " of sequence ", b, " is outside [0, ",
          shape.seq_len, "]");
  }
  return {shape.batch,  shape.seq_len, shape.channels, shape.state, chunk, (shape.seq_len + chunk - 1) / chunk,
          (shape.channels + kLanes - 1) / kLanes};
}

// One unit of parallel work: the channels [c0, c0 + count) of sequence b, real for its first len steps.
struct Block {
  int b, c0, count, len;
};

Block block_at(const Sizes& s, const ScanInputs<float>& in, int b, int block) {
  const int c0 = block * kLanes;
  return {b, c0, std::min(kLanes, s.I - c0), length_of(in, s.T, b)};
}

// Lanes past `count` (the last block when I is not a multiple of kLanes) are zero and never stored.
void load_lanes(float* lanes, const float* src, int count) {
  for (int w = 0; w < kLanes; ++w) lanes[w] = w < count ? src[w] : 0.0f;
}
void store_lanes(float* dst, const float* lanes, int count) { std::memcpy(dst, lanes, count * sizeof(float)); }
void add_lanes(float* dst, const float* lanes, int count) {
  for (int w = 0; w < count; ++w) dst[w] += lanes[w];
}

// States move between the (channel, N) layout of h0 / hT / checkpoints and the (N, kLanes) layout of the kernels.
void load_state(float* h, const float* src, int N, int count) {
  std::fill(h, h + N * kLanes, 0.0f);
  if (!src) return;
  for (int w = 0; w < count; ++w)
    for (int n = 0; n < N; ++n) h[n * kLanes + w] = src[w * N + n];
}
void store_state(float* dst, const float* h, int N, int count) {
  for (int w = 0; w < count; ++w)
    for (int n = 0; n < N; ++n) dst[w * N + n] = h[n * kLanes + w];
}
void add_state(float* dst, const float* h, int N, int count) {
  for (int w = 0; w < count; ++w)
    for (int n = 0; n < N; ++n) dst[w * N + n] += h[n * kLanes + w];
}

// Per-thread working memory, carved from one aligned buffer; every array is a multiple of kLanes floats.
struct Scratch {
  explicit Scratch(const Sizes& s)
      : buffer(std::size_t(kLanes) * (std::size_t(2 * s.chunk + 4) * s.N + 2 * s.chunk + kLaneArrays)) {
    float* p = buffer.data();
    auto take = [&p](std::size_t floats) { return std::exchange(p, p + floats * kLanes); };
    A = take(s.N);
    states = take(std::size_t(s.chunk + 1) * s.N);
    decay = take(std::size_t(s.chunk) * s.N);
    dh = take(s.N);
    dA = take(s.N);
    delta = take(s.chunk);
    dsoftplus = take(s.chunk);
    for (float** lanes : {&x, &z, &dy, &D, &dt_bias, &y, &dx, &ddelta, &dD, &ddt_bias}) *lanes = take(1);
  }
  static constexpr int kLaneArrays = 10;

  AlignedBuffer buffer;
  float* A;          // (N, kLanes)  -exp(A_log)
  float* states;     // (chunk + 1, N, kLanes)  forward: the running state in row 0; backward: h[t0 - 1 .. t1 - 1]
  float* decay;      // (chunk, N, kLanes)  exp(Δ A) of each step of the chunk
  float* dh;         // (N, kLanes)  gradient reaching the state after the current step
  float* dA;         // (N, kLanes)  Σ_t dL/dA over this block's steps
  float* delta;      // (chunk, kLanes)
  float* dsoftplus;  // (chunk, kLanes)  dΔ / d(dt_raw)
  float *x, *z, *dy, *D, *dt_bias, *y, *dx, *ddelta, *dD, *ddt_bias;  // (kLanes) each
};

// Loads the per-channel parameters of a block: A = -exp(A_log) as (N, kLanes), D and dt_bias.
void load_channel_params(const Sizes& s, const ScanInputs<float>& in, const Block& blk, Scratch& w) {
  load_state(w.A, in.A_log + std::size_t(blk.c0) * s.N, s.N, blk.count);
  for (int i = 0; i < s.N * kLanes; ++i) w.A[i] = -std::exp(w.A[i]);
  load_lanes(w.D, in.D + blk.c0, blk.count);
  load_lanes(w.dt_bias, in.dt_bias + blk.c0, blk.count);
}

// Δ = softplus(dt_raw + dt_bias) for the block's lanes at row bt (= b * T + t); also dΔ/d(dt_raw) when wanted.
void compute_delta(const Sizes& s, const ScanInputs<float>& in, const Block& blk, std::size_t bt, const Scratch& w,
                   float* delta, float* dsoftplus) {
  float v[kLanes];
  load_lanes(v, in.dt_raw + bt * s.I + blk.c0, blk.count);
#pragma omp simd
  for (int l = 0; l < kLanes; ++l) {
    v[l] += w.dt_bias[l];
    delta[l] = fast_softplus(v[l]);
  }
  if (!dsoftplus) return;
#pragma omp simd
  for (int l = 0; l < kLanes; ++l) dsoftplus[l] = fast_softplus_grad(v[l]);
}

// One step of the recurrence for a block: h_out = exp(Δ A) h_in + Δ Bm[t] x (h_out may alias h_in). With kRecord
// it keeps exp(Δ A) in `decay`; with kOutput it adds Σ_n Cm[t, n] h_out[n] to y.
template <bool kRecord, bool kOutput>
void state_step(int N, const float* A, const float* delta, const float* x, const float* Bm_t, const float* Cm_t,
                const float* h_in, float* h_out, float* decay, float* y) {
  float delta_x[kLanes];
#pragma omp simd
  for (int l = 0; l < kLanes; ++l) delta_x[l] = delta[l] * x[l];
  for (int n = 0; n < N; ++n) {
    const float bn = Bm_t[n];
    const float cn = kOutput ? Cm_t[n] : 0.0f;
    const int row = n * kLanes;
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const float a = fast_exp(delta[l] * A[row + l]);
      const float h = a * h_in[row + l] + delta_x[l] * bn;
      h_out[row + l] = h;
      if constexpr (kRecord) decay[row + l] = a;
      if constexpr (kOutput) y[l] += cn * h;
    }
  }
}

void forward_block(const Sizes& s, const ScanInputs<float>& in, const Block& blk, float* y, float* hT,
                   float* checkpoints, Scratch& w) {
  const int N = s.N;
  load_channel_params(s, in, blk, w);
  float* h = w.states;
  load_state(h, in.h0 ? in.h0 + (std::size_t(blk.b) * s.I + blk.c0) * N : nullptr, N, blk.count);
  for (int t = 0; t < blk.len; ++t) {
    if (checkpoints && t % s.chunk == 0) {
      const std::size_t k = std::size_t(blk.b) * s.num_chunks + t / s.chunk;
      store_state(checkpoints + (k * s.I + blk.c0) * N, h, N, blk.count);
    }
    const std::size_t bt = std::size_t(blk.b) * s.T + t;
    compute_delta(s, in, blk, bt, w, w.delta, nullptr);
    load_lanes(w.x, in.x + bt * s.I + blk.c0, blk.count);
    load_lanes(w.z, in.z + bt * s.I + blk.c0, blk.count);
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) w.y[l] = w.D[l] * w.x[l];
    state_step<false, true>(N, w.A, w.delta, w.x, in.Bm + bt * N, in.Cm + bt * N, h, h, nullptr, w.y);
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) w.y[l] *= fast_silu(w.z[l]);
    store_lanes(y + bt * s.I + blk.c0, w.y, blk.count);
  }
  for (int t = blk.len; t < s.T; ++t) std::fill_n(y + (std::size_t(blk.b) * s.T + t) * s.I + blk.c0, blk.count, 0.0f);
  if (hT) store_state(hT + (std::size_t(blk.b) * s.I + blk.c0) * N, h, N, blk.count);
}

// Where one block's share of the cross-channel sums goes before the deterministic reduction.
struct BlockPartials {
  float* dBm;       // (T, N)  Σ over this block's channels
  float* dCm;       // (T, N)
  float* channels;  // dA_log (N, kLanes), then dD (kLanes), then ddt_bias (kLanes)
};

// Recomputes the states of steps [t0, t1) from checkpoint h[t0 - 1]: states row i holds h[t0 - 1 + i].
void recompute_chunk(const Sizes& s, const ScanInputs<float>& in, const Block& blk, const float* checkpoints, int t0,
                     int t1, Scratch& w) {
  const int N = s.N;
  const std::size_t k = std::size_t(blk.b) * s.num_chunks + t0 / s.chunk;
  load_state(w.states, checkpoints + (k * s.I + blk.c0) * N, N, blk.count);
  for (int t = t0; t < t1; ++t) {
    const int i = t - t0;
    const std::size_t bt = std::size_t(blk.b) * s.T + t;
    compute_delta(s, in, blk, bt, w, w.delta + i * kLanes, w.dsoftplus + i * kLanes);
    load_lanes(w.x, in.x + bt * s.I + blk.c0, blk.count);
    float* h_prev = w.states + std::size_t(i) * N * kLanes;
    state_step<true, false>(N, w.A, w.delta + i * kLanes, w.x, in.Bm + bt * N, nullptr, h_prev, h_prev + N * kLanes,
                            w.decay + std::size_t(i) * N * kLanes, nullptr);
  }
}

// Reverse-mode through step t (chunk row i) of a block, given dL/dh[t] from the later steps in w.dh.
void backward_step(const Sizes& s, const ScanInputs<float>& in, const Block& blk, const float* dy,
                   const ScanGrads<float>& g, int t, int i, Scratch& w, BlockPartials& part) {
  const int N = s.N;
  const std::size_t bt = std::size_t(blk.b) * s.T + t;
  const std::size_t at = bt * s.I + blk.c0;
  load_lanes(w.x, in.x + at, blk.count);
  load_lanes(w.z, in.z + at, blk.count);
  load_lanes(w.dy, dy + at, blk.count);
  const float* delta = w.delta + i * kLanes;
  float ds[kLanes], delta_x[kLanes], s_sum[kLanes];
#pragma omp simd
  for (int l = 0; l < kLanes; ++l) {
    ds[l] = w.dy[l] * fast_silu(w.z[l]);  // dL/d(SSM output + D x)
    delta_x[l] = delta[l] * w.x[l];
    s_sum[l] = w.D[l] * w.x[l];
    w.dD[l] += ds[l] * w.x[l];
    w.dx[l] = ds[l] * w.D[l];
    w.ddelta[l] = 0.0f;
  }
  const float* h_now = w.states + std::size_t(i + 1) * N * kLanes;
  const float* h_prev = w.states + std::size_t(i) * N * kLanes;
  const float* decay = w.decay + std::size_t(i) * N * kLanes;
  const float* Bm_t = in.Bm + bt * N;
  const float* Cm_t = in.Cm + bt * N;
  for (int n = 0; n < N; ++n) {
    const float bn = Bm_t[n], cn = Cm_t[n];
    const int row = n * kLanes;
    float dC_sum = 0.0f, dB_sum = 0.0f;
#pragma omp simd reduction(+ : dC_sum, dB_sum)
    for (int l = 0; l < kLanes; ++l) {
      const float h = h_now[row + l];
      s_sum[l] += cn * h;
      dC_sum += ds[l] * h;
      const float dh = w.dh[row + l] + ds[l] * cn;  // dL/dh[t]
      dB_sum += dh * delta_x[l];
      w.dx[l] += dh * delta[l] * bn;
      const float d_exponent = dh * h_prev[row + l] * decay[row + l];  // dL/d(Δ A)
      w.ddelta[l] += d_exponent * w.A[row + l] + dh * bn * w.x[l];
      w.dA[row + l] += d_exponent * delta[l];
      w.dh[row + l] = dh * decay[row + l];  // on to h[t - 1]
    }
    part.dCm[std::size_t(t) * N + n] = dC_sum;
    part.dBm[std::size_t(t) * N + n] = dB_sum;
  }
  const float* dsoftplus = w.dsoftplus + i * kLanes;
  float dz[kLanes], ddt[kLanes];
#pragma omp simd
  for (int l = 0; l < kLanes; ++l) {
    dz[l] = w.dy[l] * s_sum[l] * fast_silu_grad(w.z[l]);
    ddt[l] = w.ddelta[l] * dsoftplus[l];
    w.ddt_bias[l] += ddt[l];
  }
  add_lanes(g.dx + at, w.dx, blk.count);
  add_lanes(g.dz + at, dz, blk.count);
  add_lanes(g.ddt_raw + at, ddt, blk.count);
}

void backward_block(const Sizes& s, const ScanInputs<float>& in, const Block& blk, const float* checkpoints,
                    const float* dy, const float* dhT, const ScanGrads<float>& g, Scratch& w, BlockPartials& part) {
  const int N = s.N;
  load_channel_params(s, in, blk, w);
  load_state(w.dh, dhT ? dhT + (std::size_t(blk.b) * s.I + blk.c0) * N : nullptr, N, blk.count);
  std::fill_n(w.dA, N * kLanes, 0.0f);
  std::fill_n(w.dD, kLanes, 0.0f);
  std::fill_n(w.ddt_bias, kLanes, 0.0f);
  for (int k = (blk.len - 1) / s.chunk; blk.len > 0 && k >= 0; --k) {
    const int t0 = k * s.chunk, t1 = std::min(t0 + s.chunk, blk.len);
    recompute_chunk(s, in, blk, checkpoints, t0, t1, w);
    for (int t = t1 - 1; t >= t0; --t) backward_step(s, in, blk, dy, g, t, t - t0, w, part);
  }
  if (g.dh0) add_state(g.dh0 + (std::size_t(blk.b) * s.I + blk.c0) * N, w.dh, N, blk.count);
  // dA_log = dA * dA/dA_log = dA * A.
  for (int i = 0; i < N * kLanes; ++i) part.channels[i] = w.dA[i] * w.A[i];
  std::copy_n(w.dD, kLanes, part.channels + N * kLanes);
  std::copy_n(w.ddt_bias, kLanes, part.channels + (N + 1) * kLanes);
}

std::vector<Scratch> scratch_per_thread(const Sizes& s) {
  std::vector<Scratch> scratch;
  const int threads = omp_get_max_threads();
  scratch.reserve(threads);
  for (int i = 0; i < threads; ++i) scratch.emplace_back(s);
  return scratch;
}

// Bm and Cm are shared by all channels, so their gradients sum over blocks, and the per-channel parameters' sum over
// sequences. Each block writes its share to its own slot and the slots are added in a fixed order afterwards: the
// result does not depend on the thread count or the schedule. The cross-channel slots are (T, N) per block, so
// sequences go through in waves of a few, enough to keep every thread busy.
class GradientSlots {
 public:
  GradientSlots(const Sizes& s, int wave)
      : s_(s), wave_(wave), cross_(std::size_t(wave) * s.blocks * 2 * s.T * s.N),
        channels_(std::size_t(s.B) * s.blocks * channel_floats(s)) {}

  int wave() const { return wave_; }

  BlockPartials block(int b, int block) {
    float* cross = cross_.data() + (std::size_t(b % wave_) * s_.blocks + block) * 2 * s_.T * s_.N;
    float* channels = channels_.data() + (std::size_t(b) * s_.blocks + block) * channel_floats(s_);
    return {cross, cross + std::size_t(s_.T) * s_.N, channels};
  }

  // dBm, dCm of row (b, t) += Σ over blocks, in block order.
  void add_cross_channel(int b, int t, const ScanGrads<float>& g) {
    const std::size_t row = (std::size_t(b) * s_.T + t) * s_.N;
    for (int n = 0; n < s_.N; ++n) {
      float dB = 0.0f, dC = 0.0f;
      for (int block = 0; block < s_.blocks; ++block) {
        const BlockPartials p = this->block(b, block);
        dB += p.dBm[std::size_t(t) * s_.N + n];
        dC += p.dCm[std::size_t(t) * s_.N + n];
      }
      g.dBm[row + n] += dB;
      g.dCm[row + n] += dC;
    }
  }

  // dA_log, dD, ddt_bias of channel c += Σ over sequences, in sequence order (summed first, then added once).
  void add_per_channel(int c, const ScanGrads<float>& g) {
    const int N = s_.N, block = c / kLanes, l = c % kLanes;
    auto sum_over_sequences = [&](int row) {
      float sum = 0.0f;
      for (int b = 0; b < s_.B; ++b) sum += this->block(b, block).channels[row * kLanes + l];
      return sum;
    };
    for (int n = 0; n < N; ++n) g.dA_log[std::size_t(c) * N + n] += sum_over_sequences(n);
    g.dD[c] += sum_over_sequences(N);
    g.ddt_bias[c] += sum_over_sequences(N + 1);
  }

 private:
  static std::size_t channel_floats(const Sizes& s) { return std::size_t(s.N + 2) * kLanes; }

  Sizes s_;
  int wave_;
  AlignedBuffer cross_;
  AlignedBuffer channels_;
};

// Sequences per wave: enough blocks for a few per thread, so that dynamic scheduling evens out unequal lengths.
int wave_size(const Sizes& s) {
  const int wanted_blocks = 4 * omp_get_max_threads();
  return std::clamp((wanted_blocks + s.blocks - 1) / std::max(s.blocks, 1), 1, std::max(s.B, 1));
}

}  // namespace

std::size_t scan_checkpoint_floats(const ScanShape& shape, int chunk) {
  check(chunk >= 1, "selective scan: checkpoint chunk must be >= 1, got ", chunk);
  return std::size_t(shape.batch) * ((shape.seq_len + chunk - 1) / chunk) * shape.channels * shape.state;
}

void selective_scan_forward(const ScanShape& shape, const ScanInputs<float>& in, float* y, float* hT,
                            float* checkpoints, int chunk) {
  const Sizes s = validated_sizes(shape, in, chunk);
  std::vector<Scratch> scratch = scratch_per_thread(s);
#pragma omp parallel for schedule(dynamic)
  for (int task = 0; task < s.B * s.blocks; ++task) {
    const Block blk = block_at(s, in, task / s.blocks, task % s.blocks);
    forward_block(s, in, blk, y, hT, checkpoints, scratch[omp_get_thread_num()]);
  }
}

void selective_scan_backward(const ScanShape& shape, const ScanInputs<float>& in, const float* checkpoints,
                             const float* dy, const float* dhT, const ScanGrads<float>& grads, int chunk) {
  const Sizes s = validated_sizes(shape, in, chunk);
  check(checkpoints != nullptr || s.T == 0, "selective scan backward: no checkpoints from the forward");
  std::vector<Scratch> scratch = scratch_per_thread(s);
  GradientSlots slots(s, wave_size(s));
#pragma omp parallel
  {
    Scratch& w = scratch[omp_get_thread_num()];
    for (int b0 = 0; b0 < s.B; b0 += slots.wave()) {
      const int wave = std::min(slots.wave(), s.B - b0);
#pragma omp for schedule(dynamic)
      for (int task = 0; task < wave * s.blocks; ++task) {
        const int b = b0 + task / s.blocks, block = task % s.blocks;
        BlockPartials part = slots.block(b, block);
        backward_block(s, in, block_at(s, in, b, block), checkpoints, dy, dhT, grads, w, part);
      }
#pragma omp for schedule(static)
      for (int row = 0; row < wave * s.T; ++row) {
        const int b = b0 + row / s.T, t = row % s.T;
        if (t < length_of(in, s.T, b)) slots.add_cross_channel(b, t, grads);
      }
    }
#pragma omp for schedule(static)
    for (int c = 0; c < s.I; ++c) slots.add_per_channel(c, grads);
  }
}

}  // namespace hax::ops
