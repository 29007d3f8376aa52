// Op cases (see op_harness.h) for the Mamba2 mixer's ops, gated RMSNorm and the SSD scan, with their own
// parameterized suite running every harness check on every case.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "hax/engine/error.h"
#include "hax/ops/gated_rmsnorm.h"
#include "hax/ops/gated_rmsnorm_ref.h"
#include "hax/ops/ssd.h"
#include "hax/ops/ssd_ref.h"
#include "op_harness.h"

namespace hax::ops::testing {
namespace {

std::size_t size(int a, int b = 1, int c = 1) { return std::size_t(a) * b * c; }

class GatedRmsNormCase : public OpCaseOf<GatedRmsNormCase> {
 public:
  GatedRmsNormCase(std::uint64_t seed, int M, int D)
      : OpCaseOf(cat("gated_rmsnorm_M", M, "_D", D, "_seed", seed), seed), M_(M), D_(D) {
    add_input({.name = "y", .size = size(M, D), .lo = -2.0f, .hi = 2.0f, .grad_optional = true});
    add_input({.name = "z", .size = size(M, D), .lo = -4.0f, .hi = 4.0f, .grad_optional = true});
    add_input({.name = "w", .size = size(D), .lo = 0.5f, .hi = 1.5f, .grad_optional = true});
    set_out_size(size(M, D));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    b.saved.resize(M_);
    kernel<Real>(gated_rmsnorm_forward, ref::gated_rmsnorm_forward<Real>)(b.out.data(), b.saved.data(), b.input(0),
                                                                          b.input(1), b.input(2), M_, D_, Real(1e-5f));
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(gated_rmsnorm_backward, ref::gated_rmsnorm_backward<Real>)(b.gradient(0), b.gradient(1), b.gradient(2),
                                                                            b.dout.data(), b.input(0), b.input(1),
                                                                            b.input(2), b.saved.data(), M_, D_);
  }

 private:
  int M_, D_;
};

// Output: y (T, H, P) followed by the final state hT (H, P, N), so the loss weights reach both dy and dhT.
class SsdCase : public OpCaseOf<SsdCase> {
 public:
  SsdCase(std::uint64_t seed, SsdShape shape, bool skip, bool initial_state)
      : OpCaseOf(cat("ssd_T", shape.seq_len, "_H", shape.heads, "_P", shape.head_dim, "_G", shape.groups, "_N",
                     shape.state, "_Q", shape.chunk, skip ? "" : "_noD", initial_state ? "_h0" : "", "_seed", seed),
                 seed),
        s_(shape) {
    const int T = shape.seq_len, H = shape.heads, P = shape.head_dim, G = shape.groups, N = shape.state;
    x_ = add_input({.name = "x", .size = size(T, H, P), .grad_optional = true});
    dt_raw_ = add_input({.name = "dt_raw", .size = size(T, H), .grad_optional = true});
    // dt from about 0.1 to 1.3, A from -0.6 to -4.5: decays from slow to fast within a chunk.
    dt_bias_ = add_input({.name = "dt_bias", .size = size(H), .lo = -2.0f, .hi = 0.0f, .grad_optional = true});
    A_log_ = add_input({.name = "A_log", .size = size(H), .lo = -0.5f, .hi = 1.5f, .grad_optional = true});
    Bm_ = add_input({.name = "Bm", .size = size(T, G, N), .grad_optional = true});
    Cm_ = add_input({.name = "Cm", .size = size(T, G, N), .grad_optional = true});
    if (skip) D_ = add_input({.name = "D", .size = size(H), .lo = 0.5f, .hi = 1.5f, .grad_optional = true});
    if (initial_state) h0_ = add_input({.name = "h0", .size = size(H, P, N), .grad_optional = true});
    y_size_ = size(T, H, P);
    set_out_size(y_size_ + size(H, P, N));
  }

  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    Real* y = b.out.data();
    Real* hT = y + y_size_;
    if constexpr (std::is_same_v<Real, float>) {
      b.saved.resize(ssd_saved_floats(s_));
      ssd_forward(s_, inputs(b), y, hT, b.saved.data());
    } else {
      ref::ssd_forward(s_, inputs(b), y, hT);
    }
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    const Real* dy = b.dout.data();
    const Real* dhT = dy + y_size_;
    const SsdGrads<Real> g{b.gradient(x_),  b.gradient(dt_raw_), b.gradient(dt_bias_), b.gradient(A_log_),
                           b.gradient(Bm_), b.gradient(Cm_),     b.gradient(D_),       b.gradient(h0_)};
    if constexpr (std::is_same_v<Real, float>)
      ssd_backward(s_, inputs(b), b.saved.data(), dy, dhT, g);
    else
      ref::ssd_backward(s_, inputs(b), dy, dhT, g);
  }

 private:
  template <class Real>
  SsdInputs<Real> inputs(const Buffers<Real>& b) const {
    return {b.input(x_),  b.input(dt_raw_), b.input(dt_bias_), b.input(A_log_),
            b.input(Bm_), b.input(Cm_),     b.input(D_),       b.input(h0_)};
  }

  SsdShape s_;
  std::size_t y_size_ = 0;
  int x_ = -1, dt_raw_ = -1, dt_bias_ = -1, A_log_ = -1, Bm_ = -1, Cm_ = -1, D_ = -1, h0_ = -1;
};

SsdShape ssd_shape(int T, int H, int P, int G, int N, int chunk) { return {T, H, P, G, N, chunk}; }

std::vector<OpCasePtr> mamba2_op_cases() {
  std::vector<OpCasePtr> cases;
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    cases.push_back(std::make_shared<GatedRmsNormCase>(seed, 1 + 6 * int(seed), 3 + 14 * int(seed)));
    // Chunks that divide T, that do not, and one larger than T; G = 1 and G > 1; with and without D and h0.
    cases.push_back(std::make_shared<SsdCase>(seed, ssd_shape(33, 3, 5, 1, 7, 8), true, true));
    cases.push_back(std::make_shared<SsdCase>(seed, ssd_shape(32, 4, 3, 2, 5, 8), true, false));
    cases.push_back(std::make_shared<SsdCase>(seed, ssd_shape(17, 6, 2, 3, 3, 64), false, true));
    cases.push_back(std::make_shared<SsdCase>(seed, ssd_shape(40, 2, 7, 2, 9, 1), true, true));
  }
  cases.push_back(std::make_shared<GatedRmsNormCase>(100, 5, 128));  // the mamba2 config's width I = 128
  cases.push_back(std::make_shared<SsdCase>(100, ssd_shape(1, 2, 3, 1, 4, 64), true, true));     // one position
  cases.push_back(std::make_shared<SsdCase>(100, ssd_shape(70, 8, 16, 1, 32, 64), true, true));  // the config's heads
  // Above kMinParallelElements (ops/parallel.h): one long sequence, heads on several threads; rows over threads.
  cases.push_back(std::make_shared<SsdCase>(200, ssd_shape(203, 4, 8, 2, 8, 32), true, true));
  cases.push_back(std::make_shared<GatedRmsNormCase>(200, 300, 129));
  return cases;
}

class Mamba2OpTest : public ::testing::TestWithParam<OpCasePtr> {};

TEST_P(Mamba2OpTest, PassesAllChecks) {
  check_all(*GetParam());
}

INSTANTIATE_TEST_SUITE_P(Mamba2Ops, Mamba2OpTest, ::testing::ValuesIn(mamba2_op_cases()),
                         [](const ::testing::TestParamInfo<OpCasePtr>& info) { return info.param->name(); });

}  // namespace
}  // namespace hax::ops::testing
