// GEMM through OpenBLAS, row-major, and the one place that decides how many threads the engine uses.
#pragma once

namespace hax {

enum class Trans { No, Yes };

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, all row-major with leading dimensions lda/ldb/ldc.
void gemm(Trans trans_a, Trans trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc);

// Sets the thread count for our OpenMP loops and for OpenBLAS together (n <= 0: all cores).
void set_num_threads(int n);
int num_threads();

}  // namespace hax
