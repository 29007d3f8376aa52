#include "hax/ops/sparse/gate_loss.h"

#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/ops/parallel.h"
#include "hax/ops/sparse/gate_loss_ref.h"

namespace hax::ops::sparse {

// The O(k T N) part: one candidate per iteration, its sum over queries in double (up to ~T terms near 0.5 each).
void gate_loss_targets(float* target, const float* Q, const float* K, const std::int32_t* candidates, int k,
                       int query_count, int N) {
#pragma omp parallel for schedule(dynamic, 1) if (worth_threads(std::size_t(k) * query_count * N))
  for (int j = 0; j < k; ++j) {
    const float* key = K + std::size_t(candidates[j]) * N;
    double sum = 0.0;
    for (int t = candidates[j]; t < query_count; ++t) {
      const float* query = Q + std::size_t(t) * N;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int n = 0; n < N; ++n) dot += query[n] * key[n];
      sum += 1.0 / (1.0 + std::exp(-double(dot)));
    }
    target[j] = float(sum);
  }
}

// The O(k^2) parts are small (k = 32 or 64): the reference loops, in double.
float gate_loss_forward(const float* pred, const float* target, int k) {
  const std::vector<double> p(pred, pred + k), y(target, target + k);
  return float(ref::gate_loss_forward(p.data(), y.data(), k));
}

void gate_loss_backward(float* dpred, float dloss, const float* pred, const float* target, int k) {
  const std::vector<double> p(pred, pred + k), y(target, target + k);
  std::vector<double> d(k, 0.0);
  ref::gate_loss_backward(d.data(), double(dloss), p.data(), y.data(), k);
  for (int i = 0; i < k; ++i) dpred[i] += float(d[i]);
}

}  // namespace hax::ops::sparse
