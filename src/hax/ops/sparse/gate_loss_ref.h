// Reference gate loss: plain loops, any scalar type. Same contract as gate_loss.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "hax/ops/sparse/gate_loss.h"

namespace hax::ops::sparse::ref {

template <class Real>
void gate_loss_targets(Real* target, const Real* Q, const Real* K, const std::int32_t* candidates, int k,
                       int query_count, int N) {
  for (int j = 0; j < k; ++j) {
    const Real* key = K + std::size_t(candidates[j]) * N;
    Real sum = 0;
    for (int t = candidates[j]; t < query_count; ++t) {
      Real dot = 0;
      for (int n = 0; n < N; ++n) dot += Q[std::size_t(t) * N + n] * key[n];
      sum += Real(1) / (Real(1) + std::exp(-dot));
    }
    target[j] = sum;
  }
}

// y_ij: 1 if target_i ranks above target_j, 1/2 on a tie, 0 below.
template <class Real>
Real rank_label(Real target_i, Real target_j) {
  return (Real(target_i > target_j) + Real(target_i >= target_j)) / Real(2);
}

// BCEWithLogits(x, y) = (1 - y) x - log sigmoid(x), in the form that neither overflows nor cancels.
template <class Real>
Real bce_with_logits(Real x, Real y) {
  return std::max(x, Real(0)) - x * y + std::log1p(std::exp(-std::abs(x)));
}

template <class Real>
Real gate_loss_forward(const Real* pred, const Real* target, int k) {
  Real sum = 0;
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) sum += bce_with_logits(pred[i] - pred[j], rank_label(target[i], target[j]));
  return k > 0 ? sum / (Real(k) * k) : Real(0);
}

template <class Real>
void gate_loss_backward(Real* dpred, Real dloss, const Real* pred, const Real* target, int k) {
  const Real scale = k > 0 ? dloss / (Real(k) * k) : Real(0);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) {
      // d BCE / dx = sigmoid(x) - y, and x = pred_i - pred_j.
      const Real g = scale * (Real(1) / (Real(1) + std::exp(pred[j] - pred[i])) - rank_label(target[i], target[j]));
      dpred[i] += g;
      dpred[j] -= g;
    }
}

}  // namespace hax::ops::sparse::ref
