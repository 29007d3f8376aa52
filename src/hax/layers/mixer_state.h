// What one mixer carries from a sequence's past into its next chunk during streaming inference (`causal` only):
// with it, a prefill in chunks of any size and token-by-token decoding give the outputs of the parallel forward
// over the whole sequence (shared/spec/semantics.md, property 3). Plain values: copying a state forks the sequence.
#pragma once

#include <optional>
#include <vector>

#include "hax/ops/sparse/key_value_cache.h"
#include "hax/ops/sparse/sparse_keys.h"

namespace hax::layers {

// The sparse branch's memory. Keys and values are kept for the positions some pattern can still attend to, and
// for no other (ops/sparse/key_value_cache.h): O(1) in the length for window, sink, LSH and key selection, O(t)
// for `full` and O(t / dilation) for `dilated`. The rest is O(1) too: the key lists' streaming state and the
// running sum of Q, which is all the `causal` key-selection feature needs (it normalizes c_t per position).
struct SparseState {
  ops::sparse::SparseKeyStream keys;  // LSH ring buffers, the top-w set, the position
  ops::sparse::KeyValueCache cache;   // K (N wide, already / sqrt(N)) and V (I wide: the conv output xc)
  std::vector<double> query_sum;      // (2N) sum of Q, then of c^2 (running normalization), over the past positions
  std::vector<double> lsh_sums;       // (4N) sum and sum of squares of Q, then of K (running LSH statistics only)
  // Scratch of one chunk, kept so that decoding reuses its buffers: the LSH buckets, the key lists, the steps' holds.
  std::vector<std::int32_t> chunk_buckets[4];
  ops::sparse::SparseKeys chunk_keys;
  ops::sparse::KeyHolds chunk_holds;

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
