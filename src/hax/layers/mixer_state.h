// What one mixer carries from a sequence's past into its next chunk during streaming inference (`causal` only):
// with it, a prefill in chunks of any size and token-by-token decoding give the outputs of the parallel forward
// over the whole sequence (shared/spec/semantics.md, property 3). Plain values: copying a state forks the sequence.
#pragma once

#include <optional>
#include <vector>

#include "hax/ops/sparse/sparse_keys.h"

namespace hax::layers {

// The sparse branch's memory. Attention may pick any earlier key, so K and V of every past position are kept (a KV
// cache, O(t) memory); everything else is O(1) in the length: the key lists' streaming state and the running sum
// of Q, which is all the `causal` key-selection feature needs (it normalizes c_t per position).
struct SparseState {
  ops::sparse::SparseKeyStream keys;  // LSH ring buffers, the top-w set, the position
  std::vector<float> K;               // (t, N) every past key, already / sqrt(N)
  std::vector<float> V;               // (t, I) every past value (the conv output xc)
  std::vector<double> query_sum;      // (2N) sum of Q, then of c^2 (running normalization), over the past positions
  std::vector<double> lsh_sums;       // (4N) sum and sum of squares of Q, then of K (running LSH statistics only)

  int position() const { return keys.position(); }
};

// One field group per kind of mixer; a mixer uses its own and leaves the others empty.
struct MixerState {
  std::vector<float> conv_tail;       // (K-1, C) the last K-1 conv inputs (zeros before the sequence starts)
  std::vector<float> h;               // the scan state after the last position: (I, N) Mamba, (H, P, N) Mamba2
  std::optional<SparseState> sparse;  // with a sparse arch only
  // Sliding-window attention: the rotated keys and the values of the last (at most window - 1) positions, oldest
  // first, (rows, H*P) each; `position` counts the positions consumed so far (the rotary angle of the next one).
  std::vector<float> window_k, window_v;
  int position = 0;
};

}  // namespace hax::layers
