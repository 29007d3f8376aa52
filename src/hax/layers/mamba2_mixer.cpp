#include "hax/layers/mamba2_mixer.h"

#include <algorithm>

#include "hax/layers/columns.h"
#include "hax/ops/activations.h"
#include "hax/ops/conv1d.h"
#include "hax/ops/gated_rmsnorm.h"
#include "hax/ops/linear.h"
#include "hax/ops/sparse/attention_gate.h"
#include "hax/ops/ssd.h"

namespace hax::layers {

Mamba2Mixer::Mamba2Mixer(const Mamba2MixerConfig& c, ParamStore& store, ParamStore& buffers, const std::string& p)
    : D_(c.hidden),
      H_(c.heads),
      P_(c.head_dim),
      G_(c.groups),
      N_(c.state),
      K_(c.conv_kernel),
      chunk_(c.ssd_chunk),
      eps_(c.norm_eps) {
  check(H_ > 0 && P_ > 0 && G_ > 0 && H_ % G_ == 0, "mamba2 mixer: ", G_, " groups do not divide ", H_, " heads");
  if (c.sparse) sparse_.emplace(*c.sparse, store, buffers, p);
  in_proj_w_ = bind_tensor(store, p + "in_proj.weight");
  in_proj_b_ = bind_tensor(store, p + "in_proj.bias", c.use_bias);
  conv_w_ = bind_tensor(store, p + "conv1d.weight");
  conv_b_ = bind_tensor(store, p + "conv1d.bias", c.use_conv_bias);
  dt_bias_ = bind_tensor(store, p + "dt_bias");
  a_log_ = bind_tensor(store, p + "A_log");
  d_skip_ = bind_tensor(store, p + "D");
  norm_w_ = bind_tensor(store, p + "norm.weight");
  out_proj_w_ = bind_tensor(store, p + "out_proj.weight");
  out_proj_b_ = bind_tensor(store, p + "out_proj.bias", c.use_bias);
}

namespace {

ops::SsdShape ssd_shape(int T, int H, int P, int G, int N, int chunk) { return {T, H, P, G, N, chunk}; }

// Streamed chunks of at most this many positions go through the SSD's recurrent form: its cost per position is one
// pass over the state, while the chunked kernel's fixed per-chunk work (Q x Q scratch per head) only pays off over
// many positions.
constexpr int kRecurrentRows = 16;

}  // namespace

std::size_t Mamba2Mixer::ssd_floats(const PackedBatch& batch) const {
  std::size_t floats = 0;
  for (int q = 0; q < batch.num_sequences(); ++q)
    floats += ops::ssd_saved_floats(ssd_shape(batch.length(q), H_, P_, G_, N_, chunk_));
  return floats;
}

std::vector<std::size_t> Mamba2Mixer::ssd_offsets(const PackedBatch& batch) const {
  std::vector<std::size_t> at{0};
  for (int q = 0; q < batch.num_sequences(); ++q)
    at.push_back(at.back() + ops::ssd_saved_floats(ssd_shape(batch.length(q), H_, P_, G_, N_, chunk_)));
  return at;
}

Mixer::ArenaNeeds Mamba2Mixer::arena_floats(const PackedBatch& batch, int padded_length) const {
  const std::size_t M = batch.rows(), S = batch.num_sequences(), I = inner(), C = conv_channels(), H = H_,
                    GN = std::size_t(G_) * N_;
  const std::size_t pad = AlignedBuffer::kAlignFloats;
  Mixer::ArenaNeeds needs;
  // z, xBC, conv out, x, B, C, dt, y, rstd, normed, and the SSD's saved states; plus the activated xBC, scratch
  // in the middle of the forward (counted as kept, so that a chunk's bound covers it too).
  needs.kept = M * (I + 2 * C + I + 2 * GN + H + I + 1 + I) + M * C + ssd_floats(batch) + 16 * pad;
  // d normed, dy, dz, dx, dB, dC, d dt, d xBC (activated, then pre-activation), and the per-sequence parameter blocks.
  needs.scratch = M * (4 * I + 2 * GN + H + 2 * C) + S * (C * (K_ + 1) + 3 * H) + 12 * pad;
  if (sparse_) {
    needs.kept += M * I + pad + sparse_->arena_floats(batch.rows(), batch.num_sequences(), batch.longest(),
                                                      padded_length);
    needs.scratch += M * I + pad;
  }
  return needs;
}

void Mamba2Mixer::forward(float* out, const float* u, const PackedBatch& batch, const SparseStep& step, Arena& arena,
                          Saved& s) const {
  forward_impl(out, u, batch, step, arena, s, nullptr);
}

MixerState Mamba2Mixer::start_state() const {
  MixerState state;
  state.conv_tail.assign(rows_times(K_ - 1, conv_channels()), 0.0f);
  state.h.assign(rows_times(H_, std::size_t(P_) * N_), 0.0f);
  if (sparse_) state.sparse = sparse_->start_state();
  return state;
}

void Mamba2Mixer::forward_chunk(float* out, const float* u, int T, MixerState& state, Arena& arena) const {
  run_as_chunk<Saved>(T, arena, [&](const PackedBatch& one, Saved& saved) {
    forward_impl(out, u, one, SparseStep{}, arena, saved, &state);
  });
}

std::size_t Mamba2Mixer::chunk_arena_floats(int T, int position) const {
  return arena_floats(PackedBatch::of_one(T), 0).kept + state_floats() + AlignedBuffer::kAlignFloats +
         (sparse_ ? sparse_->chunk_arena_floats(T, position) : 0);
}

void Mamba2Mixer::forward_impl(float* out, const float* u, const PackedBatch& batch, const SparseStep& step,
                               Arena& arena, Saved& s, MixerState* state) const {
  check(!state || batch.num_sequences() == 1, "a mixer state belongs to one sequence, not ", batch.num_sequences());
  const int M = batch.rows(), I = inner(), C = conv_channels(), GN = G_ * N_, H = H_;
  // Every element of these is written before it is read: no zero-fill.
  auto written = [&](std::size_t width, const char* what) {
    return arena.alloc_uninitialized(rows_times(M, width), what).data();
  };
  s.u = u;
  s.z = written(I, "mamba2 z");
  s.xbc = written(C, "mamba2 xBC");
  s.dt_raw = written(H, "mamba2 dt");
  s.xbc_conv = written(C, "mamba2 conv out");
  s.x = written(I, "mamba2 x");
  s.Bm = written(GN, "mamba2 B");
  s.Cm = written(GN, "mamba2 C");
  s.y = written(I, "mamba2 y");
  s.rstd = written(1, "mamba2 norm rstd");
  s.normed = written(I, "mamba2 normed");
  s.ssd = arena.alloc_uninitialized(ssd_floats(batch), "mamba2 ssd saved").data();

  // in_proj as three GEMMs over its row blocks, so z, xBC and dt come out contiguous.
  const float* b_in = in_proj_b_.value;
  ops::linear_forward(s.z, u, in_proj_w_.value, b_in, M, D_, I);
  ops::linear_forward(s.xbc, u, in_proj_w_.value + rows_times(I, D_), b_in ? b_in + I : nullptr, M, D_, C);
  ops::linear_forward(s.dt_raw, u, in_proj_w_.value + rows_times(I + C, D_), b_in ? b_in + I + C : nullptr, M, D_,
                      H);
  float* conv_tail = state ? state->conv_tail.data() : nullptr;
  for_each_sequence(batch, [&](int q) {
    const std::size_t at = rows_times(batch.start(q), C);
    ops::conv1d_causal_forward(s.xbc_conv + at, s.xbc + at, conv_w_.value, conv_b_.value, conv_tail, 1,
                               batch.length(q), C, K_);
  });
  if (state) ops::conv1d_advance_state(conv_tail, s.xbc, 1, M, C, K_);
  {
    // The activated xBC is scratch: only its split x | B | C is kept.
    const std::size_t mark = arena.mark();
    float* act = written(C, "mamba2 activated xBC");
    ops::silu_forward(act, s.xbc_conv, rows_times(M, C));
    split_columns(act, M, {{s.x, I}, {s.Bm, GN}, {s.Cm, GN}});
    arena.release(mark);
  }

  if (state && M <= kRecurrentRows) {
    // A decoded token (or a few): the recurrent form updates the state in place.
    const ops::SsdInputs<float> in{s.x, s.dt_raw, dt_bias_.value, a_log_.value, s.Bm, s.Cm, d_skip_.value, nullptr};
    ops::ssd_step_forward(ssd_shape(M, H_, P_, G_, N_, chunk_), in, s.y, state->h.data());
  } else {
    const std::vector<std::size_t> ssd_at = ssd_offsets(batch);
    float* hT = state ? arena.alloc(rows_times(H, std::size_t(P_) * N_), "mamba2 final state").data() : nullptr;
    for_each_sequence(batch, [&](int q) {
      const ops::SsdShape shape = ssd_shape(batch.length(q), H_, P_, G_, N_, chunk_);
      const std::size_t at = rows_times(batch.start(q), I), at_h = rows_times(batch.start(q), H),
                        at_n = rows_times(batch.start(q), GN);
      const ops::SsdInputs<float> in{s.x + at,   s.dt_raw + at_h, dt_bias_.value, a_log_.value,
                                     s.Bm + at_n, s.Cm + at_n,    d_skip_.value,  state ? state->h.data() : nullptr};
      ops::ssd_forward(shape, in, s.y + at, hT, s.ssd + ssd_at[q]);
    });
    if (state) std::copy_n(hT, state->h.size(), state->h.data());
  }
  if (sparse_) {
    s.attn = arena.alloc(rows_times(M, I), "sparse attention out").data();
    if (state)
      sparse_->forward_chunk(s.attn, s.x, M, *state->sparse, arena);
    else
      sparse_->forward(s.attn, s.x, batch, step, arena, s.sparse);
    ops::sparse::attention_gate_forward(s.y, s.attn, sparse_->E(), nullptr, M, I);  // no gate before the norm
  }
  ops::gated_rmsnorm_forward(s.normed, s.rstd, s.y, s.z, norm_w_.value, M, I, eps_);
  ops::linear_forward(out, s.normed, out_proj_w_.value, out_proj_b_.value, M, I, D_);
}

void Mamba2Mixer::backward(float* du, const float* dout, const PackedBatch& batch, const Saved& s, float gate_weight,
                           Arena& arena) const {
  const int M = batch.rows(), I = inner(), C = conv_channels(), GN = G_ * N_, H = H_, K = K_;
  const std::size_t mark = arena.mark();
  auto zeroed = [&](std::size_t width, const char* what) { return arena.alloc(rows_times(M, width), what).data(); };
  float* dnormed = zeroed(I, "mamba2 d normed");
  ops::linear_backward(dnormed, out_proj_w_.grad, out_proj_b_.grad, dout, s.normed, out_proj_w_.value, M, I, D_);
  float* dy = zeroed(I, "mamba2 dy");
  float* dz = zeroed(I, "mamba2 dz");
  ops::gated_rmsnorm_backward(dy, dz, norm_w_.grad, dnormed, s.y, s.z, norm_w_.value, s.rstd, M, I);
  float* dattn = nullptr;
  if (sparse_) {
    dattn = zeroed(I, "mamba2 d attn");
    ops::sparse::attention_gate_backward(dattn, sparse_->E_grad(), nullptr, dy, s.attn, sparse_->E(), nullptr, M, I);
  }

  float* dx = zeroed(I, "mamba2 dx");
  float* dB = zeroed(GN, "mamba2 dB");
  float* dC = zeroed(GN, "mamba2 dC");
  float* ddt = zeroed(H, "mamba2 d dt");
  // The per-head and per-channel parameters get one private gradient block per sequence, summed in sequence order
  // afterwards, so that sequences run in parallel and the result is the same bits every run.
  const std::size_t shared_width = std::size_t(C) * (K + 1) + 3 * std::size_t(H);
  const int S = batch.num_sequences();
  float* shared = arena.alloc(shared_width * S, "mamba2 per-sequence parameter gradients").data();
  const std::vector<std::size_t> ssd_at = ssd_offsets(batch);
  for_each_sequence(batch, [&](int q) {
    const ops::SsdShape shape = ssd_shape(batch.length(q), H_, P_, G_, N_, chunk_);
    const std::size_t at = rows_times(batch.start(q), I), at_h = rows_times(batch.start(q), H),
                      at_n = rows_times(batch.start(q), GN);
    float* mine = shared + shared_width * q;  // [conv w (C*K) | conv b (C) | dt bias (H) | A_log (H) | D (H)]
    float* tail = mine + std::size_t(C) * (K + 1);
    const ops::SsdInputs<float> in{s.x + at,    s.dt_raw + at_h, dt_bias_.value, a_log_.value,
                                   s.Bm + at_n, s.Cm + at_n,     d_skip_.value,  nullptr};
    const ops::SsdGrads<float> g{dx + at, ddt + at_h, tail, tail + H, dB + at_n, dC + at_n, tail + 2 * H, nullptr};
    ops::ssd_backward(shape, in, s.ssd + ssd_at[q], dy + at, nullptr, g);
  });
  if (sparse_) sparse_->backward(dx, dattn, batch, s.sparse, gate_weight, arena);

  // d xBC after the SiLU is [dx | dB | dC]; then through the SiLU and the conv.
  float* dact = zeroed(C, "mamba2 d activated xBC");
  join_columns(dact, M, 0, {{dx, I}, {dB, GN}, {dC, GN}});
  float* dconv = zeroed(C, "mamba2 d conv out");
  ops::silu_backward(dconv, dact, s.xbc_conv, rows_times(M, C));
  float* dxbc = dact;  // dead once the SiLU gradient is taken
  std::fill(dxbc, dxbc + rows_times(M, C), 0.0f);
  for_each_sequence(batch, [&](int q) {
    const std::size_t at = rows_times(batch.start(q), C);
    float* mine = shared + shared_width * q;
    ops::conv1d_causal_backward(dxbc + at, mine, conv_b_.grad ? mine + std::size_t(C) * K : nullptr, nullptr,
                                dconv + at, s.xbc + at, conv_w_.value, nullptr, 1, batch.length(q), C, K);
  });
  add_sequence_blocks(shared, S, shared_width,
                      {{conv_w_.grad, std::size_t(C) * K}, {conv_b_.grad, std::size_t(C)}, {dt_bias_.grad, std::size_t(H)},
                       {a_log_.grad, std::size_t(H)}, {d_skip_.grad, std::size_t(H)}});

  float* b_grad = in_proj_b_.grad;
  ops::linear_backward(du, in_proj_w_.grad, b_grad, dz, s.u, in_proj_w_.value, M, D_, I);
  ops::linear_backward(du, in_proj_w_.grad + rows_times(I, D_), b_grad ? b_grad + I : nullptr, dxbc, s.u,
                       in_proj_w_.value + rows_times(I, D_), M, D_, C);
  ops::linear_backward(du, in_proj_w_.grad + rows_times(I + C, D_), b_grad ? b_grad + I + C : nullptr, ddt, s.u,
                       in_proj_w_.value + rows_times(I + C, D_), M, D_, H);
  arena.release(mark);
}

}  // namespace hax::layers
