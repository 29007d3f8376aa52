// Reference sparse attention: plain loops over the key lists, any scalar type. Same contract as
// sparse_attention.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/ops/sparse/sparse_attention.h"

namespace hax::ops::sparse::ref {

template <class Real>
Real dot(const Real* a, const Real* b, int n) {
  Real sum = 0;
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

template <class Real>
void sparse_attention_forward(Real* out, Real* probs, const Real* Q, const Real* K, const Real* V,
                              const SparseKeys& keys, int N, int I, Semantics semantics) {
  check_chunk(keys, semantics);
  const int T = keys.T;
  for (int t = 0; t < T; ++t) {
    Real* o = out + std::size_t(t) * I;
    std::fill(o, o + I, Real(0));
    const auto list = keys.keys_of(t);
    if (list.empty()) {
      if (semantics == Semantics::paper)
        for (int s = 0; s < T; ++s)
          for (int c = 0; c < I; ++c) o[c] += V[std::size_t(s) * I + c] / Real(T);
      continue;
    }
    Real* p = probs + std::size_t(t) * keys.k_max;
    Real max_score = -INFINITY, sum = 0;
    for (std::size_t j = 0; j < list.size(); ++j) {
      p[j] = dot(Q + std::size_t(t) * N, K + std::size_t(list[j]) * N, N);
      max_score = std::max(max_score, p[j]);
    }
    for (std::size_t j = 0; j < list.size(); ++j) sum += p[j] = std::exp(p[j] - max_score);
    for (std::size_t j = 0; j < list.size(); ++j) {
      p[j] /= sum;
      for (int c = 0; c < I; ++c) o[c] += p[j] * V[std::size_t(list[j]) * I + c];
    }
  }
}

template <class Real>
void sparse_attention_backward(Real* dQ, Real* dK, Real* dV, const Real* dout, const Real* probs, const Real* Q,
                               const Real* K, const Real* V, const SparseKeys& keys, int N, int I,
                               Semantics semantics) {
  check_chunk(keys, semantics);
  check_positions(keys);
  const int T = keys.T;
  for (int t = 0; t < T; ++t) {
    const Real* g = dout + std::size_t(t) * I;
    const auto list = keys.keys_of(t);
    if (list.empty()) {
      if (semantics == Semantics::paper && dV)
        for (int s = 0; s < T; ++s)
          for (int c = 0; c < I; ++c) dV[std::size_t(s) * I + c] += g[c] / Real(T);
      continue;
    }
    const Real* p = probs + std::size_t(t) * keys.k_max;
    std::vector<Real> dp(list.size());
    Real p_dot_dp = 0;
    for (std::size_t j = 0; j < list.size(); ++j) {
      dp[j] = dot(g, V + std::size_t(list[j]) * I, I);
      p_dot_dp += p[j] * dp[j];
    }
    for (std::size_t j = 0; j < list.size(); ++j) {
      const std::size_t s = list[j];
      const Real dscore = p[j] * (dp[j] - p_dot_dp);
      for (int n = 0; n < N; ++n) {
        if (dQ) dQ[std::size_t(t) * N + n] += dscore * K[s * N + n];
        if (dK) dK[s * N + n] += dscore * Q[std::size_t(t) * N + n];
      }
      if (dV)
        for (int c = 0; c < I; ++c) dV[s * I + c] += p[j] * g[c];
    }
  }
}

}  // namespace hax::ops::sparse::ref
