// The registry of op cases (see op_harness.h) and the parameterized tests that run every check on every case.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/ops/accuracy.h"
#include "hax/ops/accuracy_ref.h"
#include "hax/ops/activations.h"
#include "hax/ops/activations_ref.h"
#include "hax/ops/conv1d.h"
#include "hax/ops/conv1d_ref.h"
#include "hax/ops/cross_entropy.h"
#include "hax/ops/cross_entropy_ref.h"
#include "hax/ops/embedding.h"
#include "hax/ops/embedding_ref.h"
#include "hax/ops/linear.h"
#include "hax/ops/linear_ref.h"
#include "hax/ops/residual.h"
#include "hax/ops/residual_ref.h"
#include "hax/ops/rmsnorm.h"
#include "hax/ops/rmsnorm_ref.h"
#include "op_harness.h"

namespace hax::ops::testing {
namespace {

std::size_t size(int a, int b = 1, int c = 1, int d = 1) { return std::size_t(a) * b * c * d; }

std::vector<std::int32_t> random_ids(std::size_t n, int below, Rng& rng) {
  std::vector<std::int32_t> ids(n);
  for (auto& id : ids) id = static_cast<std::int32_t>(rng.below(below));
  return ids;
}

// 1 with probability `density`.
std::vector<std::uint8_t> random_mask(std::size_t n, double density, Rng& rng) {
  std::vector<std::uint8_t> mask(n);
  for (auto& m : mask) m = rng.uniform_double() < density;
  return mask;
}

class EmbeddingCase : public OpCaseOf<EmbeddingCase> {
 public:
  EmbeddingCase(std::uint64_t seed, int M, int V, int D)
      : OpCaseOf(cat("embedding_M", M, "_V", V, "_D", D, "_seed", seed), seed), M_(M), V_(V), D_(D) {
    add_input({.name = "table", .size = size(V, D)});
    set_out_size(size(M, D));
    Rng rng = Rng(seed).fork(kIntegerInputs);
    ids_ = random_ids(M, V, rng);  // M > V repeats ids, so backward must add several rows into one
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    kernel<Real>(embedding_forward, ref::embedding_forward<Real>)(b.out.data(), ids_.data(), b.input(0), M_, V_, D_);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(embedding_backward, ref::embedding_backward<Real>)(b.gradient(0), b.dout.data(), ids_.data(), M_, V_,
                                                                    D_);
  }

 private:
  int M_, V_, D_;
  std::vector<std::int32_t> ids_;
};

class LinearCase : public OpCaseOf<LinearCase> {
 public:
  LinearCase(std::uint64_t seed, int M, int K, int N, bool bias)
      : OpCaseOf(cat("linear_M", M, "_K", K, "_N", N, bias ? "" : "_nobias", "_seed", seed), seed),
        M_(M),
        K_(K),
        N_(N) {
    add_input({.name = "x", .size = size(M, K), .grad_optional = true});
    add_input({.name = "W", .size = size(N, K), .grad_optional = true});
    if (bias) bias_ = add_input({.name = "b", .size = size(N), .grad_optional = true});
    set_out_size(size(M, N));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    kernel<Real>(linear_forward, ref::linear_forward<Real>)(b.out.data(), b.input(0), b.input(1), b.input(bias_), M_,
                                                            K_, N_);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(linear_backward, ref::linear_backward<Real>)(b.gradient(0), b.gradient(1), b.gradient(bias_),
                                                              b.dout.data(), b.input(0), b.input(1), M_, K_, N_);
  }

 private:
  int M_, K_, N_, bias_ = -1;
};

class TiedOutputCase : public OpCaseOf<TiedOutputCase> {
 public:
  TiedOutputCase(std::uint64_t seed, int M, int D, int V)
      : OpCaseOf(cat("tied_output_M", M, "_D", D, "_V", V, "_seed", seed), seed), M_(M), D_(D), V_(V) {
    add_input({.name = "h", .size = size(M, D), .grad_optional = true});
    add_input({.name = "E", .size = size(V, D), .grad_optional = true});
    set_out_size(size(M, V));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    kernel<Real>(tied_output_forward, ref::tied_output_forward<Real>)(b.out.data(), b.input(0), b.input(1), M_, D_, V_);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(tied_output_backward, ref::tied_output_backward<Real>)(b.gradient(0), b.gradient(1), b.dout.data(),
                                                                        b.input(0), b.input(1), M_, D_, V_);
  }

