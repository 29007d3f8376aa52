// Reference per-sequence accuracy: plain loops, any scalar type. Same contract as accuracy.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "hax/ops/accuracy.h"
#include "hax/ops/cross_entropy.h"

namespace hax::ops::ref {

// Index of the largest entry, the first one on ties.
template <class Real>
int argmax(const Real* row, int V) {
  int best = 0;
  for (int j = 1; j < V; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

template <class Real>
double sequence_accuracy(double* per_sequence, const Real* logits, const std::int32_t* labels, const std::uint8_t* mask,
                         int B, int T, int V) {
  count_scored_rows(labels, mask, B * T, V);  // validates the labels
  std::vector<double> accuracy(B, std::numeric_limits<double>::quiet_NaN());
  for (int s = 0; s < B; ++s) {
    int scored = 0, correct = 0;
    for (int t = 0; t < T; ++t) {
      const std::size_t row = std::size_t(s) * T + t;
      if (!mask[row]) continue;
      ++scored;
      correct += argmax(logits + row * V, V) == labels[row];
    }
    if (scored > 0) accuracy[s] = static_cast<double>(correct) / scored;
  }
  if (per_sequence)
    for (int s = 0; s < B; ++s) per_sequence[s] = accuracy[s];
  return mean_of_scored(accuracy.data(), B);
}

}  // namespace hax::ops::ref
