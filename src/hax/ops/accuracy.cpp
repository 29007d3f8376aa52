#include "hax/ops/accuracy.h"

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "hax/ops/cross_entropy.h"
#include "hax/ops/parallel.h"

namespace hax::ops {
namespace {

// Index of the largest entry, the first one on ties: a vectorized max, then a scan for its first occurrence.
int first_argmax(const float* row, int V) {
  float max = row[0];
#pragma omp simd reduction(max : max)
  for (int j = 1; j < V; ++j) max = row[j] > max ? row[j] : max;
  for (int j = 0; j < V; ++j)
    if (row[j] == max) return j;
  return 0;  // no entry equals max only when row[0] is NaN: every comparison then failed, as in the reference
}

}  // namespace

double mean_of_scored(const double* per_sequence, int B) {
  double sum = 0.0;
  int scored = 0;
  for (int s = 0; s < B; ++s) {
    if (std::isnan(per_sequence[s])) continue;
    sum += per_sequence[s];
    ++scored;
  }
  return scored > 0 ? sum / scored : 0.0;
}

double sequence_accuracy(double* per_sequence, const float* logits, const std::int32_t* labels,
                         const std::uint8_t* mask, int B, int T, int V) {
  count_scored_rows(labels, mask, B * T, V);  // validates the labels
  std::vector<double> accuracy(B, std::numeric_limits<double>::quiet_NaN());
  // Sequences are independent, and a batch has at least as many as there are cores.
#pragma omp parallel for schedule(static) if (worth_threads(std::size_t(B) * T * V))
  for (int s = 0; s < B; ++s) {
    int scored = 0, correct = 0;
    for (int t = 0; t < T; ++t) {
      const std::size_t row = std::size_t(s) * T + t;
      if (!mask[row]) continue;
      ++scored;
      correct += first_argmax(logits + row * V, V) == labels[row];
    }
    if (scored > 0) accuracy[s] = static_cast<double>(correct) / scored;
  }
  if (per_sequence)
    for (int s = 0; s < B; ++s) per_sequence[s] = accuracy[s];
  return mean_of_scored(accuracy.data(), B);
}

}  // namespace hax::ops