 private:
  int M_, D_, V_;
};

class RmsNormCase : public OpCaseOf<RmsNormCase> {
 public:
  RmsNormCase(std::uint64_t seed, int M, int D)
      : OpCaseOf(cat("rmsnorm_M", M, "_D", D, "_seed", seed), seed), M_(M), D_(D) {
    add_input({.name = "x", .size = size(M, D), .lo = -2.0f, .hi = 2.0f, .grad_optional = true});
    add_input({.name = "w", .size = size(D), .lo = 0.5f, .hi = 1.5f, .grad_optional = true});
    set_out_size(size(M, D));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    b.saved.resize(M_);
    kernel<Real>(rmsnorm_forward, ref::rmsnorm_forward<Real>)(b.out.data(), b.saved.data(), b.input(0), b.input(1), M_,
                                                              D_, Real(1e-5f));
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(rmsnorm_backward, ref::rmsnorm_backward<Real>)(b.gradient(0), b.gradient(1), b.dout.data(), b.input(0),
                                                                b.input(1), b.saved.data(), M_, D_);
  }

 private:
  int M_, D_;
};

class SiluCase : public OpCaseOf<SiluCase> {
 public:
  SiluCase(std::uint64_t seed, int n) : OpCaseOf(cat("silu_n", n, "_seed", seed), seed), n_(n) {
    add_input({.name = "x", .size = size(n), .lo = -12.0f, .hi = 12.0f});
    set_out_size(size(n));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    kernel<Real>(silu_forward, ref::silu_forward<Real>)(b.out.data(), b.input(0), n_);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(silu_backward, ref::silu_backward<Real>)(b.gradient(0), b.dout.data(), b.input(0), n_);
  }

 private:
  std::size_t n_;
};

class SoftplusCase : public OpCaseOf<SoftplusCase> {
 public:
  // Inputs span both sides of the threshold (20) and the range where exp(-|x|) underflows in float.
  SoftplusCase(std::uint64_t seed, int n) : OpCaseOf(cat("softplus_n", n, "_seed", seed), seed), n_(n) {
    add_input({.name = "x", .size = size(n), .lo = -30.0f, .hi = 30.0f});
    set_out_size(size(n));
  }
  // Softplus jumps by 2e-9 at the threshold: keep finite differences from straddling it.
  void adjust_inputs(std::vector<std::vector<float>>& inputs) const override {
    for (float& x : inputs[0])
      if (std::abs(x - kSoftplusThreshold) < 1e-3f) x += 0.01f;
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    kernel<Real>(softplus_forward, ref::softplus_forward<Real>)(b.out.data(), b.input(0), n_);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(softplus_backward, ref::softplus_backward<Real>)(b.gradient(0), b.dout.data(), b.input(0), n_);
  }

 private:
  std::size_t n_;
};

class ResidualCase : public OpCaseOf<ResidualCase> {
 public:
  ResidualCase(std::uint64_t seed, int n) : OpCaseOf(cat("residual_n", n, "_seed", seed), seed), n_(n) {
    add_input({.name = "a", .size = size(n), .grad_optional = true});
    add_input({.name = "b", .size = size(n), .grad_optional = true});
    set_out_size(size(n));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    kernel<Real>(residual_forward, ref::residual_forward<Real>)(b.out.data(), b.input(0), b.input(1), n_);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(residual_backward, ref::residual_backward<Real>)(b.gradient(0), b.gradient(1), b.dout.data(), n_);
  }

 private:
  std::size_t n_;
};

class Conv1dCase : public OpCaseOf<Conv1dCase> {
 public:
  Conv1dCase(std::uint64_t seed, int B, int T, int C, int K, bool bias, bool state)
      : OpCaseOf(
            cat("conv1d_B", B, "_T", T, "_C", C, "_K", K, bias ? "" : "_nobias", state ? "_state" : "", "_seed", seed),
            seed),
        B_(B),
        T_(T),
        C_(C),
        K_(K) {
    add_input({.name = "x", .size = size(B, T, C), .grad_optional = true});
    add_input({.name = "w", .size = size(C, K), .lo = -0.5f, .hi = 0.5f, .grad_optional = true});
    if (bias) bias_ = add_input({.name = "b", .size = size(C), .grad_optional = true});
    if (state) state_ = add_input({.name = "x_prev", .size = size(B, K - 1, C), .grad_optional = true});
    set_out_size(size(B, T, C));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    kernel<Real>(conv1d_causal_forward, ref::conv1d_causal_forward<Real>)(
        b.out.data(), b.input(0), b.input(1), b.input(bias_), b.input(state_), B_, T_, C_, K_);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(conv1d_causal_backward, ref::conv1d_causal_backward<Real>)(
        b.gradient(0), b.gradient(1), b.gradient(bias_), b.gradient(state_), b.dout.data(), b.input(0), b.input(1),
        b.input(state_), B_, T_, C_, K_);
  }

