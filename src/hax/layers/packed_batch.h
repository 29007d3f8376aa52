// A batch of variable-length sequences packed row after row, with no padding rows (like flash-attention's varlen
// layout): sequence s owns rows [start(s), start(s+1)). Row-wise ops (GEMMs, norms, the loss) run on the real
// tokens only, so padding costs no compute; time-wise ops (conv, scan) run per sequence.
#pragma once

#include <cstdint>
#include <vector>

#include "hax/engine/error.h"

namespace hax::layers {

class PackedBatch {
 public:
  // A batch of one sequence of `length` rows (a streamed chunk, a single sequence).
  static PackedBatch of_one(int length) {
    PackedBatch batch;
    batch.add_sequence(length);
    return batch;
  }

  int num_sequences() const { return sequences_; }
  int rows() const { return start(sequences_); }
  int start(int s) const { return s == 0 ? 0 : s == 1 ? first_end_ : later_ends_[s - 2]; }  // s <= num_sequences
  int length(int s) const { return start(s + 1) - start(s); }
  void add_sequence(int length) {
    check(length >= 0, "negative sequence length ", length);
    const int end = rows() + length;
    if (sequences_ == 0)
      first_end_ = end;
    else
      later_ends_.push_back(end);
    ++sequences_;
  }
  int longest() const {
    int most = 0;
    for (int s = 0; s < num_sequences(); ++s) most = length(s) > most ? length(s) : most;
    return most;
  }

 private:
  // The first sequence's end is kept inline, so that a batch of one sequence (a streamed chunk, a decoded token)
  // needs no heap memory.
  int sequences_ = 0;
  int first_end_ = 0;
  std::vector<int> later_ends_;
};

// Runs fn(q) for every sequence q. With several sequences they are spread over the threads (each kernel then runs
// on its thread alone: nested regions are inactive); a single sequence uses the kernels' own parallel loops.
template <class Fn>
void for_each_sequence(const PackedBatch& batch, Fn&& fn) {
  const int S = batch.num_sequences();
  if (S == 1) return fn(0);  // no region for one sequence (a streamed chunk): see ops::opens_team
#pragma omp parallel for schedule(dynamic) if (S > 1)
  for (int q = 0; q < S; ++q) fn(q);
}

}  // namespace hax::layers
