#include "hax/layers/attention.h"

#include <algorithm>

#include "hax/ops/linear.h"
#include "hax/ops/rotary.h"
#include "hax/ops/window_attention.h"

namespace hax::layers {

Attention::Attention(const AttentionConfig& c, ParamStore& store, const std::string& p)
    : D_(c.hidden),
      H_(c.heads),
      P_(c.hidden / c.heads),
      window_(c.window),
      theta_(c.rope_theta),
      q_proj_(bind_tensor(store, p + "q_proj.weight")),
      k_proj_(bind_tensor(store, p + "k_proj.weight")),
      v_proj_(bind_tensor(store, p + "v_proj.weight")),
      o_proj_(bind_tensor(store, p + "o_proj.weight")) {
  check(H_ > 0 && D_ % H_ == 0 && P_ % 2 == 0, "attention: ", H_, " heads do not split ", D_,
        " channels into even head sizes");
}

void Attention::project(float* q, float* k, float* v, const float* u, const PackedBatch& batch,
                        int position0) const {
  const int M = batch.rows();
  ops::linear_forward(q, u, q_proj_.value, nullptr, M, D_, D_);
  ops::linear_forward(k, u, k_proj_.value, nullptr, M, D_, D_);
  ops::linear_forward(v, u, v_proj_.value, nullptr, M, D_, D_);
  for_each_sequence(batch, [&](int s) {
    const std::size_t at = rows_times(batch.start(s), D_);
    ops::rotary_forward(q + at, q + at, batch.length(s), H_, P_, position0, theta_);
    ops::rotary_forward(k + at, k + at, batch.length(s), H_, P_, position0, theta_);
  });
}

void Attention::forward(float* out, const float* u, const PackedBatch& batch, const SparseStep&, Arena& arena,
                        Saved& s) const {
  const int M = batch.rows();
  auto written = [&](int width, const char* what) {
    return arena.alloc_uninitialized(rows_times(M, width), what).data();
  };
  s.u = u;
  s.q = written(D_, "attention q");
  s.k = written(D_, "attention k");
  s.v = written(D_, "attention v");
  s.o = written(D_, "attention out");
  s.lse = written(H_, "attention log-sum-exp");
  project(s.q, s.k, s.v, u, batch, 0);
  for_each_sequence(batch, [&](int q) {
    const int T = batch.length(q);
    const std::size_t at = rows_times(batch.start(q), D_);
    const ops::WindowAttentionShape shape{T, T, 0, H_, P_, window_};
    ops::window_attention_forward(shape, s.o + at, s.lse + rows_times(batch.start(q), H_), s.q + at, s.k + at,
                                  s.v + at);
  });
  ops::linear_forward(out, s.o, o_proj_.value, nullptr, M, D_, D_);
}

void Attention::backward(float* du, const float* dout, const PackedBatch& batch, const Saved& s, float,
                         Arena& arena) const {
  const int M = batch.rows();
  const std::size_t mark = arena.mark();
  auto zeroed = [&](const char* what) { return arena.alloc(rows_times(M, D_), what).data(); };
  float* d_o = zeroed("attention d out");
  float* dq_rot = zeroed("attention d q (rotated)");
  float* dk_rot = zeroed("attention d k (rotated)");
  float* dv = zeroed("attention d v");
  ops::linear_backward(d_o, o_proj_.grad, nullptr, dout, s.o, o_proj_.value, M, D_, D_);
  float* dq = zeroed("attention d q");
  float* dk = zeroed("attention d k");
  for_each_sequence(batch, [&](int q) {
    const int T = batch.length(q);
    const std::size_t at = rows_times(batch.start(q), D_);
    const ops::WindowAttentionShape shape{T, T, 0, H_, P_, window_};
    ops::window_attention_backward(shape, dq_rot + at, dk_rot + at, dv + at, d_o + at, s.o + at,
                                   s.lse + rows_times(batch.start(q), H_), s.q + at, s.k + at, s.v + at);
    ops::rotary_backward(dq + at, dq_rot + at, T, H_, P_, 0, theta_);
    ops::rotary_backward(dk + at, dk_rot + at, T, H_, P_, 0, theta_);
  });
  ops::linear_backward(du, q_proj_.grad, nullptr, dq, s.u, q_proj_.value, M, D_, D_);
  ops::linear_backward(du, k_proj_.grad, nullptr, dk, s.u, k_proj_.value, M, D_, D_);
  ops::linear_backward(du, v_proj_.grad, nullptr, dv, s.u, v_proj_.value, M, D_, D_);
  arena.release(mark);
}

Mixer::ArenaNeeds Attention::arena_floats(const PackedBatch& batch, int) const {
  const std::size_t M = batch.rows(), pad = AlignedBuffer::kAlignFloats;
  return {M * (4 * std::size_t(D_) + H_) + 5 * pad, 6 * (M * D_ + pad)};
}

MixerState Attention::start_state() const { return {}; }

void Attention::forward_chunk(float* out, const float* u, int T, MixerState& state, Arena& arena) const {
  const std::size_t mark = arena.mark();
  const int cached = static_cast<int>(state.window_k.size() / D_);
  const int keys = cached + T;
  // Keys and values of the cached positions followed by the chunk's, so the chunk's queries see both.
  float* k = arena.alloc_uninitialized(rows_times(keys, D_), "attention chunk keys").data();
  float* v = arena.alloc_uninitialized(rows_times(keys, D_), "attention chunk values").data();
  float* q = arena.alloc_uninitialized(rows_times(T, D_), "attention chunk q").data();
  float* o = arena.alloc_uninitialized(rows_times(T, D_), "attention chunk out").data();
  std::copy(state.window_k.begin(), state.window_k.end(), k);
  std::copy(state.window_v.begin(), state.window_v.end(), v);
  project(q, k + rows_times(cached, D_), v + rows_times(cached, D_), u, PackedBatch::of_one(T), state.position);
  const ops::WindowAttentionShape shape{T, keys, cached, H_, P_, window_};
  ops::window_attention_forward(shape, o, nullptr, q, k, v);
  ops::linear_forward(out, o, o_proj_.value, nullptr, T, D_, D_);
  // Keep the last window - 1 positions: no later query can reach further back.
  const int keep = std::min(keys, window_ - 1);
  state.window_k.assign(k + rows_times(keys - keep, D_), k + rows_times(keys, D_));
  state.window_v.assign(v + rows_times(keys - keep, D_), v + rows_times(keys, D_));
  state.position += T;
  arena.release(mark);
}

std::size_t Attention::chunk_arena_floats(int T, int) const {
  const std::size_t pad = AlignedBuffer::kAlignFloats;
  return 2 * (rows_times(T + window_, D_) + pad) + 2 * (rows_times(T, D_) + pad);
}

}  // namespace hax::layers
