#include "hax/ops/selective_scan.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "hax/engine/aligned_buffer.h"
#include "hax/engine/error.h"
#include "hax/ops/fast_math.h"

namespace hax::ops {
namespace {

// The recurrence is vectorized across channels: x, Δ, z, y are contiguous in I, and Bm[t, n], Cm[t, n] are one
// scalar for all channels. A block is the 8 channels of one Vec8; every state is kept as (N, kLanes), one Vec8 per n.
constexpr int kLanes = kVecWidth;
// A task (one unit of parallel work) is 2 neighbouring blocks: one 64-byte line of each (B, T, I) row, so two
// threads never write the same cache line at the same time.
constexpr int kBlocksPerTask = 2;

struct Sizes {
  int B, T, I, N;
  int chunk;
  int num_chunks;  // ceil(T / chunk)
  int blocks;      // ceil(I / kLanes)
  int tasks;       // per sequence: ceil(blocks / kBlocksPerTask)
};

int length_of(const ScanInputs<float>& in, int T, int b) { return in.lengths ? in.lengths[b] : T; }

Sizes validated_sizes(const ScanShape& shape, const ScanInputs<float>& in, int chunk) {
  check(shape.batch >= 0 && shape.seq_len >= 0 && shape.channels >= 0 && shape.state >= 0,
        "selective scan: negative size B=", shape.batch, " T=", shape.seq_len, " I=", shape.channels,
        " N=", shape.state);
  check(chunk >= 1, "selective scan: checkpoint chunk must be >= 1, got ", chunk);
  check((in.A_log == nullptr) != (in.A == nullptr), "selective scan: exactly one of A_log and A must be given");
  check(in.x && in.dt_raw && in.Bm && in.Cm, "selective scan: x, dt_raw, Bm and Cm are required");
  for (int b = 0; b < shape.batch; ++b) {
    const int len = length_of(in, shape.seq_len, b);
    check(len >= 0 && len <= shape.seq_len, "selective scan: length ", len, " of sequence ", b, " is outside [0, ",
          shape.seq_len, "]");
  }
  const int blocks = (shape.channels + kLanes - 1) / kLanes;
  return {shape.batch,    shape.seq_len,
          shape.channels, shape.state,
          chunk,          (shape.seq_len + chunk - 1) / chunk,
          blocks,         (blocks + kBlocksPerTask - 1) / kBlocksPerTask};
}

// The channels [c0, c0 + count) of sequence b, real for its first len steps.
struct Block {
  int b, c0, count, len;
};

// The blocks of one task, which go through the time steps together: each line of a (B, T, I) row is fetched once.
struct Task {
  Block blocks[kBlocksPerTask];
  int num_blocks;
  int index;  // of the first block
};

Task task_at(const Sizes& s, const ScanInputs<float>& in, int b, int task) {
  Task t{};
  t.index = task * kBlocksPerTask;
  t.num_blocks = std::min(kBlocksPerTask, s.blocks - t.index);
  for (int j = 0; j < t.num_blocks; ++j) {
    const int c0 = (t.index + j) * kLanes;
    t.blocks[j] = Block{b, c0, std::min(kLanes, s.I - c0), length_of(in, s.T, b)};
  }
  return t;
}

// The (B, T, I) arrays are read one row per step, I floats apart. The kernels ask for the rows of the next chunk while
// working on this one (a few percent faster backward on the 2-core development machine; free elsewhere).
// Prefetches the task's part of row `row` (of width I) of `base`: first and last channel, which may be two lines.
void prefetch_task_row(const float* base, const Sizes& s, const Task& task, std::size_t row) {
  const Block& first = task.blocks[0];
  const Block& last = task.blocks[task.num_blocks - 1];
  __builtin_prefetch(base + row * s.I + first.c0);
  __builtin_prefetch(base + row * s.I + last.c0 + last.count - 1);
}

// Lanes past `count` (the last block when I is not a multiple of 8) are zero and never stored.
Vec8 load_lanes(const float* src, int count) {
  if (count == kLanes) return load_vec(src);
  float lanes[kLanes] = {};
  std::copy_n(src, count, lanes);
  return load_vec(lanes);
}
void store_lanes(float* dst, Vec8 v, int count) {
  if (count == kLanes) return store_vec(dst, v);
  float lanes[kLanes];
  store_vec(lanes, v);
  std::copy_n(lanes, count, dst);
}
void add_lanes(float* dst, Vec8 v, int count) { store_lanes(dst, load_lanes(dst, count) + v, count); }

// States move between the (channel, N) layout of h0 / hT / checkpoints and the (N, kLanes) layout of the kernels.
void load_state(float* h, const float* src, int N, int count) {
  std::fill_n(h, N * kLanes, 0.0f);
  if (!src) return;
  for (int l = 0; l < count; ++l)
    for (int n = 0; n < N; ++n) h[n * kLanes + l] = src[l * N + n];
}
void store_state(float* dst, const float* h, int N, int count) {
  for (int l = 0; l < count; ++l)
    for (int n = 0; n < N; ++n) dst[l * N + n] = h[n * kLanes + l];
}
void add_state(float* dst, const float* h, int N, int count) {
  for (int l = 0; l < count; ++l)
    for (int n = 0; n < N; ++n) dst[l * N + n] += h[n * kLanes + l];
}

// Working memory of one block, carved from one 64-byte aligned buffer. The (chunk, kLanes) arrays hold one Vec8 per
// step of the current chunk: every chunk goes through in phases (per-step lane math for all its steps, then the
// state recurrence, then per-step lane math again), so that the long exp / log / divide chains of one step overlap
// with those of the next instead of stalling the recurrence, and each (B, T, I) row is read once per chunk (rows
// I floats apart collide in the L1 cache; the contiguous step arrays do not).
struct BlockScratch {
  explicit BlockScratch(const Sizes& s)
      : buffer(std::size_t(kLanes) * (std::size_t(2 * s.chunk + 4) * s.N + kStepArrays * s.chunk)) {
    float* p = buffer.data();
    auto take = [&p](std::size_t rows) { return std::exchange(p, p + rows * kLanes); };
    A = take(s.N);
    states = take(std::size_t(s.chunk + 1) * s.N);
    decay = take(std::size_t(s.chunk) * s.N);
    dh = take(s.N);
    dA = take(s.N);
    for (float** step_array : {&x, &delta, &dsoftplus, &delta_x, &scale, &ds, &ssm, &dh_B, &dexp_A})
      *step_array = take(s.chunk);
  }
  static constexpr int kStepArrays = 9;

