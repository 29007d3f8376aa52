// gemm's one-row path (a GEMV, what every decoded token runs) against a plain triple loop, for every transpose
// combination, leading dimensions wider than the matrices, and beta 0 over garbage.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "hax/engine/blas.h"
#include "hax/engine/rng.h"
#include "hax/ops/linear.h"
#include "hax/ops/linear_ref.h"

namespace hax {
namespace {

struct GemmCase {
  Trans ta, tb;
  int M, N, K;
  float beta;
};

// C (M, N) = op(A) op(B) + beta C in double, element by element.
std::vector<float> gemm_by_loops(const GemmCase& c, const std::vector<float>& A, int lda, const std::vector<float>& B,
                                 int ldb, const std::vector<float>& C0, int ldc) {
  std::vector<float> C = C0;
  for (int m = 0; m < c.M; ++m)
    for (int n = 0; n < c.N; ++n) {
      double sum = 0;
      for (int k = 0; k < c.K; ++k) {
        const double a = c.ta == Trans::Yes ? A[std::size_t(k) * lda + m] : A[std::size_t(m) * lda + k];
        const double b = c.tb == Trans::Yes ? B[std::size_t(n) * ldb + k] : B[std::size_t(k) * ldb + n];
        sum += a * b;
      }
      float& out = C[std::size_t(m) * ldc + n];
      out = static_cast<float>(sum + (c.beta == 0.0f ? 0.0 : double(c.beta) * out));
    }
  return C;
}

TEST(Gemm, OneRowMatchesLoopsForEveryTransposeAndBeta) {
  for (Trans ta : {Trans::No, Trans::Yes})
    for (Trans tb : {Trans::No, Trans::Yes})
      for (float beta : {0.0f, 1.0f, 0.5f})
        for (int M : {1, 2}) {
          const GemmCase c{ta, tb, M, 37, 45, beta};
          SCOPED_TRACE(testing::Message() << "ta " << int(ta) << " tb " << int(tb) << " beta " << beta << " M " << M);
          // Leading dimensions 3 wider than needed: the path must honour them.
          const int lda = (ta == Trans::Yes ? c.M : c.K) + 3, ldb = (tb == Trans::Yes ? c.K : c.N) + 3, ldc = c.N + 3;
          std::vector<float> A(std::size_t(lda) * (ta == Trans::Yes ? c.K : c.M));
          std::vector<float> B(std::size_t(ldb) * (tb == Trans::Yes ? c.N : c.K));
          std::vector<float> C(std::size_t(ldc) * c.M);
          Rng rng(11);
          rng.fill_normal(A, 0.0f, 1.0f);
          rng.fill_normal(B, 0.0f, 1.0f);
          rng.fill_normal(C, 0.0f, 1.0f);
          // beta = 0 must ignore what C held, NaN included (an uninitialized arena).
          if (beta == 0.0f) std::fill(C.begin(), C.end(), std::numeric_limits<float>::quiet_NaN());
          const std::vector<float> want = gemm_by_loops(c, A, lda, B, ldb, C, ldc);
          gemm(ta, tb, c.M, c.N, c.K, 1.0f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
          for (int m = 0; m < c.M; ++m)
            for (int n = 0; n < c.N; ++n) {
              const std::size_t i = std::size_t(m) * ldc + n;
              EXPECT_NEAR(C[i], want[i], 1e-4f * (1.0f + std::fabs(want[i]))) << "at " << m << ", " << n;
            }
        }
}

// gemv_rows (the decoded token's per-thread projection): every row count around its blocks of eight and four, every K around
// its eight lanes, with and without a bias, against the reference linear layer in double.
TEST(GemvRows, MatchesTheReferenceLinearLayer) {
  for (int rows : {1, 3, 4, 5, 8, 9, 13, 21})
    for (int K : {1, 7, 8, 45})
      for (bool bias : {false, true}) {
        SCOPED_TRACE(testing::Message() << rows << " rows, K " << K << (bias ? ", bias" : ""));
        Rng rng(rows * 100 + K);
        std::vector<float> W(std::size_t(rows) * K), x(K), b(rows), y(rows, std::numeric_limits<float>::quiet_NaN());
        rng.fill_normal(W, 0.0f, 1.0f);
        rng.fill_normal(x, 0.0f, 1.0f);
        rng.fill_normal(b, 0.0f, 1.0f);
        std::vector<double> Wd(W.begin(), W.end()), xd(x.begin(), x.end()), bd(b.begin(), b.end()), want(rows);
        ops::ref::linear_forward(want.data(), xd.data(), Wd.data(), bias ? bd.data() : nullptr, 1, K, rows);
        ops::gemv_rows(y.data(), W.data(), x.data(), bias ? b.data() : nullptr, rows, K);
        for (int r = 0; r < rows; ++r) EXPECT_NEAR(y[r], want[r], 1e-5 * (1 + std::fabs(want[r]))) << "row " << r;
      }
}

}  // namespace
}  // namespace hax
