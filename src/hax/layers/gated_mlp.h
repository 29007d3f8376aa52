// Samba's channel mixer, the SwiGLU MLP (fla GatedMLP, reference.md §5.3), on M rows:
//   gate = u W_gate^T, up = u W_up^T     (M, F) each
//   a    = silu(gate) * up               (M, F)
//   out  = a W_down^T                    (M, D)
// Row-wise: it has no state across positions, so streaming is the same call on the chunk's rows.
#pragma once

#include <string>

#include "hax/engine/arena.h"
#include "hax/engine/params.h"
#include "hax/layers/bound_tensor.h"
#include "hax/layers/mixer.h"

namespace hax::layers {

struct GatedMlpConfig {
  int hidden = 0;        // D
  int intermediate = 0;  // F
};

class GatedMlp {
 public:
  // Binds "<prefix>gate_proj.weight" (F, D), "<prefix>up_proj.weight" (F, D), "<prefix>down_proj.weight" (D, F).
  GatedMlp(const GatedMlpConfig& config, ParamStore& store, const std::string& prefix);

  struct Saved {
    const float* u = nullptr;  // (M, D), the caller's
    float *gate = nullptr, *up = nullptr, *a = nullptr;  // (M, F) each
  };

  void forward(float* out, const float* u, const PackedBatch& batch, const SparseStep& step, Arena& arena,
               Saved& saved) const;
  void backward(float* du, const float* dout, const PackedBatch& batch, const Saved& saved, float gate_weight,
                Arena& arena) const;
  Mixer::ArenaNeeds arena_floats(const PackedBatch& batch, int padded_length) const;

  MixerState start_state() const { return {}; }
  void forward_chunk(float* out, const float* u, int T, MixerState& state, Arena& arena) const;
  std::size_t chunk_arena_floats(int T, int position) const;

 private:
  int D_, F_;
  BoundTensor gate_, up_, down_;
};

}  // namespace hax::layers
