// Evaluation as the paper reports it (reference §2.2, §2.4): per sequence, the fraction of its scored positions
// predicted right (argmax); the split's accuracy is the mean over sequences, and each (n_context, n_key) cell gets
// the same mean over its own sequences.
#pragma once

#include <cstdint>
#include <functional>
#include <map>

#include "hax/data/sample.h"
#include "hax/engine/arena.h"
#include "hax/models/model.h"
#include "hax/training/sample_source.h"

namespace hax::training {

struct CellScore {
  double accuracy_sum = 0;
  std::uint64_t sequences = 0;
  double accuracy() const { return sequences ? accuracy_sum / static_cast<double>(sequences) : 0.0; }
};

struct EvalResult {
  double accuracy = 0;  // mean over sequences with at least one scored position
  double loss = 0;      // mean cross-entropy over all scored tokens
  std::uint64_t sequences = 0;
  std::uint64_t tokens = 0;  // scored tokens
  std::map<data::Cell, CellScore> cells;
};

// Evaluates samples [0, count) of `source` (count 0: all) in batches. `on_batch(done)` reports progress.
// padded_length: as TokenBatch::padded_length (`paper` semantics only).
EvalResult evaluate(models::Model& model, SampleSource& source, std::uint64_t count, int batch_size,
                    const std::function<void(std::uint64_t)>& on_batch = {}, int padded_length = 0);

// Grows `arena` (replacing it) when a batch needs more than it holds.
void reserve_arena(Arena& arena, std::size_t floats);

}  // namespace hax::training
