#include "hax/ops/sparse/key_scorer.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/ops/linear.h"
#include "hax/ops/parallel.h"
#include "hax/ops/sparse/key_scorer_ref.h"

namespace hax::ops::sparse {
namespace {

// The per-feature L2 norm over time of the running sums c_t, for the `paper` normalization.
std::vector<double> time_norms_of_running_sums(const float* features, int T, int N) {
  std::vector<double> norm(N, 0.0);
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < N; ++n) {
      const double c = features[std::size_t(t) * 2 * N + N + n];
      norm[n] += c * c;
    }
  for (double& v : norm) v = std::sqrt(v);
  return norm;
}

// The `causal` normalization of one row's running sum c (N).
void normalize_row(float* c, int N) {
  double sum_sq = 0.0;
  for (int n = 0; n < N; ++n) sum_sq += double(c[n]) * c[n];
  const float scale = float(1.0 / std::max(std::sqrt(sum_sq), 1e-12));
  for (int n = 0; n < N; ++n) c[n] *= scale;
}

// features (T, 2N) = [K_t, c_t] with the running sum c_t of Q continued from running (N), which is advanced. The
// sum is sequential; it is kept in double so that it does not drift over long sequences.
void running_sum_features(float* features, const float* Q, const float* K, int T, int N, double* running) {
  for (int t = 0; t < T; ++t) {
    float* f = features + std::size_t(t) * 2 * N;
    for (int n = 0; n < N; ++n) {
      running[n] += Q[std::size_t(t) * N + n];
      f[n] = K[std::size_t(t) * N + n];
      f[N + n] = float(running[n]);
    }
  }
}

void relu(float* x, std::size_t n) {
  parallel_range(n, [&](std::size_t begin, std::size_t end) {
#pragma omp simd
    for (std::size_t i = begin; i < end; ++i) x[i] = std::max(x[i], 0.0f);
  });
}

}  // namespace

void key_selection_features(float* features, const float* Q, const float* K, int T, int N, Semantics semantics) {
  const int F = 2 * N;
  std::vector<double> running(N, 0.0);
  if (semantics == Semantics::causal) return key_selection_features_continued(features, Q, K, T, N, running.data());
  running_sum_features(features, Q, K, T, N, running.data());
  const std::vector<double> norm = time_norms_of_running_sums(features, T, N);
  std::vector<float> scale(N);
  for (int n = 0; n < N; ++n) scale[n] = float(1.0 / std::max(norm[n], 1e-12));
  parallel_for(T, worth_threads(std::size_t(T) * N), [&](int t) {
    for (int n = 0; n < N; ++n) features[std::size_t(t) * F + N + n] *= scale[n];
  });
}

void key_selection_features_continued(float* features, const float* Q, const float* K, int T, int N, double* running) {
  running_sum_features(features, Q, K, T, N, running);
  parallel_for(T, worth_threads(std::size_t(T) * N),
               [&](int t) { normalize_row(features + std::size_t(t) * 2 * N + N, N); });
}

void key_selection_features_running(float* features, const float* Q, const float* K, int T, int N, double* running,
                                    double* squares) {
  for (int t = 0; t < T; ++t) {
    float* f = features + std::size_t(t) * 2 * N;
    for (int n = 0; n < N; ++n) {
      running[n] += Q[std::size_t(t) * N + n];
      squares[n] += running[n] * running[n];
      f[n] = K[std::size_t(t) * N + n];
      f[N + n] = float(running[n] / std::max(std::sqrt(squares[n]), 1e-12));
    }
  }
}

void key_scorer_forward(float* score, float* hidden1, float* hidden2, const float* features,
                        const ScorerWeights<float>& w, int T, int N) {
  const int F = 2 * N;
  const std::size_t n = std::size_t(T) * F;
  linear_forward(hidden1, features, w.W1, w.b1, T, F, F);
  relu(hidden1, n);
  linear_forward(hidden2, hidden1, w.W2, w.b2, T, F, F);
  relu(hidden2, n);
  linear_forward(score, hidden2, w.W3, w.b3, T, F, 1);
}

void key_scorer_backward(const ScorerGradients<float>& g, const float* dscore, const float* features,
                         const float* hidden1, const float* hidden2, const ScorerWeights<float>& w, int T, int N) {
  std::vector<float> scratch(std::size_t(T) * 4 * N);
  key_scorer_backward_with_scratch(g, dscore, features, hidden1, hidden2, w, T, N, scratch.data());
}

void key_scorer_backward_with_scratch(const ScorerGradients<float>& g, const float* dscore, const float* features,
                                      const float* hidden1, const float* hidden2, const ScorerWeights<float>& w, int T,
                                      int N, float* scratch) {
  const int F = 2 * N;
  const std::size_t n = std::size_t(T) * F;
  float* dhidden2 = scratch;
  float* dhidden1 = scratch + n;
  std::fill_n(scratch, 2 * n, 0.0f);  // linear_backward adds into them
  linear_backward(dhidden2, g.W3, g.b3, dscore, hidden2, w.W3, T, F, 1);
  ref::relu_backward_in_place(dhidden2, hidden2, n);
  linear_backward(dhidden1, g.W2, g.b2, dhidden2, hidden1, w.W2, T, F, F);
  ref::relu_backward_in_place(dhidden1, hidden1, n);
  linear_backward(nullptr, g.W1, g.b1, dhidden1, features, w.W1, T, F, F);
}

}  // namespace hax::ops::sparse
