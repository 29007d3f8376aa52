// The unit a model is made of: a layer that maps the (normed) residual stream (M, D) to an update (M, D) of the same
// shape. A model is a list of residual blocks h += mixer(norm(h)) (models/model.h); each kind of mixer (Mamba,
// Mamba2, sliding-window attention, the gated MLP) is a forward/backward pair in its own files with its own small
// config, and this interface lets the model run any list of them.
//
// The concrete mixers are const forward/backward pairs over an explicit `Saved` struct of arena pointers (the
// activations their backward needs); MixerOf<Impl> adapts one to this interface and keeps its Saved between the two
// calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "hax/engine/arena.h"
#include "hax/layers/mixer_state.h"
#include "hax/layers/packed_batch.h"
#include "hax/layers/sparse_branch.h"

namespace hax::layers {

class Mixer {
 public:
  virtual ~Mixer() = default;

  // out (M, D) = mixer(u (M, D)). Keeps what backward needs in the arena (u itself is the caller's and must live
  // until backward). `step` matters only to mixers with a sparse branch.
  virtual void forward(float* out, const float* u, const PackedBatch& batch, const SparseStep& step,
                       Arena& arena) = 0;
  // du (M, D) += d mixer / d u · dout, parameter gradients accumulate into their store; the sparse key scorer's
  // gradient is gate_weight times that of the gate loss. Scratch is released before returning.
  virtual void backward(float* du, const float* dout, const PackedBatch& batch, float gate_weight, Arena& arena) = 0;
  // Floats of arena that forward keeps (`kept`) and that backward needs on top of everything kept (`scratch`), upper
  // bounds for `batch` (padded to padded_length under `paper` semantics).
  struct ArenaNeeds {
    std::size_t kept = 0, scratch = 0;
  };
  virtual ArenaNeeds arena_floats(const PackedBatch& batch, int padded_length) const = 0;

  // Streaming inference (layers/mixer_state.h): the state of an empty sequence (hax::Error where this mixer cannot
  // stream), and out (T, D) at the next T positions, what forward() gives there over the whole sequence. Advances
  // the state; releases its arena scratch (chunk_arena_floats) before returning.
  virtual MixerState start_state() const = 0;
  virtual void forward_chunk(float* out, const float* u, int T, MixerState& state, Arena& arena) const = 0;
  virtual std::size_t chunk_arena_floats(int T, int position) const = 0;

  // The sparse branch, when the mixer has one, and what its last training forward computed.
  virtual const SparseBranch* sparse() const { return nullptr; }
  virtual double gate_loss() const { return 0; }
  virtual const std::vector<std::vector<std::int32_t>>* gate_candidates() const { return nullptr; }
};

// A streaming call's chunk of T rows run as a batch of one sequence: fn(batch, saved) with a fresh Saved; everything
// fn allocates in the arena is released afterwards (a chunk keeps nothing for a backward).
template <class Saved, class Fn>
void run_as_chunk(int T, Arena& arena, Fn&& fn) {
  const PackedBatch one = PackedBatch::of_one(T);
  Saved saved;
  const std::size_t mark = arena.mark();
  fn(one, saved);
  arena.release(mark);
}

// Impl: forward(out, u, batch, step, arena, saved) const, backward(du, dout, batch, saved, gate_weight, arena) const,
// arena_floats, start_state, forward_chunk, chunk_arena_floats, and a `Saved` type (with a SparseBranch::Saved
// `sparse` member when Impl has a sparse() accessor).
template <class Impl>
class MixerOf final : public Mixer {
 public:
  template <class... Args>
  explicit MixerOf(Args&&... args) : impl_(std::forward<Args>(args)...) {}

  void forward(float* out, const float* u, const PackedBatch& batch, const SparseStep& step, Arena& arena) override {
    saved_ = {};
    impl_.forward(out, u, batch, step, arena, saved_);
  }
  void backward(float* du, const float* dout, const PackedBatch& batch, float gate_weight, Arena& arena) override {
    impl_.backward(du, dout, batch, saved_, gate_weight, arena);
  }
  ArenaNeeds arena_floats(const PackedBatch& batch, int padded_length) const override {
    return impl_.arena_floats(batch, padded_length);
  }
  MixerState start_state() const override { return impl_.start_state(); }
  void forward_chunk(float* out, const float* u, int T, MixerState& state, Arena& arena) const override {
    impl_.forward_chunk(out, u, T, state, arena);
  }
  std::size_t chunk_arena_floats(int T, int position) const override { return impl_.chunk_arena_floats(T, position); }

  const SparseBranch* sparse() const override {
    if constexpr (requires { impl_.sparse(); })
      return impl_.sparse();
    else
      return nullptr;
  }
  double gate_loss() const override {
    if constexpr (requires { saved_.sparse; })
      return saved_.sparse.gate_loss;
    else
      return 0;
  }
  const std::vector<std::vector<std::int32_t>>* gate_candidates() const override {
    if constexpr (requires { saved_.sparse; })
      return &saved_.sparse.candidates;
    else
      return nullptr;
  }

 private:
  Impl impl_;
  typename Impl::Saved saved_;
};

}  // namespace hax::layers
