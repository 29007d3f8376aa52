// Reference key-selection features and scorer: plain loops, any scalar type. Same contract as key_scorer.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/ops/linear_ref.h"
#include "hax/ops/sparse/key_scorer.h"

namespace hax::ops::sparse::ref {

template <class Real>
void key_selection_features(Real* features, const Real* Q, const Real* K, int T, int N, Semantics semantics) {
  const int F = 2 * N;
  std::vector<Real> running(N, Real(0)), time_norm(N, Real(0));
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < N; ++n) {
      running[n] += Q[std::size_t(t) * N + n];
      features[std::size_t(t) * F + n] = K[std::size_t(t) * N + n];
      features[std::size_t(t) * F + N + n] = running[n];
      time_norm[n] += running[n] * running[n];
    }
  for (int t = 0; t < T; ++t) {
    Real* c = features + std::size_t(t) * F + N;
    Real row_norm = 0;
    for (int n = 0; n < N; ++n) row_norm += c[n] * c[n];
    for (int n = 0; n < N; ++n) {
      const Real norm = semantics == Semantics::paper ? time_norm[n] : row_norm;
      c[n] /= std::max(Real(std::sqrt(norm)), Real(1e-12));
    }
  }
}

// The running normalization of a whole sequence: row t's c divided per feature by the norm of c over rows 0..t,
// recomputed from scratch for every t.
template <class Real>
void key_selection_features_running(Real* features, const Real* Q, const Real* K, int T, int N) {
  const int F = 2 * N;
  std::vector<Real> c(std::size_t(T) * N);
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < N; ++n)
      c[std::size_t(t) * N + n] = Q[std::size_t(t) * N + n] + (t > 0 ? c[std::size_t(t - 1) * N + n] : Real(0));
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < N; ++n) {
      Real sum_sq = 0;
      for (int p = 0; p <= t; ++p) sum_sq += c[std::size_t(p) * N + n] * c[std::size_t(p) * N + n];
      features[std::size_t(t) * F + n] = K[std::size_t(t) * N + n];
      features[std::size_t(t) * F + N + n] = c[std::size_t(t) * N + n] / std::max(Real(std::sqrt(sum_sq)), Real(1e-12));
    }
}

template <class Real>
void relu(Real* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) x[i] = std::max(x[i], Real(0));
}

// dx (n) *= [h > 0]: the gradient through a ReLU whose output was h.
template <class Real>
void relu_backward_in_place(Real* dx, const Real* h, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (!(h[i] > Real(0))) dx[i] = 0;
}

template <class Real>
void key_scorer_forward(Real* score, Real* hidden1, Real* hidden2, const Real* features, const ScorerWeights<Real>& w,
                        int T, int N) {
  const int F = 2 * N;
  const std::size_t n = std::size_t(T) * F;
  ops::ref::linear_forward(hidden1, features, w.W1, w.b1, T, F, F);
  relu(hidden1, n);
  ops::ref::linear_forward(hidden2, hidden1, w.W2, w.b2, T, F, F);
  relu(hidden2, n);
  ops::ref::linear_forward(score, hidden2, w.W3, w.b3, T, F, 1);
}

template <class Real>
void key_scorer_backward(const ScorerGradients<Real>& g, const Real* dscore, const Real* features, const Real* hidden1,
                         const Real* hidden2, const ScorerWeights<Real>& w, int T, int N) {
  const int F = 2 * N;
  const std::size_t n = std::size_t(T) * F;
  std::vector<Real> dhidden2(n, Real(0)), dhidden1(n, Real(0));
  ops::ref::linear_backward(dhidden2.data(), g.W3, g.b3, dscore, hidden2, w.W3, T, F, 1);
  relu_backward_in_place(dhidden2.data(), hidden2, n);
  ops::ref::linear_backward(dhidden1.data(), g.W2, g.b2, dhidden2.data(), hidden1, w.W2, T, F, F);
  relu_backward_in_place(dhidden1.data(), hidden1, n);
  ops::ref::linear_backward<Real>(nullptr, g.W1, g.b1, dhidden1.data(), features, w.W1, T, F, F);
}

}  // namespace hax::ops::sparse::ref
