#include "hax/ops/cross_entropy.h"

#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/engine/error.h"
#include "hax/ops/fast_math.h"
#include "hax/ops/parallel.h"

namespace hax::ops {
namespace {

float row_max(const float* row, int V) {
  float max = row[0];
#pragma omp simd reduction(max : max)
  for (int j = 1; j < V; ++j) max = row[j] > max ? row[j] : max;
  return max;
}

// exp(row[j] - max) into exps (may be null) and their sum.
float shifted_exps(float* exps, const float* row, float max, int V) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < V; ++j) {
    const float e = fast_exp(row[j] - max);
    if (exps) exps[j] = e;
    sum += e;
  }
  return sum;
}

}  // namespace

int count_scored_rows(const std::int32_t* labels, const std::uint8_t* mask, int M, int V) {
  int count = 0;
  for (int m = 0; m < M; ++m) {
    if (!mask[m]) continue;
    check(labels[m] >= 0 && labels[m] < V, "label ", labels[m], " at position ", m, " is outside [0, ", V, ")");
    ++count;
  }
  return count;
}

double cross_entropy_forward(const float* logits, const std::int32_t* labels, const std::uint8_t* mask, int M, int V) {
  const int count = count_scored_rows(labels, mask, M, V);
  if (count == 0) return 0.0;
  const std::vector<double> total = parallel_row_sums(M, 1, V, [&](int m, double* acc) {
    if (!mask[m]) return;
    const float* row = logits + std::size_t(m) * V;
    const float max = row_max(row, V);
    const float sum = shifted_exps(nullptr, row, max, V);
    acc[0] += static_cast<double>(max) + std::log(static_cast<double>(sum)) - static_cast<double>(row[labels[m]]);
  });
  return total[0] / count;
}

void cross_entropy_backward(float* dlogits, float dloss, const float* logits, const std::int32_t* labels,
                            const std::uint8_t* mask, int M, int V) {
  const int count = count_scored_rows(labels, mask, M, V);
  if (count == 0) return;
  const float scale = dloss / static_cast<float>(count);
#pragma omp parallel if (worth_threads(std::size_t(M) * V))
  {
    std::vector<float> exps(V);  // the row's exp(logit - max), reused as softmax numerators
#pragma omp for schedule(static)
    for (int m = 0; m < M; ++m) {
      if (!mask[m]) continue;
      const float* row = logits + std::size_t(m) * V;
      float* grad = dlogits + std::size_t(m) * V;
      const float sum = shifted_exps(exps.data(), row, row_max(row, V), V);
      const float coef = scale / sum;
#pragma omp simd
      for (int j = 0; j < V; ++j) grad[j] += coef * exps[j];
      grad[labels[m]] -= scale;
    }
  }
}

}  // namespace hax::ops