  AlignedBuffer buffer;
  float* A;          // (N, kLanes)  -exp(A_log)
  float* states;     // (chunk + 1, N, kLanes)  forward: h[t - 1] and h[t] in rows t % 2; backward: h[t0 - 1 .. t1 - 1]
  float* decay;      // (chunk, N, kLanes)  exp(Δ A) of each step of the chunk (backward)
  float* dh;         // (N, kLanes)  gradient reaching the state after the current step
  float* dA;         // (N, kLanes)  Σ_t dL/dA over the block's steps
  float* x;          // (chunk, kLanes)  x
  float* delta;      // (chunk, kLanes)  Δ
  float* dsoftplus;  // (chunk, kLanes)  dΔ / d(dt_raw)
  float* delta_x;    // (chunk, kLanes)  Δ x
  float* scale;      // (chunk, kLanes)  forward: silu(z), so y = (ssm + D x) scale; backward: dy silu'(z), so that
                     //                  dz = (ssm + D x) scale
  float* ds;         // (chunk, kLanes)  dL/d(ssm + D x) = dy silu(z)
  float* ssm;        // (chunk, kLanes)  Σ_n Cm[t, n] h[t, n]
  float* dh_B;       // (chunk, kLanes)  Σ_n dL/dh[t, n] Bm[t, n]
  float* dexp_A;     // (chunk, kLanes)  Σ_n dL/d(Δ A[n]) A[n]
};

// One thread's working memory: one BlockScratch per block of a task.
struct Scratch {
  explicit Scratch(const Sizes& s) {
    for (int j = 0; j < kBlocksPerTask; ++j) blocks.emplace_back(s);
  }
  std::vector<BlockScratch> blocks;
};

// The per-channel parameters of a block: A (= -exp(A_log), or as given) goes to w.A as (N, kLanes).
struct ChannelParams {
  Vec8 D, dt_bias;
};
Vec8 load_optional_lanes(const float* src, int c0, int count) { return src ? load_lanes(src + c0, count) : Vec8{}; }
ChannelParams load_channel_params(const Sizes& s, const ScanInputs<float>& in, const Block& blk, BlockScratch& w) {
  load_state(w.A, (in.A_log ? in.A_log : in.A) + std::size_t(blk.c0) * s.N, s.N, blk.count);
  if (in.A_log)
    for (int i = 0; i < s.N * kLanes; ++i) w.A[i] = -std::exp(w.A[i]);
  return {load_optional_lanes(in.D, blk.c0, blk.count), load_optional_lanes(in.dt_bias, blk.c0, blk.count)};
}

std::size_t lane_offset(const Sizes& s, const Block& blk, int t) {
  return (std::size_t(blk.b) * s.T + t) * s.I + blk.c0;
}

// The per-step lane math before the recurrence, for every step of [t0, t1): x, Δ = softplus(dt_raw + dt_bias),
// Δ x and the output scale; for the backward (dy not null) also dΔ/d(dt_raw) and ds.
void prepare_chunk(const Sizes& s, const ScanInputs<float>& in, const Block& blk, const ChannelParams& p,
                   const float* dy, int t0, int t1, BlockScratch& w) {
  for (int t = t0; t < t1; ++t) {
    const int i = (t - t0) * kLanes;
    const std::size_t at = lane_offset(s, blk, t);
    const Vec8 x = load_lanes(in.x + at, blk.count);
    const Vec8 v = load_lanes(in.dt_raw + at, blk.count) + p.dt_bias;
    Vec8 dsoftplus = splat<Vec8>(1.0f);
    const Vec8 delta = in.delta_softplus ? fast_softplus(v, dy ? &dsoftplus : nullptr) : v;
    store_vec(w.x + i, x);
    store_vec(w.delta + i, delta);
    store_vec(w.delta_x + i, delta * x);
    // Without z the gate is 1: y = ssm + D x, and nothing goes to dz.
    const Vec8 z = in.z ? load_lanes(in.z + at, blk.count) : Vec8{};
    const Vec8 sigmoid_z = in.z ? fast_sigmoid(z) : Vec8{};
    const Vec8 gate = in.z ? z * sigmoid_z : splat<Vec8>(1.0f);
    if (!dy) {
      store_vec(w.scale + i, gate);
      continue;
    }
    const Vec8 dy_t = load_lanes(dy + at, blk.count);
    store_vec(w.dsoftplus + i, dsoftplus);
    store_vec(w.ds + i, dy_t * gate);
    store_vec(w.scale + i, in.z ? dy_t * silu_grad(z, sigmoid_z) : Vec8{});
  }
}

// One step of the recurrence for a block: h_next = exp(Δ A) h_prev + Δ Bm[t] x. With kRecord it keeps exp(Δ A)
// in `decay`; with kOutput it returns Σ_n Cm[t, n] h_next[n].
template <bool kRecord, bool kOutput>
Vec8 state_step(int N, const float* __restrict A, Vec8 delta, Vec8 delta_x, const float* __restrict Bm_t,
                const float* __restrict Cm_t, const float* __restrict h_prev, float* __restrict h_next,
                float* __restrict decay) {
  Vec8 y{};
  for (int n = 0; n < N; ++n) {
    const int row = n * kLanes;
    const Vec8 a = fast_exp_nonpositive(delta * load_vec(A + row));  // Δ >= 0, A < 0
    const Vec8 h = a * load_vec(h_prev + row) + delta_x * Bm_t[n];
    store_vec(h_next + row, h);
    if constexpr (kRecord) store_vec(decay + row, a);
    if constexpr (kOutput) y += h * Cm_t[n];
  }
  return y;
}

// The rows of step t of the arrays a task reads or writes, asked for ahead of their use.
struct RowPrefetch {
  const Task* task;
  std::array<const float*, 7> arrays{};  // unused entries stay null
  void at(const Sizes& s, int t) const {
    if (t < 0 || t >= s.T) return;
    const std::size_t row = std::size_t(task->blocks[0].b) * s.T + t;
    for (const float* base : arrays)
      if (base) prefetch_task_row(base, s, *task, row);
  }
};

// The forward recurrence over [t0, t1): h[t - 1] in w.states row t % 2, h[t] to the other row; Σ_n Cm h to w.ssm.
void forward_states(const Sizes& s, const ScanInputs<float>& in, const Block& blk, int t0, int t1, BlockScratch& w,
                    const RowPrefetch* prefetch) {
  const std::size_t rows = std::size_t(s.N) * kLanes;
  for (int t = t0; t < t1; ++t) {
    if (prefetch) prefetch->at(s, t + s.chunk);
    const int i = (t - t0) * kLanes;
    const std::size_t bt = std::size_t(blk.b) * s.T + t;
    const Vec8 ssm =
        state_step<false, true>(s.N, w.A, load_vec(w.delta + i), load_vec(w.delta_x + i), in.Bm + bt * s.N,
                                in.Cm + bt * s.N, w.states + (t % 2) * rows, w.states + ((t + 1) % 2) * rows, nullptr);
    store_vec(w.ssm + i, ssm);
  }
}

// Writes the checkpoint of the state before step t (t a multiple of chunk).
void save_checkpoint(const Sizes& s, const Block& blk, int t, const float* h, float* checkpoints) {
  const std::size_t k = std::size_t(blk.b) * s.num_chunks + t / s.chunk;
  store_state(checkpoints + (k * s.I + blk.c0) * s.N, h, s.N, blk.count);
}

void forward_chunk(const Sizes& s, const ScanInputs<float>& in, const Block& blk, const ChannelParams& p, int t0,
                   int t1, float* y, float* checkpoints, BlockScratch& w, const RowPrefetch* prefetch) {
  if (checkpoints) save_checkpoint(s, blk, t0, w.states + (t0 % 2) * s.N * kLanes, checkpoints);
  prepare_chunk(s, in, blk, p, nullptr, t0, t1, w);
  forward_states(s, in, blk, t0, t1, w, prefetch);
  for (int t = t0; t < t1; ++t) {
    const int i = (t - t0) * kLanes;
    const Vec8 skip = p.D * load_vec(w.x + i);
    store_lanes(y + lane_offset(s, blk, t), (load_vec(w.ssm + i) + skip) * load_vec(w.scale + i), blk.count);
  }
}

void forward_task(const Sizes& s, const ScanInputs<float>& in, const Task& task, float* y, float* hT,
                  float* checkpoints, Scratch& w) {
  const int N = s.N, len = task.blocks[0].len, b = task.blocks[0].b;
  ChannelParams params[kBlocksPerTask];
  for (int j = 0; j < task.num_blocks; ++j) {
    const Block& blk = task.blocks[j];
    params[j] = load_channel_params(s, in, blk, w.blocks[j]);
    load_state(w.blocks[j].states, in.h0 ? in.h0 + (std::size_t(b) * s.I + blk.c0) * N : nullptr, N, blk.count);
  }
  const RowPrefetch prefetch{&task, {in.x, in.dt_raw, in.z, static_cast<const float*>(y)}};
  for (int t = 0; t < std::min(s.chunk, len); ++t) prefetch.at(s, t);  // the first chunk; the others come ahead
  for (int t0 = 0; t0 < len; t0 += s.chunk) {
    for (int j = 0; j < task.num_blocks; ++j)
      forward_chunk(s, in, task.blocks[j], params[j], t0, std::min(t0 + s.chunk, len), y, checkpoints, w.blocks[j],
                    j == 0 ? &prefetch : nullptr);
  }
  for (int j = 0; j < task.num_blocks; ++j) {
    const Block& blk = task.blocks[j];
    for (int t = len; t < s.T; ++t) std::fill_n(y + lane_offset(s, blk, t), blk.count, 0.0f);
    if (hT)
      store_state(hT + (std::size_t(b) * s.I + blk.c0) * N, w.blocks[j].states + (len % 2) * N * kLanes, N, blk.count);
  }
}

// Recomputes the states of steps [t0, t1) from checkpoint h[t0 - 1]: w.states row i holds h[t0 - 1 + i].
void recompute_chunk(const Sizes& s, const ScanInputs<float>& in, const Block& blk, const ChannelParams& p,
                     const float* checkpoints, const float* dy, int t0, int t1, BlockScratch& w,
                     const RowPrefetch* prefetch) {
  const int N = s.N;
  const std::size_t k = std::size_t(blk.b) * s.num_chunks + t0 / s.chunk;
  const std::size_t rows = std::size_t(N) * kLanes;
  load_state(w.states, checkpoints + (k * s.I + blk.c0) * N, N, blk.count);
  prepare_chunk(s, in, blk, p, dy, t0, t1, w);
  for (int t = t0; t < t1; ++t) {
    if (prefetch) prefetch->at(s, t - s.chunk);  // the chunks go in reverse
    const int i = t - t0;
    const std::size_t bt = std::size_t(blk.b) * s.T + t;
    state_step<true, false>(N, w.A, load_vec(w.delta + i * kLanes), load_vec(w.delta_x + i * kLanes), in.Bm + bt * N,
                            nullptr, w.states + i * rows, w.states + (i + 1) * rows, w.decay + i * rows);
  }
}

// Lane j of the result is the sum of the 8 lanes of v[j] (a transpose-and-add tree: 21 shuffles and adds for 8
// sums instead of 8 separate horizontal sums).
Vec8 sum_lanes_of_each(const Vec8 (&v)[kLanes]) {
  // [a0+a1, a2+a3, b0+b1, b2+b3, a4+a5, a6+a7, b4+b5, b6+b7], as vhaddps.
  auto pair = [](Vec8 a, Vec8 b) {
    return __builtin_shufflevector(a, b, 0, 2, 8, 10, 4, 6, 12, 14) +
           __builtin_shufflevector(a, b, 1, 3, 9, 11, 5, 7, 13, 15);
  };
  // [v0, v1, v2, v3] summed over lanes 0-3, then the same over lanes 4-7.
  const Vec8 lo = pair(pair(v[0], v[1]), pair(v[2], v[3]));
  const Vec8 hi = pair(pair(v[4], v[5]), pair(v[6], v[7]));
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 8, 9, 10, 11) +
         __builtin_shufflevector(lo, hi, 4, 5, 6, 7, 12, 13, 14, 15);
}

// The sums over n of one reverse step.
struct ReverseSums {
  Vec8 ssm;     // Σ_n Cm[t, n] h[t, n]
  Vec8 dh_B;    // Σ_n dL/dh[t, n] Bm[t, n]         (dx = Δ dh_B, and x dh_B goes to dΔ)
  Vec8 dexp_A;  // Σ_n dL/d(Δ A[n]) A[n]           (the rest of dΔ)
};

// The reverse of state_step over the N state rows: reads dL/dh[t] (after the later steps) from dh, leaves
// dL/dh[t - 1] there, adds dL/dA to dA, and writes Bm's and Cm's gradients summed over the block's lanes to
// dBm_t[n] and dCm_t[n]. Rows go in groups of 8 so that the lane sums share one sum_lanes_of_each.
ReverseSums reverse_state_step(int N, Vec8 delta, Vec8 delta_x, Vec8 ds, const float* __restrict A,
                               const float* __restrict h_now, const float* __restrict h_prev,
                               const float* __restrict decay, const float* __restrict Bm_t,
                               const float* __restrict Cm_t, float* __restrict dh, float* __restrict dA,
                               float* __restrict dBm_t, float* __restrict dCm_t) {
  ReverseSums sums{};
  for (int n0 = 0; n0 < N; n0 += kLanes) {
    const int count = std::min(kLanes, N - n0);
    Vec8 dC_lanes[kLanes], dB_lanes[kLanes];
    for (int j = count; j < kLanes; ++j) dC_lanes[j] = dB_lanes[j] = Vec8{};
    for (int j = 0; j < count; ++j) {
      const int n = n0 + j, row = n * kLanes;
      const float bn = Bm_t[n], cn = Cm_t[n];
      const Vec8 h = load_vec(h_now + row);
      sums.ssm += h * cn;
      dC_lanes[j] = ds * h;
      const Vec8 dh_now = load_vec(dh + row) + ds * cn;  // dL/dh[t]
      dB_lanes[j] = dh_now * delta_x;
      sums.dh_B += dh_now * bn;
      const Vec8 a = load_vec(decay + row);
      const Vec8 d_exponent = dh_now * load_vec(h_prev + row) * a;  // dL/d(Δ A)
      sums.dexp_A += d_exponent * load_vec(A + row);
      store_vec(dA + row, load_vec(dA + row) + d_exponent * delta);
      store_vec(dh + row, dh_now * a);  // on to h[t - 1]
    }
    store_lanes(dCm_t + n0, sum_lanes_of_each(dC_lanes), count);
    store_lanes(dBm_t + n0, sum_lanes_of_each(dB_lanes), count);
  }
  return sums;
}

// Where one block's share of the cross-channel sums goes before the deterministic reduction.
struct BlockPartials {
  float* dBm;       // (T, N)  Σ over this block's channels
  float* dCm;       // (T, N)
  float* channels;  // dA_log (N, kLanes), then dD (kLanes), then ddt_bias (kLanes)
};

// The reverse recurrence over the recomputed chunk [t0, t1), last step first; the sums over n go to w.
void reverse_states(const Sizes& s, const ScanInputs<float>& in, const Block& blk, int t0, int t1, BlockScratch& w,
                    BlockPartials& part) {
  const int N = s.N;
  const std::size_t rows = std::size_t(N) * kLanes;
  for (int t = t1 - 1; t >= t0; --t) {
    const int i = t - t0, lanes = i * kLanes;
    const std::size_t bt = std::size_t(blk.b) * s.T + t;
    const ReverseSums sums =
        reverse_state_step(N, load_vec(w.delta + lanes), load_vec(w.delta_x + lanes), load_vec(w.ds + lanes), w.A,
                           w.states + (i + 1) * rows, w.states + i * rows, w.decay + i * rows, in.Bm + bt * N,
                           in.Cm + bt * N, w.dh, w.dA, part.dBm + std::size_t(t) * N, part.dCm + std::size_t(t) * N);
    store_vec(w.ssm + lanes, sums.ssm);
    store_vec(w.dh_B + lanes, sums.dh_B);
    store_vec(w.dexp_A + lanes, sums.dexp_A);
  }
}

// Accumulators of one block's backward that are not per time step.
struct BlockSums {
  Vec8 dD{}, ddt_bias{};
};

// The per-step gradients of [t0, t1) from the sums: dx, dz, ddt_raw, and the block's dD and ddt_bias sums (added
// last step first, like the chunks: the same order whatever the chunk size).
void finish_reverse(const Sizes& s, const ScanGrads<float>& g, const Block& blk, const ChannelParams& p, int t0, int t1,
                    const BlockScratch& w, BlockSums& block_sums) {
  for (int t = t1 - 1; t >= t0; --t) {
    const int i = (t - t0) * kLanes;
    const std::size_t at = lane_offset(s, blk, t);
    const Vec8 x = load_vec(w.x + i), ds = load_vec(w.ds + i), dh_B = load_vec(w.dh_B + i);
    const Vec8 ddt = (load_vec(w.dexp_A + i) + dh_B * x) * load_vec(w.dsoftplus + i);
    block_sums.dD += ds * x;
    block_sums.ddt_bias += ddt;
    add_lanes(g.dx + at, dh_B * load_vec(w.delta + i) + ds * p.D, blk.count);
    if (g.dz) add_lanes(g.dz + at, (load_vec(w.ssm + i) + p.D * x) * load_vec(w.scale + i), blk.count);
    add_lanes(g.ddt_raw + at, ddt, blk.count);
  }
}

// One block's results that are not per time step.
void finish_block(const Sizes& s, const Block& blk, const BlockSums& sums, const ScanGrads<float>& g, BlockScratch& w,
                  BlockPartials& part) {
  const int N = s.N;
  if (g.dh0) add_state(g.dh0 + (std::size_t(blk.b) * s.I + blk.c0) * N, w.dh, N, blk.count);
  // dA_log = dA * dA/dA_log = dA * A; dA itself when A was given.
  for (int i = 0; i < N * kLanes; ++i) part.channels[i] = g.dA_log ? w.dA[i] * w.A[i] : w.dA[i];
  store_vec(part.channels + N * kLanes, sums.dD);
  store_vec(part.channels + (N + 1) * kLanes, sums.ddt_bias);
}

void backward_task(const Sizes& s, const ScanInputs<float>& in, const Task& task, const float* checkpoints,
                   const float* dy, const float* dhT, const ScanGrads<float>& g, Scratch& w,
                   BlockPartials (&parts)[kBlocksPerTask]) {
  const int N = s.N, len = task.blocks[0].len;
  ChannelParams params[kBlocksPerTask];
  BlockSums sums[kBlocksPerTask];
  for (int j = 0; j < task.num_blocks; ++j) {
    const Block& blk = task.blocks[j];
    params[j] = load_channel_params(s, in, blk, w.blocks[j]);
    load_state(w.blocks[j].dh, dhT ? dhT + (std::size_t(blk.b) * s.I + blk.c0) * N : nullptr, N, blk.count);
    std::fill_n(w.blocks[j].dA, N * kLanes, 0.0f);
  }
  // Everything a chunk reads or adds to, fetched while the chunk after it (in time) is being worked on.
  const RowPrefetch prefetch{&task,
                             {in.x, in.dt_raw, in.z, dy, static_cast<const float*>(g.dx),
                              static_cast<const float*>(g.dz), static_cast<const float*>(g.ddt_raw)}};
  for (int k = (len - 1) / s.chunk; len > 0 && k >= 0; --k) {
    const int t0 = k * s.chunk, t1 = std::min(t0 + s.chunk, len);
    for (int j = 0; j < task.num_blocks; ++j) {
      const Block& blk = task.blocks[j];
      recompute_chunk(s, in, blk, params[j], checkpoints, dy, t0, t1, w.blocks[j], j == 0 ? &prefetch : nullptr);
      reverse_states(s, in, blk, t0, t1, w.blocks[j], parts[j]);
      finish_reverse(s, g, blk, params[j], t0, t1, w.blocks[j], sums[j]);
    }
  }
  for (int j = 0; j < task.num_blocks; ++j) finish_block(s, task.blocks[j], sums[j], g, w.blocks[j], parts[j]);
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
      : s_(s),
        wave_(wave),
        cross_(std::size_t(wave) * s.blocks * 2 * s.T * s.N),
        channels_(std::size_t(s.B) * s.blocks * channel_floats(s)) {}

  int wave() const { return wave_; }

  BlockPartials block(int b, int block) {
    float* cross = cross_.data() + (std::size_t(b % wave_) * s_.blocks + block) * 2 * s_.T * s_.N;
    float* channels = channels_.data() + (std::size_t(b) * s_.blocks + block) * channel_floats(s_);
    return {cross, cross + std::size_t(s_.T) * s_.N, channels};
  }

  // dBm, dCm of row (b, t) += Σ over blocks, in block order (8 states at a time).
  void add_cross_channel(int b, int t, const ScanGrads<float>& g) {
    const std::size_t row = (std::size_t(b) * s_.T + t) * s_.N, at = std::size_t(t) * s_.N;
    for (int n0 = 0; n0 < s_.N; n0 += kLanes) {
      const int count = std::min(kLanes, s_.N - n0);
      Vec8 dB{}, dC{};
      for (int block = 0; block < s_.blocks; ++block) {
        const BlockPartials p = this->block(b, block);
        dB += load_lanes(p.dBm + at + n0, count);
        dC += load_lanes(p.dCm + at + n0, count);
      }
      add_lanes(g.dBm + row + n0, dB, count);
      add_lanes(g.dCm + row + n0, dC, count);
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
    float* dA = g.dA_log ? g.dA_log : g.dA;
    for (int n = 0; n < N; ++n) dA[std::size_t(c) * N + n] += sum_over_sequences(n);
    if (g.dD) g.dD[c] += sum_over_sequences(N);
    if (g.ddt_bias) g.ddt_bias[c] += sum_over_sequences(N + 1);
  }

 private:
  static std::size_t channel_floats(const Sizes& s) { return std::size_t(s.N + 2) * kLanes; }

  Sizes s_;
  int wave_;
  AlignedBuffer cross_;
  AlignedBuffer channels_;
};

// Sequences per wave: a few tasks per thread, so that dynamic scheduling evens out unequal lengths.
int wave_size(const Sizes& s) {
  const int wanted_tasks = 4 * omp_get_max_threads();
  return std::clamp((wanted_tasks + s.tasks - 1) / std::max(s.tasks, 1), 1, std::max(s.B, 1));
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
  for (int task = 0; task < s.B * s.tasks; ++task) {
    forward_task(s, in, task_at(s, in, task / s.tasks, task % s.tasks), y, hT, checkpoints,
                 scratch[omp_get_thread_num()]);
  }
}

void selective_scan_backward(const ScanShape& shape, const ScanInputs<float>& in, const float* checkpoints,
                             const float* dy, const float* dhT, const ScanGrads<float>& grads, int chunk) {
  const Sizes s = validated_sizes(shape, in, chunk);
  check(checkpoints != nullptr || s.T == 0, "selective scan backward: no checkpoints from the forward");
  check(grads.dx && grads.ddt_raw && grads.dBm && grads.dCm && (in.A_log ? grads.dA_log : grads.dA) &&
            (!in.z || grads.dz),
        "selective scan backward: a required gradient buffer is missing");
  std::vector<Scratch> scratch = scratch_per_thread(s);
  GradientSlots slots(s, wave_size(s));
#pragma omp parallel
  {
    Scratch& w = scratch[omp_get_thread_num()];
    for (int b0 = 0; b0 < s.B; b0 += slots.wave()) {
      const int wave = std::min(slots.wave(), s.B - b0);
#pragma omp for schedule(dynamic)
      for (int task = 0; task < wave * s.tasks; ++task) {
        const Task t = task_at(s, in, b0 + task / s.tasks, task % s.tasks);
        BlockPartials parts[kBlocksPerTask];
        for (int j = 0; j < t.num_blocks; ++j) parts[j] = slots.block(t.blocks[j].b, t.index + j);
        backward_task(s, in, t, checkpoints, dy, dhT, grads, w, parts);
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
