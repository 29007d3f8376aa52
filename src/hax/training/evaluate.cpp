#include "hax/training/evaluate.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "hax/engine/rng.h"
#include "hax/training/batch.h"

namespace hax::training {
namespace {

constexpr std::uint64_t kEvaluationNoise = 0x6576616c;  // "eval"

}  // namespace

void reserve_arena(Arena& arena, std::size_t floats) {
  if (arena.capacity() < floats) arena = Arena(floats + floats / 8);
}

EvalResult evaluate(models::Model& model, SampleSource& source, std::uint64_t count, int batch_size,
                    const std::function<void(std::uint64_t)>& on_batch, int padded_length) {
  check(batch_size > 0, "evaluation batch size must be > 0, got ", batch_size);
  if (count == 0 || count > source.size()) count = source.size();
  EvalResult result;
  Arena arena;
  std::vector<data::Sample> samples;
  double loss_sum = 0, accuracy_sum = 0;
  for (std::uint64_t begin = 0; begin < count; begin += batch_size) {
    const std::uint64_t end = std::min<std::uint64_t>(count, begin + batch_size);
    samples.resize(end - begin);
    for (std::uint64_t i = begin; i < end; ++i) source.read(i, samples[i - begin]);
    models::TokenBatch tb = pack_samples(samples);
    tb.padded_length = padded_length;
    const int scored = static_cast<int>(std::count(tb.scored.begin(), tb.scored.end(), 1));
    reserve_arena(arena, model.arena_floats(tb.batch, scored, tb.padded_length));
    // Draws that evaluation makes (the `paper` LSH projections, resampled every forward as in the reference) are
    // seeded by the batch's first sample, so an evaluation is the same every run.
    const models::ForwardOptions options{false, Rng(model.config().seed).fork(kEvaluationNoise).fork(begin).next_u64()};
    const models::BatchResult r = model.forward(tb, arena, options);
    loss_sum += r.loss * r.scored_rows;
    result.tokens += r.scored_rows;
    for (std::size_t q = 0; q < samples.size(); ++q) {
      const double acc = r.sequence_accuracy[q];
      if (std::isnan(acc)) continue;
      accuracy_sum += acc;
      ++result.sequences;
      CellScore& cell = result.cells[samples[q].cell];
      cell.accuracy_sum += acc;
      ++cell.sequences;
    }
    if (on_batch) on_batch(end);
  }
  result.accuracy = result.sequences ? accuracy_sum / static_cast<double>(result.sequences) : 0.0;
  result.loss = result.tokens ? loss_sum / static_cast<double>(result.tokens) : 0.0;
  return result;
}

}  // namespace hax::training