 private:
  int B_, T_, C_, K_, bias_ = -1, state_ = -1;
};

class CrossEntropyCase : public OpCaseOf<CrossEntropyCase> {
 public:
  // mask_density 0 gives a batch without scored rows.
  CrossEntropyCase(std::uint64_t seed, int M, int V, double mask_density)
      : OpCaseOf(cat("cross_entropy_M", M, "_V", V, "_mask", int(mask_density * 100), "pct_seed", seed), seed),
        M_(M),
        V_(V) {
    add_input({.name = "logits", .size = size(M, V), .lo = -4.0f, .hi = 4.0f});
    set_out_size(1);
    Rng rng = Rng(seed).fork(kIntegerInputs);
    labels_ = random_ids(M, V, rng);
    mask_ = random_mask(M, mask_density, rng);
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    b.out[0] = Real(kernel<Real>(cross_entropy_forward, ref::cross_entropy_forward<Real>)(b.input(0), labels_.data(),
                                                                                          mask_.data(), M_, V_));
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(cross_entropy_backward, ref::cross_entropy_backward<Real>)(b.gradient(0), b.dout[0], b.input(0),
                                                                            labels_.data(), mask_.data(), M_, V_);
  }

 private:
  int M_, V_;
  std::vector<std::int32_t> labels_;
  std::vector<std::uint8_t> mask_;
};

// No gradient: only the fast-vs-reference check applies. Output: the per-sequence values, then the batch mean.
class AccuracyCase : public OpCaseOf<AccuracyCase> {
 public:
  AccuracyCase(std::uint64_t seed, int B, int T, int V, double mask_density)
      : OpCaseOf(cat("accuracy_B", B, "_T", T, "_V", V, "_mask", int(mask_density * 100), "pct_seed", seed), seed),
        B_(B),
        T_(T),
        V_(V) {
    add_input({.name = "logits", .size = size(B, T, V), .lo = -2.0f, .hi = 3.0f, .differentiable = false});
    set_out_size(size(B) + 1);
    Rng rng = Rng(seed).fork(kIntegerInputs);
    labels_ = random_ids(size(B, T), V, rng);
    mask_ = random_mask(size(B, T), mask_density, rng);
  }
  // Integer logits in [-2, 2]: rows have tied maxima, so both versions must pick the first.
  void adjust_inputs(std::vector<std::vector<float>>& inputs) const override {
    for (float& x : inputs[0]) x = std::floor(x);
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    std::vector<double> per_sequence(B_);
    const double mean = kernel<Real>(sequence_accuracy, ref::sequence_accuracy<Real>)(
        per_sequence.data(), b.input(0), labels_.data(), mask_.data(), B_, T_, V_);
    for (int s = 0; s < B_; ++s) b.out[s] = Real(per_sequence[s]);
    b.out[B_] = Real(mean);
  }
  template <class Real>
  void run_backward(Buffers<Real>&) const {}

