// Reference masked cross-entropy: plain loops, any scalar type. Same contract as cross_entropy.h.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "hax/ops/cross_entropy.h"

namespace hax::ops::ref {

// log sum_j exp(row[j]), shifted by the maximum so that exp cannot overflow.
template <class Real>
Real log_sum_exp(const Real* row, int V) {
  Real max = row[0];
  for (int j = 1; j < V; ++j) max = row[j] > max ? row[j] : max;
  Real sum = 0;
  for (int j = 0; j < V; ++j) sum += std::exp(row[j] - max);
  return max + std::log(sum);
}

template <class Real>
double cross_entropy_forward(const Real* logits, const std::int32_t* labels, const std::uint8_t* mask, int M, int V) {
  const int count = count_scored_rows(labels, mask, M, V);
  if (count == 0) return 0.0;
  double total = 0.0;
  for (int m = 0; m < M; ++m) {
    if (!mask[m]) continue;
    const Real* row = logits + std::size_t(m) * V;
    total += static_cast<double>(log_sum_exp(row, V) - row[labels[m]]);
  }
  return total / count;
}

template <class Real>
void cross_entropy_backward(Real* dlogits, Real dloss, const Real* logits, const std::int32_t* labels,
                            const std::uint8_t* mask, int M, int V) {
  const int count = count_scored_rows(labels, mask, M, V);
  for (int m = 0; m < M; ++m) {
    if (!mask[m]) continue;
    const Real* row = logits + std::size_t(m) * V;
    const Real lse = log_sum_exp(row, V);
    for (int j = 0; j < V; ++j) {
      const Real onehot = j == labels[m] ? Real(1) : Real(0);
      dlogits[std::size_t(m) * V + j] += dloss * (std::exp(row[j] - lse) - onehot) / Real(count);
    }
  }
}

}  // namespace hax::ops::ref
