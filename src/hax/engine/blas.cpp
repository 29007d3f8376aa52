#include "hax/engine/blas.h"

#include <cblas.h>
#include <omp.h>

#include "hax/engine/error.h"

namespace hax {

void gemm(Trans trans_a, Trans trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
  check(M >= 0 && N >= 0 && K >= 0, "gemm with negative size M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a == Trans::Yes ? CblasTrans : CblasNoTrans,
              trans_b == Trans::Yes ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  // Kernels called from inside a parallel loop (one sequence per thread) must run on that thread alone.
  omp_set_max_active_levels(1);
  openblas_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace hax
