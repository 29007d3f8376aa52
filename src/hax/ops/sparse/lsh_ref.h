// Reference LSH projections: plain loops, any scalar type. Same contract as lsh.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/ops/sparse/lsh.h"

namespace hax::ops::sparse::ref {

// x (T, N) centred and scaled per feature over time (the `paper` statistics), into y (T, N).
template <class Real>
void normalize_over_time(Real* y, const Real* x, int T, int N) {
  for (int n = 0; n < N; ++n) {
    Real mean = 0;
    for (int t = 0; t < T; ++t) mean += x[std::size_t(t) * N + n];
    mean /= Real(std::max(T, 1));
    Real sum_sq = 0;
    for (int t = 0; t < T; ++t) sum_sq += (x[std::size_t(t) * N + n] - mean) * (x[std::size_t(t) * N + n] - mean);
    const Real scale = Real(1) / std::max(Real(std::sqrt(sum_sq)), Real(1e-12));
    for (int t = 0; t < T; ++t) y[std::size_t(t) * N + n] = (x[std::size_t(t) * N + n] - mean) * scale;
  }
}

// Row t of x (T, N) centred and scaled over the prefix 0..t alone (the running statistics), recomputed from scratch
// for every t: O(T^2 N), independent of the fast path's running sums.
template <class Real>
void normalize_over_prefixes(Real* y, const Real* x, int T, int N) {
  for (int t = 0; t < T; ++t) {
    std::vector<Real> prefix(std::size_t(t + 1) * N);
    normalize_over_time(prefix.data(), x, t + 1, N);
    std::copy_n(prefix.data() + std::size_t(t) * N, N, y + std::size_t(t) * N);
  }
}

template <class Real>
void project_rows(Real* proj, const Real* y, const Real* H, int T, int N, int num_hash) {
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < num_hash; ++j) {
      Real sum = 0;
      for (int n = 0; n < N; ++n) sum += y[std::size_t(t) * N + n] * H[std::size_t(n) * num_hash + j];
      proj[std::size_t(t) * num_hash + j] = sum;
    }
}

template <class Real>
void lsh_projections(Real* proj, const Real* x, const Real* H, int T, int N, int num_hash, Semantics semantics) {
  std::vector<Real> y(x, x + std::size_t(T) * N);
  if (semantics == Semantics::paper) normalize_over_time(y.data(), x, T, N);
  project_rows(proj, y.data(), H, T, N, num_hash);
}

// The whole sequence from its start (the fast path's sums at zero, before = 0).
template <class Real>
void lsh_projections_running(Real* proj, const Real* x, const Real* H, int T, int N, int num_hash) {
  std::vector<Real> y(std::size_t(T) * N);
  normalize_over_prefixes(y.data(), x, T, N);
  project_rows(proj, y.data(), H, T, N, num_hash);
}

}  // namespace hax::ops::sparse::ref
