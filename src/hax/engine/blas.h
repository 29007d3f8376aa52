// GEMM through OpenBLAS, row-major, and the one place that decides how many threads the engine uses.
#pragma once

namespace hax {

enum class Trans { No, Yes };

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, all row-major with leading dimensions lda/ldb/ldc.
void gemm(Trans trans_a, Trans trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc);

// What the GEMMs called outside parallel regions (the layers' projections, which use every thread) did since
// gemm_tally_reset(): their FLOPs and wall seconds, so a benchmark can report the rate of the GEMM-bound part of a
// step apart from the rest. GEMMs inside parallel loops (per sequence, per head) run concurrently and are not counted.
struct GemmTally {
  double flop = 0, seconds = 0;
  long calls = 0;
};
void gemm_tally_reset();
GemmTally gemm_tally();

// Sets the thread count for our OpenMP loops and for OpenBLAS together (n <= 0: all cores).
void set_num_threads(int n);
int num_threads();

// While it lives, the calling thread runs its parallel regions and OpenBLAS alone when `alone` is true; the thread
// count comes back when it ends. For calls with too little work to share out.
class OneThreadIf {
 public:
  explicit OneThreadIf(bool alone);
  ~OneThreadIf();
  OneThreadIf(const OneThreadIf&) = delete;
  OneThreadIf& operator=(const OneThreadIf&) = delete;

 private:
  int restore_ = 0;  // the thread count to restore; 0 when nothing was changed
};

// OpenMP's idle threads spin for a while after each parallel region before they sleep (libgomp: 300k spins by
// default). On a virtual machine a spinning vCPU is descheduled by the hypervisor's pause-loop detection, and the
// next region waits for it to be scheduled again: decoding at 2 threads ran 2.5x slower than at 1. A short spin
// avoids that and costs nothing where regions are long. libgomp reads its settings once, when it is loaded, so the
// only way to change them from inside is to start the program again: when neither OMP_WAIT_POLICY nor
// GOMP_SPINCOUNT is set, this sets GOMP_SPINCOUNT to kShortSpinCount and re-executes argv (/proc/self/exe); it
// returns (doing nothing) when either is set or the re-exec fails. Call first thing in main().
inline constexpr int kShortSpinCount = 1000;
void restart_with_short_thread_spin(char** argv);

}  // namespace hax
