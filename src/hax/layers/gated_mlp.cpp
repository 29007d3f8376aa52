#include "hax/layers/gated_mlp.h"

#include "hax/ops/linear.h"
#include "hax/ops/swiglu.h"

namespace hax::layers {

GatedMlp::GatedMlp(const GatedMlpConfig& c, ParamStore& store, const std::string& p)
    : D_(c.hidden),
      F_(c.intermediate),
      gate_(bind_tensor(store, p + "gate_proj.weight")),
      up_(bind_tensor(store, p + "up_proj.weight")),
      down_(bind_tensor(store, p + "down_proj.weight")) {}

void GatedMlp::forward(float* out, const float* u, const PackedBatch& batch, const SparseStep&, Arena& arena,
                       Saved& s) const {
  const int M = batch.rows();
  auto written = [&](const char* what) { return arena.alloc_uninitialized(rows_times(M, F_), what).data(); };
  s.u = u;
  s.gate = written("mlp gate");
  s.up = written("mlp up");
  s.a = written("mlp swiglu");
  ops::linear_forward(s.gate, u, gate_.value, nullptr, M, D_, F_);
  ops::linear_forward(s.up, u, up_.value, nullptr, M, D_, F_);
  ops::swiglu_forward(s.a, s.gate, s.up, rows_times(M, F_));
  ops::linear_forward(out, s.a, down_.value, nullptr, M, F_, D_);
}

void GatedMlp::backward(float* du, const float* dout, const PackedBatch& batch, const Saved& s, float,
                        Arena& arena) const {
  const int M = batch.rows();
  const std::size_t mark = arena.mark();
  float* da = arena.alloc(rows_times(M, F_), "mlp d swiglu").data();
  float* dgate = arena.alloc(rows_times(M, F_), "mlp d gate").data();
  float* dup = arena.alloc(rows_times(M, F_), "mlp d up").data();
  ops::linear_backward(da, down_.grad, nullptr, dout, s.a, down_.value, M, F_, D_);
  ops::swiglu_backward(dgate, dup, da, s.gate, s.up, rows_times(M, F_));
  ops::linear_backward(du, gate_.grad, nullptr, dgate, s.u, gate_.value, M, D_, F_);
  ops::linear_backward(du, up_.grad, nullptr, dup, s.u, up_.value, M, D_, F_);
  arena.release(mark);
}

Mixer::ArenaNeeds GatedMlp::arena_floats(const PackedBatch& batch, int) const {
  const std::size_t pad = AlignedBuffer::kAlignFloats;
  return {3 * (rows_times(batch.rows(), F_) + pad), 3 * (rows_times(batch.rows(), F_) + pad)};
}

void GatedMlp::forward_chunk(float* out, const float* u, int T, MixerState&, Arena& arena) const {
  run_as_chunk<Saved>(T, arena, [&](const PackedBatch& one, Saved& saved) {
    forward(out, u, one, SparseStep{}, arena, saved);
  });
}

std::size_t GatedMlp::chunk_arena_floats(int T, int) const {
  return arena_floats(PackedBatch::of_one(T), 0).kept;
}

}  // namespace hax::layers
