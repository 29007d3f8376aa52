// Samba's sequence mixer on its attention layers (fla Attention, reference.md §5.3): multi-head causal attention over
// a sliding window, with rotary position embeddings (GPT-NeoX layout), on a packed batch of M rows:
//   q, k, v = u W_q^T, u W_k^T, u W_v^T        (M, H*P) each, no biases
//   q, k    = rotary(q), rotary(k)             positions 0.. within each sequence
//   o       = softmax(q k^T / sqrt(P)) v       per head, each query over the `window` keys up to itself
//   out     = o W_o^T                          (M, D)
// Time and memory O(M * window), never T x T (ops/window_attention.h). Streaming keeps the last window - 1 keys and
// values: the state is O(window), whatever the length.
#pragma once

#include <string>

#include "hax/engine/arena.h"
#include "hax/engine/params.h"
#include "hax/layers/bound_tensor.h"
#include "hax/layers/mixer.h"

namespace hax::layers {

struct AttentionConfig {
  int hidden = 0;       // D = H * P
  int heads = 0;        // H
  int window = 64;      // keys per query, itself included
  float rope_theta = 10000.0f;
};

class Attention {
 public:
  // Binds "<prefix>q_proj.weight", k_proj, v_proj, o_proj (D, D) each.
  Attention(const AttentionConfig& config, ParamStore& store, const std::string& prefix);

  struct Saved {
    const float* u = nullptr;                                   // (M, D), the caller's
    float *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;  // (M, D) each; q and k rotated
    float* lse = nullptr;                                       // (M, H) log-sum-exp per query and head
  };

  void forward(float* out, const float* u, const PackedBatch& batch, const SparseStep& step, Arena& arena,
               Saved& saved) const;
  void backward(float* du, const float* dout, const PackedBatch& batch, const Saved& saved, float gate_weight,
                Arena& arena) const;
  Mixer::ArenaNeeds arena_floats(const PackedBatch& batch, int padded_length) const;

  MixerState start_state() const;
  void forward_chunk(float* out, const float* u, int T, MixerState& state, Arena& arena) const;
  std::size_t chunk_arena_floats(int T, int position) const;

 private:
  // q, k, v (M, D) of the rows u, rotated from position0 when the batch is one sequence continuing a stream.
  void project(float* q, float* k, float* v, const float* u, const PackedBatch& batch, int position0) const;

  int D_, H_, P_, window_;
  float theta_;
  BoundTensor q_proj_, k_proj_, v_proj_, o_proj_;
};

}  // namespace hax::layers
