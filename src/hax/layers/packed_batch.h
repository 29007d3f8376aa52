// A batch of variable-length sequences packed row after row, with no padding rows (like flash-attention's varlen
// layout): sequence s owns rows [offsets[s], offsets[s+1]). Row-wise ops (GEMMs, norms, the loss) run on the real
// tokens only, so padding costs no compute; time-wise ops (conv, scan) run per sequence.
#pragma once

#include <cstdint>
#include <vector>

#include "hax/engine/error.h"

namespace hax::layers {

struct PackedBatch {
  std::vector<int> offsets{0};  // size num_sequences + 1; offsets.back() = total rows

  // A batch of one sequence of `length` rows (a streamed chunk, a single sequence).
  static PackedBatch of_one(int length) {
    PackedBatch batch;
    batch.add_sequence(length);
    return batch;
  }

  int num_sequences() const { return static_cast<int>(offsets.size()) - 1; }
  int rows() const { return offsets.back(); }
  int start(int s) const { return offsets[s]; }
  int length(int s) const { return offsets[s + 1] - offsets[s]; }
  void add_sequence(int length) {
    check(length >= 0, "negative sequence length ", length);
    offsets.push_back(offsets.back() + length);
  }
  int longest() const {
    int most = 0;
    for (int s = 0; s < num_sequences(); ++s) most = length(s) > most ? length(s) : most;
    return most;
  }
};

// Runs fn(q) for every sequence q. With several sequences they are spread over the threads (each kernel then runs
// on its thread alone: nested regions are inactive); a single sequence uses the kernels' own parallel loops.
template <class Fn>
void for_each_sequence(const PackedBatch& batch, Fn&& fn) {
  const int S = batch.num_sequences();
#pragma omp parallel for schedule(dynamic) if (S > 1)
  for (int q = 0; q < S; ++q) fn(q);
}

}  // namespace hax::layers
