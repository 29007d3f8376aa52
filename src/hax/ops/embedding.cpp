#include "hax/ops/embedding.h"

#include <omp.h>

#include <cstddef>
#include <cstring>

#include "hax/engine/error.h"
#include "hax/ops/parallel.h"

namespace hax::ops {

void check_ids(const std::int32_t* ids, int M, int V, const char* what) {
  for (int m = 0; m < M; ++m)
    check(ids[m] >= 0 && ids[m] < V, what, " ", ids[m], " at position ", m, " is outside [0, ", V, ")");
}

void embedding_forward(float* out, const std::int32_t* ids, const float* table, int M, int V, int D) {
  check_ids(ids, M, V, "embedding id");
  const std::size_t row_bytes = std::size_t(D) * sizeof(float);
  parallel_for(M, worth_threads(std::size_t(M) * D),
               [&](int m) { std::memcpy(out + std::size_t(m) * D, table + std::size_t(ids[m]) * D, row_bytes); });
}

void embedding_backward(float* dtable, const float* dout, const std::int32_t* ids, int M, int V, int D) {
  check_ids(ids, M, V, "embedding id");
  // Each thread owns a slice of the table's rows and scans all ids for those in its slice: no two threads touch
  // the same row, and every row is summed in the order of m. Scanning M ints per thread is cheap next to the adds.
#pragma omp parallel if (worth_threads(std::size_t(M) * D))
  {
    const int thread = omp_get_thread_num(), threads = omp_get_num_threads();
    const std::int64_t first = std::int64_t(V) * thread / threads, last = std::int64_t(V) * (thread + 1) / threads;
    for (int m = 0; m < M; ++m) {
      if (ids[m] < first || ids[m] >= last) continue;
      float* dst = dtable + std::size_t(ids[m]) * D;
      const float* src = dout + std::size_t(m) * D;
#pragma omp simd
      for (int d = 0; d < D; ++d) dst[d] += src[d];
    }
  }
}

}  // namespace hax::ops