 private:
  int B_, T_, V_;
  std::vector<std::int32_t> labels_;
  std::vector<std::uint8_t> mask_;
};

// Random shapes from odd sizes, one case per op and seed. (Sizes are drawn into named locals, one per statement,
// because the order in which function arguments are evaluated is unspecified.)
void add_random_cases(std::vector<OpCasePtr>& cases, std::uint64_t seed) {
  Rng rng = Rng(seed).fork(99);
  constexpr int kSizes[] = {1, 3, 7, 17, 33};
  auto pick = [&] { return kSizes[rng.below(std::size(kSizes))]; };
  const int M = pick(), N = pick(), K = pick(), D = pick(), V = pick(), B = pick(), T = pick(), C = pick();
  const int taps = 1 + int(rng.below(5));
  const bool bias = rng.below(2) == 1;
  cases.push_back(std::make_shared<EmbeddingCase>(seed, M, V, D));
  cases.push_back(std::make_shared<LinearCase>(seed, M, K, N, true));
  cases.push_back(std::make_shared<LinearCase>(seed, N, M, K, false));
  cases.push_back(std::make_shared<TiedOutputCase>(seed, M, D, V));
  cases.push_back(std::make_shared<RmsNormCase>(seed, M, D));
  cases.push_back(std::make_shared<SiluCase>(seed, M * N));
  cases.push_back(std::make_shared<SoftplusCase>(seed, M * K));
  cases.push_back(std::make_shared<ResidualCase>(seed, N * K));
  cases.push_back(std::make_shared<Conv1dCase>(seed, B, T, C, taps, bias, false));
  cases.push_back(std::make_shared<Conv1dCase>(seed, B, T, C, taps, !bias, true));
  cases.push_back(std::make_shared<CrossEntropyCase>(seed, M * B, V, 0.6));
  cases.push_back(std::make_shared<AccuracyCase>(seed, B, T, V, 0.3));
}

// The shapes the models use (D=64, I=128, K=4, V=100), small in rows, and the edge cases.
void add_model_cases(std::vector<OpCasePtr>& cases) {
  constexpr std::uint64_t seed = 100;
  cases.push_back(std::make_shared<EmbeddingCase>(seed, 9, 100, 64));
  cases.push_back(std::make_shared<LinearCase>(seed, 5, 64, 256, false));
  cases.push_back(std::make_shared<LinearCase>(seed, 6, 8, 128, true));
  cases.push_back(std::make_shared<TiedOutputCase>(seed, 5, 64, 100));
  cases.push_back(std::make_shared<RmsNormCase>(seed, 4, 64));
  cases.push_back(std::make_shared<Conv1dCase>(seed, 2, 9, 128, 4, true, false));
  cases.push_back(std::make_shared<Conv1dCase>(seed, 2, 2, 16, 4, true, true));  // T < K-1: all taps but one in x_prev
  cases.push_back(std::make_shared<CrossEntropyCase>(seed, 40, 100, 0.3));
  cases.push_back(std::make_shared<CrossEntropyCase>(seed, 7, 100, 0.0));  // no scored row: loss 0, no gradient
  cases.push_back(std::make_shared<AccuracyCase>(seed, 5, 33, 100, 0.5));
  cases.push_back(std::make_shared<AccuracyCase>(seed, 4, 17, 3, 0.5));  // V = 3: ties are frequent
}

// Sizes above kMinParallelElements (ops/parallel.h), so that every op's multi-threaded path runs too.
void add_threaded_cases(std::vector<OpCasePtr>& cases) {
  constexpr std::uint64_t seed = 200;
  constexpr int kLong = (1 << 15) + 17;
  cases.push_back(std::make_shared<SiluCase>(seed, kLong));
  cases.push_back(std::make_shared<SoftplusCase>(seed, kLong));
  cases.push_back(std::make_shared<ResidualCase>(seed, kLong));
  cases.push_back(std::make_shared<EmbeddingCase>(seed, 600, 100, 64));
  cases.push_back(std::make_shared<LinearCase>(seed, 300, 5, 129, true));
  cases.push_back(std::make_shared<RmsNormCase>(seed, 520, 64));
  cases.push_back(std::make_shared<Conv1dCase>(seed, 3, 100, 33, 4, true, true));
  cases.push_back(std::make_shared<CrossEntropyCase>(seed, 400, 100, 0.3));
  cases.push_back(std::make_shared<AccuracyCase>(seed, 8, 50, 100, 0.3));
}

}  // namespace

std::vector<OpCasePtr> all_op_cases() {
  std::vector<OpCasePtr> cases;
  for (std::uint64_t seed = 1; seed <= 4; ++seed) add_random_cases(cases, seed);
  add_model_cases(cases);
  add_threaded_cases(cases);
  return cases;
}

void PrintTo(const OpCasePtr& op, std::ostream* os) { *os << op->name(); }

namespace {

// One test per case running every check (one ctest process per case keeps the suite fast); a failure names its
// check, its tensor and the worst element.
class OpTest : public ::testing::TestWithParam<OpCasePtr> {};

TEST_P(OpTest, PassesAllChecks) {
  check_all(*GetParam());
}

INSTANTIATE_TEST_SUITE_P(Ops, OpTest, ::testing::ValuesIn(all_op_cases()),
                         [](const ::testing::TestParamInfo<OpCasePtr>& info) { return info.param->name(); });

}  // namespace
}  // namespace hax::ops::testing
