#include "hax/engine/blas.h"

#include <cblas.h>
#include <omp.h>

#include <chrono>

#include "hax/engine/error.h"

namespace hax {
namespace {

GemmTally tally;  // written only outside parallel regions, so by one thread at a time

}  // namespace

void gemm_tally_reset() { tally = {}; }
GemmTally gemm_tally() { return tally; }

void gemm(Trans trans_a, Trans trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
  check(M >= 0 && N >= 0 && K >= 0, "gemm with negative size M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  const bool counted = !omp_in_parallel();
  const auto start = counted ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  cblas_sgemm(CblasRowMajor, trans_a == Trans::Yes ? CblasTrans : CblasNoTrans,
              trans_b == Trans::Yes ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (!counted) return;
  tally.flop += 2.0 * M * N * K;
  tally.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++tally.calls;
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
