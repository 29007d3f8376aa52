#include "hax/layers/mamba_mixer.h"

#include <algorithm>
#include <initializer_list>
#include <utility>
#include <vector>

#include "hax/engine/blas.h"
#include "hax/ops/activations.h"
#include "hax/ops/conv1d.h"
#include "hax/ops/linear.h"
#include "hax/ops/parallel.h"
#include "hax/ops/selective_scan.h"
#include "hax/layers/columns.h"
#include "hax/ops/sparse/attention_gate.h"

namespace hax::layers {
namespace {

ops::ScanShape one_sequence(int length, int I, int N) { return {1, length, I, N}; }

}  // namespace

MambaMixer::MambaMixer(const MambaMixerConfig& c, ParamStore& store, ParamStore& buffers, const std::string& p)
    : D_(c.hidden), I_(c.inner), N_(c.state), R_(c.dt_rank), K_(c.conv_kernel) {
  if (c.sparse) sparse_.emplace(*c.sparse, store, buffers, p);
  in_proj_w_ = bind_tensor(store, p + "in_proj.weight");
  in_proj_b_ = bind_tensor(store, p + "in_proj.bias", c.use_bias);
  conv_w_ = bind_tensor(store, p + "conv1d.weight");
  conv_b_ = bind_tensor(store, p + "conv1d.bias", c.use_conv_bias);
  x_proj_w_ = bind_tensor(store, p + "x_proj.weight");
  dt_proj_w_ = bind_tensor(store, p + "dt_proj.weight");
  dt_proj_b_ = bind_tensor(store, p + "dt_proj.bias");
  a_log_ = bind_tensor(store, p + "A_log");
  d_skip_ = bind_tensor(store, p + "D");
  out_proj_w_ = bind_tensor(store, p + "out_proj.weight");
  out_proj_b_ = bind_tensor(store, p + "out_proj.bias", c.use_bias);
}

std::size_t MambaMixer::checkpoint_floats(const PackedBatch& batch) const {
  std::size_t floats = 0;
  for (int q = 0; q < batch.num_sequences(); ++q) floats += ops::scan_checkpoint_floats(one_sequence(batch.length(q), I_, N_));
  return floats;
}

std::vector<std::size_t> MambaMixer::checkpoint_offsets(const PackedBatch& batch) const {
  std::vector<std::size_t> at{0};
  for (int q = 0; q < batch.num_sequences(); ++q)
    at.push_back(at.back() + ops::scan_checkpoint_floats(one_sequence(batch.length(q), I_, N_)));
  return at;
}

Mixer::ArenaNeeds MambaMixer::arena_floats(const PackedBatch& batch, int padded_length) const {
  const std::size_t M = batch.rows(), S = batch.num_sequences(), I = I_, N = N_, R = R_, K = K_;
  const std::size_t pad = AlignedBuffer::kAlignFloats;  // alignment slack per block
  Mixer::ArenaNeeds needs;
  // x, z, conv out, xc, dt_raw, y (I each), dtl, B, C, the x_proj scratch, and the scan checkpoints.
  needs.kept = M * (6 * I + 2 * (R + 2 * N)) + checkpoint_floats(batch) + 16 * pad;
  needs.scratch = M * (4 * I + 2 * N + (R + 2 * N)) + S * I * (K + 3 + N) + 8 * pad;
  if (sparse_) {
    // The attention output kept for backward, its gradient, and the branch's own needs.
    needs.kept += M * I + pad + sparse_->arena_floats(batch.rows(), batch.num_sequences(), batch.longest(),
                                                      padded_length);
    needs.scratch += M * I + pad;
  }
  return needs;
}

std::size_t MambaMixer::chunk_arena_floats(int T, int position) const {
  const Mixer::ArenaNeeds needs = arena_floats(PackedBatch::of_one(T), 0);
  // Plus the final scan state, and the sparse branch's chunk scratch (its attention weights grow with the position
  // for `full` and `dilated`).
  return needs.kept + std::size_t(I_) * N_ + AlignedBuffer::kAlignFloats +
         (sparse_ ? sparse_->chunk_arena_floats(T, position) : 0);
}

void MambaMixer::forward(float* out, const float* u, const PackedBatch& batch, const SparseStep& step, Arena& arena,
                         Saved& s) const {
  forward_impl(out, u, batch, step, arena, s, nullptr);
}

MixerState MambaMixer::start_state() const {
  MixerState state;
  state.conv_tail.assign(rows_times(K_ - 1, I_), 0.0f);
  state.h.assign(rows_times(I_, N_), 0.0f);
  if (sparse_) state.sparse = sparse_->start_state();
  return state;
}

void MambaMixer::forward_chunk(float* out, const float* u, int T, MixerState& state, Arena& arena) const {
  if (T == 1) return forward_token(out, u, state, arena);
  forward_chunk_as_batch(out, u, T, state, arena);
}

void MambaMixer::forward_chunk_as_batch(float* out, const float* u, int T, MixerState& state, Arena& arena) const {
  run_as_chunk<Saved>(T, arena, [&](const PackedBatch& one, Saved& saved) {
    forward_impl(out, u, one, SparseStep{}, arena, saved, &state);
  });
}

void MambaMixer::forward_impl(float* out, const float* u, const PackedBatch& batch, const SparseStep& step,
                              Arena& arena, Saved& s, MixerState* state) const {
  check(!state || batch.num_sequences() == 1, "a mixer state belongs to one sequence, not ", batch.num_sequences());
  const int M = batch.rows(), I = I_, N = N_, R = R_;
  // Every element of these is written before it is read (GEMM outputs with beta 0, elementwise and conv results,
  // every step of every sequence's scan): no zero-fill.
  auto written = [&](int width, const char* what) {
    return arena.alloc_uninitialized(rows_times(M, width), what).data();
  };
  s.u = u;
  s.x = written(I, "mamba x");
  s.z = written(I, "mamba z");
  s.x_conv = written(I, "mamba conv out");
  s.xc = written(I, "mamba xc");
  s.dtl = written(R, "mamba dt low-rank");
  s.Bm = written(N, "mamba B");
  s.Cm = written(N, "mamba C");
  s.dt_raw = written(I, "mamba dt");
  s.y = written(I, "mamba y");
  s.checkpoints = arena.alloc_uninitialized(checkpoint_floats(batch), "mamba scan checkpoints").data();

  // in_proj as two GEMMs over its row halves, so x and z come out contiguous.
  const float* b_in = in_proj_b_.value;
  ops::linear_forward(s.x, u, in_proj_w_.value, b_in, M, D_, I);
  ops::linear_forward(s.z, u, in_proj_w_.value + rows_times(I, D_), b_in ? b_in + I : nullptr, M, D_, I);
  float* conv_tail = state ? state->conv_tail.data() : nullptr;
  for_each_sequence(batch, [&](int q) {
    const std::size_t at = rows_times(batch.start(q), I);
    ops::conv1d_causal_forward(s.x_conv + at, s.x + at, conv_w_.value, conv_b_.value, conv_tail, 1, batch.length(q), I,
                               K_);
  });
  if (state) ops::conv1d_advance_state(conv_tail, s.x, 1, M, I, K_);
  ops::silu_forward(s.xc, s.x_conv, rows_times(M, I));
  // x_proj as one GEMM into [dtl | B | C] rows (M, R + 2N): three skinny GEMMs would each pack all of xc. The
  // fused rows are scratch (released at once), split into the contiguous dtl, B, C that dt_proj and the scan read.
  const std::size_t scratch_mark = arena.mark();
  float* dbc = written(R + 2 * N, "mamba x_proj out");
  ops::linear_forward(dbc, s.xc, x_proj_w_.value, nullptr, M, I, R + 2 * N);
  split_columns(dbc, M, {{s.dtl, R}, {s.Bm, N}, {s.Cm, N}});
  arena.release(scratch_mark);
  ops::linear_forward(s.dt_raw, s.dtl, dt_proj_w_.value, nullptr, M, R, I);

  const std::vector<std::size_t> checkpoint_at = checkpoint_offsets(batch);
  // With a state the scan starts from its h and writes the final state to hT, then copied back (h0 and hT may not
  // alias).
  float* hT = state ? arena.alloc(rows_times(I, N), "mamba final scan state").data() : nullptr;
  for_each_sequence(batch, [&](int q) {
    const ops::ScanShape shape = one_sequence(batch.length(q), I, N);
    const std::size_t at = rows_times(batch.start(q), I), at_n = rows_times(batch.start(q), N);
    const ops::ScanInputs<float> in{s.xc + at, s.dt_raw + at, dt_proj_b_.value, a_log_.value, s.Bm + at_n,
                                    s.Cm + at_n, d_skip_.value, s.z + at, state ? state->h.data() : nullptr};
    ops::selective_scan_forward(shape, in, s.y + at, hT, s.checkpoints + checkpoint_at[q]);
  });
  if (state) std::copy_n(hT, rows_times(I, N), state->h.data());
  if (sparse_) {
    s.attn = arena.alloc(rows_times(M, I), "sparse attention out").data();
    if (state)
      sparse_->forward_chunk(s.attn, s.xc, M, *state->sparse, arena);
    else
      sparse_->forward(s.attn, s.xc, batch, step, arena, s.sparse);
    ops::sparse::attention_gate_forward(s.y, s.attn, sparse_->E(), s.z, M, I);
  }
  ops::linear_forward(out, s.y, out_proj_w_.value, out_proj_b_.value, M, I, D_);
}

void MambaMixer::backward(float* du, const float* dout, const PackedBatch& batch, const Saved& s, float gate_weight,
                          Arena& arena) const {
  const int M = batch.rows(), I = I_, N = N_, R = R_;
  const std::size_t mark = arena.mark();
  auto alloc = [&](int width, const char* what) { return arena.alloc(rows_times(M, width), what).data(); };
  float* dy = alloc(I, "mamba dy");
  float* dxc = alloc(I, "mamba dxc");
  float* ddt_raw = alloc(I, "mamba d dt");
  float* dBm = alloc(N, "mamba dB");
  float* dCm = alloc(N, "mamba dC");
  float* dz = alloc(I, "mamba dz");

  ops::linear_backward(dy, out_proj_w_.grad, out_proj_b_.grad, dout, s.y, out_proj_w_.value, M, I, D_);
  float* dattn = nullptr;
  if (sparse_) {
    dattn = alloc(I, "mamba d attn");
    ops::sparse::attention_gate_backward(dattn, sparse_->E_grad(), dz, dy, s.attn, sparse_->E(), s.z, M, I);
  }
  // The per-channel parameters (dt bias, A_log, D, conv taps and bias) get one private gradient block per sequence,
  // summed in sequence order afterwards: sequences run in parallel, and the result is the same bits every run.
  const std::size_t shared_width = std::size_t(I) * (K_ + 3 + N);
  const int S = batch.num_sequences();
  float* shared = arena.alloc(shared_width * S, "mamba per-sequence parameter gradients").data();
  const std::vector<std::size_t> checkpoint_at = checkpoint_offsets(batch);
  for_each_sequence(batch, [&](int q) {
    const ops::ScanShape shape = one_sequence(batch.length(q), I, N);
    const std::size_t at = rows_times(batch.start(q), I), at_n = rows_times(batch.start(q), N);
    float* mine = shared + shared_width * q;  // [conv w (I*K) | conv b (I) | dt bias (I) | D (I) | A_log (I*N)]
    const ops::ScanInputs<float> in{s.xc + at, s.dt_raw + at, dt_proj_b_.value, a_log_.value, s.Bm + at_n,
                                    s.Cm + at_n, d_skip_.value, s.z + at};
    const ops::ScanGrads<float> g{dxc + at, ddt_raw + at, mine + I * (K_ + 1), mine + I * (K_ + 3), dBm + at_n,
                                  dCm + at_n, mine + I * (K_ + 2), dz + at};
    ops::selective_scan_backward(shape, in, s.checkpoints + checkpoint_at[q], dy + at, nullptr, g);
  });
  if (sparse_) sparse_->backward(dxc, dattn, batch, s.sparse, gate_weight, arena);

  // x_proj's backward as one GEMM for dxc and one for its weight gradient, on the assembled d[dtl | B | C]
  // (M, R + 2N): ddtl (M, R) = ddt_raw W_dt goes straight into its first R columns.
  const int P = R + 2 * N;
  float* dproj = arena.alloc_uninitialized(rows_times(M, P), "mamba d x_proj out").data();  // every element set
  gemm(Trans::No, Trans::No, M, R, I, 1.0f, ddt_raw, I, dt_proj_w_.value, R, 0.0f, dproj, P);
  ops::linear_backward(nullptr, dt_proj_w_.grad, nullptr, ddt_raw, s.dtl, dt_proj_w_.value, M, R, I);
  join_columns(dproj, M, R, {{dBm, N}, {dCm, N}});
  ops::linear_backward(dxc, x_proj_w_.grad, nullptr, dproj, s.xc, x_proj_w_.value, M, I, P);

  float* dx_conv = dy;  // dy is dead after the scan: reuse its rows for d(conv output)
  std::fill(dx_conv, dx_conv + rows_times(M, I), 0.0f);
  ops::silu_backward(dx_conv, dxc, s.x_conv, rows_times(M, I));
  float* dx = dxc;  // likewise dxc is dead once the SiLU gradient is taken
  std::fill(dx, dx + rows_times(M, I), 0.0f);
  for_each_sequence(batch, [&](int q) {
    const std::size_t at = rows_times(batch.start(q), I);
    float* mine = shared + shared_width * q;
    ops::conv1d_causal_backward(dx + at, mine, conv_b_.grad ? mine + std::size_t(I) * K_ : nullptr, nullptr,
                                dx_conv + at, s.x + at, conv_w_.value, nullptr, 1, batch.length(q), I, K_);
  });
  add_sequence_blocks(shared, S, shared_width,
                      {{conv_w_.grad, std::size_t(I) * K_}, {conv_b_.grad, std::size_t(I)},
                       {dt_proj_b_.grad, std::size_t(I)}, {d_skip_.grad, std::size_t(I)},
                       {a_log_.grad, std::size_t(I) * N}});
  float* b_grad = in_proj_b_.grad;
  ops::linear_backward(du, in_proj_w_.grad, b_grad, dx, s.u, in_proj_w_.value, M, D_, I);
  ops::linear_backward(du, in_proj_w_.grad + rows_times(I, D_), b_grad ? b_grad + I : nullptr, dz, s.u,
                       in_proj_w_.value + rows_times(I, D_), M, D_, I);
  arena.release(mark);
}

}  // namespace hax::layers
