#include "hax/ops/sparse/lsh.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/ops/parallel.h"

namespace hax::ops::sparse {
namespace {

// Per feature n: shift[n] = mean over time, scale[n] = 1 / max(L2 norm over time of x - mean, 1e-12). Sums in
// double: at T = 64k a float sum of squares would lose the digits the sign bits depend on.
void time_statistics(std::vector<float>& shift, std::vector<float>& scale, const float* x, int T, int N) {
  const std::vector<double> sums = parallel_row_sums(T, N, N, [&](int t, double* acc) {
    for (int n = 0; n < N; ++n) acc[n] += x[std::size_t(t) * N + n];
  });
  std::vector<double> mean(N);
  for (int n = 0; n < N; ++n) mean[n] = sums[n] / std::max(T, 1);
  const std::vector<double> squares = parallel_row_sums(T, N, N, [&](int t, double* acc) {
    for (int n = 0; n < N; ++n) {
      const double d = x[std::size_t(t) * N + n] - mean[n];
      acc[n] += d * d;
    }
  });
  for (int n = 0; n < N; ++n) {
    shift[n] = float(mean[n]);
    scale[n] = float(1.0 / std::max(std::sqrt(squares[n]), 1e-12));
  }
}

// proj rows (y_t H) of the already centred and scaled rows y (T, N).
void project_rows(float* proj, const float* y, const float* H, int T, int N, int num_hash) {
  parallel_for(T, worth_threads(std::size_t(T) * N * num_hash), [&](int t) {
    float* p = proj + std::size_t(t) * num_hash;
    std::fill(p, p + num_hash, 0.0f);
    for (int n = 0; n < N; ++n) {
      const float v = y[std::size_t(t) * N + n];
      const float* h = H + std::size_t(n) * num_hash;
#pragma omp simd
      for (int j = 0; j < num_hash; ++j) p[j] += v * h[j];
    }
  });
}

}  // namespace

void lsh_projections(float* proj, const float* x, const float* H, int T, int N, int num_hash, Semantics semantics) {
  if (semantics != Semantics::paper) return project_rows(proj, x, H, T, N, num_hash);
  std::vector<float> shift(N, 0.0f), scale(N, 1.0f);
  time_statistics(shift, scale, x, T, N);
  std::vector<float> y(std::size_t(T) * N);
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < N; ++n) y[std::size_t(t) * N + n] = (x[std::size_t(t) * N + n] - shift[n]) * scale[n];
  project_rows(proj, y.data(), H, T, N, num_hash);
}

void lsh_projections_running(float* proj, const float* x, const float* H, int T, int N, int num_hash, double* sums,
                             std::int64_t before) {
  // Sequential in t (each row needs its prefix's sums); the projection after it is parallel. The normalized rows
  // live in a per-thread buffer that only grows, so that decoding a token allocates nothing.
  thread_local std::vector<float> y;
  y.resize(std::size_t(T) * N);
  double* sum = sums;
  double* sum_sq = sums + N;
  for (int t = 0; t < T; ++t) {
    const double count = double(before + t + 1);
    for (int n = 0; n < N; ++n) {
      const double v = x[std::size_t(t) * N + n];
      sum[n] += v, sum_sq[n] += v * v;
      const double mean = sum[n] / count;
      // sum over the prefix of (x - mean)^2 = sum_x^2 - count * mean^2, never below 0 after rounding
      const double spread = std::sqrt(std::max(sum_sq[n] - count * mean * mean, 0.0));
      y[std::size_t(t) * N + n] = float((v - mean) / std::max(spread, 1e-12));
    }
  }
  project_rows(proj, y.data(), H, T, N, num_hash);
}

}  // namespace hax::ops::sparse
