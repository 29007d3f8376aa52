#include "hax/engine/blas.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>

#include <unistd.h>

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
  if (M == 1 && K > 0) {
    // One row (a decoded token): sgemm would pack all of B for a single pass over it, which costs more than the
    // product itself; a GEMV streams B once. a's K elements are a row (stride 1) or a column (stride lda) of A.
    // With beta = 0, C may hold garbage (an uninitialized arena): zero it, since some BLAS versions scale y by beta
    // and 0 * NaN is NaN.
    if (beta == 0.0f) std::fill_n(C, N, 0.0f);
    const int a_stride = trans_a == Trans::Yes ? lda : 1;
    if (trans_b == Trans::Yes)  // C (1, N) = a B^T with B (N, K): rows of B dotted with a
      cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, a_stride, beta, C, 1);
    else  // C (1, N) = a B with B (K, N)
      cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, B, ldb, A, a_stride, beta, C, 1);
  } else {
    cblas_sgemm(CblasRowMajor, trans_a == Trans::Yes ? CblasTrans : CblasNoTrans,
                trans_b == Trans::Yes ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
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

OneThreadIf::OneThreadIf(bool alone) {
  if (!alone || omp_get_max_threads() == 1) return;
  restore_ = omp_get_max_threads();
  omp_set_num_threads(1);
  openblas_set_num_threads(1);
}

OneThreadIf::~OneThreadIf() {
  if (restore_ == 0) return;
  omp_set_num_threads(restore_);
  openblas_set_num_threads(restore_);
}

void restart_with_short_thread_spin(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  if (setenv("GOMP_SPINCOUNT", std::to_string(kShortSpinCount).c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: the re-exec failed (no /proc); run on with libgomp's defaults. The variable stays set, so a child
  // process (a sweep's runs) gets the short spin from the start.
}

}  // namespace hax
