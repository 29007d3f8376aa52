// The chunked SSD kernel (ops/ssd.h) against the plain sequential recurrence (ops/ssd_ref.h), and the properties the
// Mamba2 layer relies on: chunk size and thread count change at most rounding, and a sequence run in two parts,
// the second starting from the first's final state, gives the whole sequence's results forward and backward.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/ops/ssd.h"
#include "hax/ops/ssd_ref.h"

namespace hax::ops::testing {
namespace {

enum Tensor { kX, kDtRaw, kDtBias, kALog, kBm, kCm, kD, kH0, kNumTensors };
const char* const kNames[kNumTensors] = {"x", "dt_raw", "dt_bias", "A_log", "Bm", "Cm", "D", "h0"};

// One sequence's inputs, the loss weights dy and dhT (L = Σ dy · y + Σ dhT · hT), in float or double.
template <class S>
struct Problem {
  SsdShape shape;
  std::array<std::vector<S>, kNumTensors> in;
  std::vector<S> dy, dhT;
  // The drop-in op's form (capi/): A itself in the A_log slot, no dt_bias, no softplus on dt.
  bool drop_in = false;

  std::size_t row(Tensor t) const {  // floats per time step of a per-position tensor
    return t == kX       ? std::size_t(shape.heads) * shape.head_dim
           : t == kDtRaw ? std::size_t(shape.heads)
                         : std::size_t(shape.groups) * shape.state;
  }
  // Inputs of positions [t0, T): per-position tensors start at row t0.
  SsdInputs<S> inputs(int t0 = 0) const {
    SsdInputs<S> i{in[kX].data() + t0 * row(kX),
                   in[kDtRaw].data() + t0 * row(kDtRaw),
                   in[kDtBias].data(),
                   in[kALog].data(),
                   in[kBm].data() + t0 * row(kBm),
                   in[kCm].data() + t0 * row(kCm),
                   in[kD].data(),
                   in[kH0].empty() ? nullptr : in[kH0].data()};
    if (drop_in) std::swap(i.A, i.A_log), i.dt_bias = nullptr, i.dt_softplus = false;
    return i;
  }
};

template <class S>
struct Result {
  std::vector<S> y, hT;
  std::array<std::vector<S>, kNumTensors> grad;  // zero-filled, the sizes of the inputs

  // Gradients of positions [t0, T), as Problem::inputs.
  SsdGrads<S> grads(const Problem<S>& p, int t0 = 0) {
    auto at = [&](Tensor t, std::size_t offset) { return grad[t].empty() ? nullptr : grad[t].data() + offset; };
    SsdGrads<S> g{at(kX, t0 * p.row(kX)),   at(kDtRaw, t0 * p.row(kDtRaw)), at(kDtBias, 0), at(kALog, 0),
                  at(kBm, t0 * p.row(kBm)), at(kCm, t0 * p.row(kCm)),       at(kD, 0),      at(kH0, 0)};
    if (p.drop_in) std::swap(g.dA, g.dA_log), g.ddt_bias = nullptr;
    return g;
  }
};

// Values drawn in float, so that the float and double versions hold the same numbers.
Problem<double> make_problem(std::uint64_t seed, SsdShape shape, bool h0, bool dhT) {
  Rng rng(seed);
  const std::size_t T = shape.seq_len, H = shape.heads, P = shape.head_dim, G = shape.groups, N = shape.state;
  auto draw = [&rng](std::size_t count, float mean, float stddev) {
    std::vector<float> f(count);
    rng.fill_normal(f, mean, stddev);
    return std::vector<double>(f.begin(), f.end());
  };
  Problem<double> p;
  p.shape = shape;
  p.in[kX] = draw(T * H * P, 0.0f, 1.0f);
  p.in[kDtRaw] = draw(T * H, 0.0f, 0.5f);
  p.in[kDtBias] = draw(H, -1.5f, 1.0f);  // dt from about 0.05 to 1.5
  p.in[kALog] = draw(H, 0.5f, 0.7f);
  p.in[kBm] = draw(T * G * N, 0.0f, 1.0f);
  p.in[kCm] = draw(T * G * N, 0.0f, 1.0f);
  p.in[kD] = draw(H, 1.0f, 0.3f);
  if (h0) p.in[kH0] = draw(H * P * N, 0.0f, 1.0f);
  p.dy = draw(T * H * P, 0.0f, 1.0f);
  if (dhT) p.dhT = draw(H * P * N, 0.0f, 1.0f);
  return p;
}

Problem<float> to_float(const Problem<double>& p) {
  Problem<float> f;
  f.shape = p.shape;
  for (int t = 0; t < kNumTensors; ++t) f.in[t].assign(p.in[t].begin(), p.in[t].end());
  f.dy.assign(p.dy.begin(), p.dy.end());
  f.dhT.assign(p.dhT.begin(), p.dhT.end());
  f.drop_in = p.drop_in;
  return f;
}

template <class S>
Result<S> empty_result(const Problem<S>& p) {
  Result<S> r;
  r.y.assign(p.dy.size(), S(0));
  r.hT.assign(std::size_t(p.shape.heads) * p.shape.head_dim * p.shape.state, S(0));
  for (int t = 0; t < kNumTensors; ++t) r.grad[t].assign(p.in[t].size(), S(0));
  return r;
}

// Runs forward and backward on positions [t0, t0 + shape.seq_len) of p into r (gradients accumulate), with the
// initial state h0 and the final-state gradient dhT given explicitly (null: none). The fast kernel for float, the
// reference for double.
template <class S>
void run(const Problem<S>& p, SsdShape shape, int t0, const S* h0, const S* dhT, Result<S>& r, S* hT,
         S* dh0 = nullptr) {
  SsdInputs<S> in = p.inputs(t0);
  in.h0 = h0;
  SsdGrads<S> g = r.grads(p, t0);
  g.dh0 = dh0;
  const std::size_t y_at = t0 * p.row(kX);
  if constexpr (std::is_same_v<S, float>) {
    std::vector<float> saved(ssd_saved_floats(shape));
    ssd_forward(shape, in, r.y.data() + y_at, hT, saved.data());
    ssd_backward(shape, in, saved.data(), p.dy.data() + y_at, dhT, g);
  } else {
    ref::ssd_forward(shape, in, r.y.data() + y_at, hT);
    ref::ssd_backward(shape, in, p.dy.data() + y_at, dhT, g);
  }
}

template <class S>
Result<S> run_whole(const Problem<S>& p) {
  Result<S> r = empty_result(p);
  const S* h0 = p.in[kH0].empty() ? nullptr : p.in[kH0].data();
  const S* dhT = p.dhT.empty() ? nullptr : p.dhT.data();
  run(p, p.shape, 0, h0, dhT, r, r.hT.data(), r.grad[kH0].empty() ? nullptr : r.grad[kH0].data());
  return r;
}

// max |got - want| <= tol * max(1, max |want|), per tensor.
template <class A, class B>
void expect_close(const std::vector<A>& got, const std::vector<B>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 1.0, worst = 0.0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::abs(double(want[i])));
    const double err = std::abs(double(got[i]) - double(want[i]));
    if (!(err <= worst)) worst = err, worst_at = i;  // also catches NaN
  }
  EXPECT_LE(worst, tol * scale) << what << "[" << worst_at << "]: " << got[worst_at] << " vs " << want[worst_at];
}

template <class A, class B>
void expect_results_close(const Result<A>& got, const Result<B>& want, double tol) {
  expect_close(got.y, want.y, tol, "y");
  expect_close(got.hT, want.hT, tol, "hT");
  for (int t = 0; t < kNumTensors; ++t) expect_close(got.grad[t], want.grad[t], tol, std::string("d") + kNames[t]);
}

constexpr double kFloatTolerance = 2e-5;

TEST(FastSsd, MatchesTheSequentialRecurrenceForEveryChunkSize) {
  const Problem<double> p = make_problem(1, {45, 4, 6, 2, 5, 64}, true, true);
  const Result<double> want = run_whole(p);
  for (int chunk : {1, 2, 7, 8, 16, 45, 64, 100}) {  // dividing T or not, T < chunk
    SCOPED_TRACE(chunk);
    Problem<float> f = to_float(p);
    f.shape.chunk = chunk;
    expect_results_close(run_whole(f), want, kFloatTolerance);
  }
}

TEST(FastSsd, MatchesTheSequentialRecurrenceAtTheModelShapes) {
  // mamba2.json (H = 8, P = 16, N = 32) and the double-size config (P = 32), chunk 64, without h0 or dhT.
  for (int P : {16, 32}) {
    SCOPED_TRACE(P);
    const Problem<double> p = make_problem(2, {150, 8, P, 1, 32, 64}, false, false);
    expect_results_close(run_whole(to_float(p)), run_whole(p), kFloatTolerance);
  }
}

TEST(FastSsd, MatchesTheSequentialRecurrenceInTheDropInForm) {
  Problem<double> p = make_problem(5, {45, 4, 6, 2, 5, 16}, true, true);
  p.drop_in = true;
  for (double& a : p.in[kALog]) a = static_cast<float>(-std::exp(a));
  for (double& v : p.in[kDtRaw]) v = static_cast<float>(std::log1p(std::exp(v - 1.0)));  // dt >= 0 without softplus
  expect_results_close(run_whole(to_float(p)), run_whole(p), kFloatTolerance);
}

TEST(FastSsd, StaysAccurateWithFastDecays) {
  // dt A down to about -40 per step: whole chunks decay to exactly zero in float; no NaN or inf may appear.
  Problem<double> p = make_problem(3, {70, 3, 4, 1, 6, 32}, true, true);
  for (double& a : p.in[kALog]) a += 3.0;
  for (double& b : p.in[kDtBias]) b += 2.0;
  expect_results_close(run_whole(to_float(p)), run_whole(p), kFloatTolerance);
}

template <class S>
bool same_bits(const Result<S>& a, const Result<S>& b) {
  bool same = a.y == b.y && a.hT == b.hT;
  for (int t = 0; t < kNumTensors; ++t) same = same && a.grad[t] == b.grad[t];
  return same;
}

// Heads are independent and cross-head sums are added in head order: the thread count changes no bit, and neither
// does running inside a parallel loop over sequences (where the kernel's own region is inactive).
TEST(FastSsd, ThreadCountDoesNotChangeAnyBit) {
  const Problem<float> p = to_float(make_problem(4, {300, 4, 8, 2, 8, 32}, true, true));  // heads in parallel
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Result<float> one = run_whole(p);
  omp_set_num_threads(3);
  const Result<float> three = run_whole(p);
  omp_set_num_threads(threads);
  EXPECT_TRUE(same_bits(one, three));

  std::vector<Result<float>> nested(2);
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 2; ++i) nested[i] = run_whole(p);
  EXPECT_TRUE(same_bits(nested[0], one));
  EXPECT_TRUE(same_bits(nested[1], one));
}

// Positions [0, split) from h0, then [split, T) from the first part's final state, equal the whole sequence; and
// the second part's dh0, fed back as the first part's dhT, gives the whole sequence's gradients. Per-position
// results are written through offset pointers and per-head gradients accumulate over both calls.
template <class S>
void expect_two_parts_equal_the_whole(const Problem<S>& p, int split, double tol) {
  const Result<S> want = run_whole(p);
  const std::size_t state = want.hT.size();
  SsdShape first = p.shape, second = p.shape;
  first.seq_len = split;
  second.seq_len = p.shape.seq_len - split;

  Result<S> parts = empty_result(p);
  std::vector<S> h_mid(state), dh_mid(state, S(0));
  // The second part needs the first's final state before its backward, whose dh0 the first part's backward needs.
  SsdInputs<S> in = p.inputs();
  if constexpr (std::is_same_v<S, float>)
    ssd_forward(first, in, parts.y.data(), h_mid.data(), nullptr);
  else
    ref::ssd_forward(first, in, parts.y.data(), h_mid.data());
  run(p, second, split, h_mid.data(), p.dhT.data(), parts, parts.hT.data(), dh_mid.data());
  std::vector<S> hT_first(state);
  run(p, first, 0, p.in[kH0].data(), dh_mid.data(), parts, hT_first.data(), parts.grad[kH0].data());
  expect_close(hT_first, h_mid, 0.0, "h_mid");
  expect_results_close(parts, want, tol);
}

TEST(ReferenceSsd, TwoPartsFromTheFinalStateEqualTheWhole) {
  expect_two_parts_equal_the_whole(make_problem(5, {45, 3, 4, 3, 5, 64}, true, true), 19, 1e-12);
}

TEST(FastSsd, TwoPartsFromTheFinalStateEqualTheWhole) {
  // Split off the chunk grid (chunk 8): the parts' chunks are not the whole's, so they agree up to rounding.
  expect_two_parts_equal_the_whole(to_float(make_problem(6, {45, 3, 4, 3, 5, 8}, true, true)), 19, kFloatTolerance);
  // Split on the chunk grid.
  expect_two_parts_equal_the_whole(to_float(make_problem(7, {64, 2, 8, 1, 16, 16}, true, true)), 32, kFloatTolerance);
}

TEST(FastSsd, EmptySequencePassesTheStateThrough) {
  const Problem<float> p = to_float(make_problem(8, {0, 2, 3, 1, 4, 64}, true, true));
  const Result<float> r = run_whole(p);
  EXPECT_EQ(r.hT, p.in[kH0]);
  EXPECT_EQ(r.grad[kH0], p.dhT);
}

// The recurrent step kernel (streaming): positions fed in pieces of any size, the state carried in place, give the
// reference's outputs and final state; also in the drop-in form and at a size whose heads run in parallel.
void expect_steps_match_the_reference(Problem<double> p, const std::vector<int>& pieces) {
  const Result<double> want = run_whole(p);
  const Problem<float> f = to_float(p);
  std::vector<float> y(f.dy.size()), h = f.in[kH0];
  h.resize(want.hT.size(), 0.0f);
  int t0 = 0;
  for (int piece : pieces) {
    SsdShape shape = f.shape;
    shape.seq_len = piece;
    ssd_step_forward(shape, f.inputs(t0), y.data() + t0 * f.row(kX), h.data());
    t0 += piece;
  }
  ASSERT_EQ(t0, p.shape.seq_len);
  expect_close(y, want.y, kFloatTolerance, "y");
  expect_close(h, want.hT, kFloatTolerance, "h");
}

TEST(FastSsd, StepKernelMatchesTheSequentialRecurrence) {
  expect_steps_match_the_reference(make_problem(10, {12, 4, 6, 2, 5, 64}, true, false), {1, 1, 3, 0, 7});
  expect_steps_match_the_reference(make_problem(11, {5, 3, 4, 1, 6, 8}, false, false), {1, 1, 1, 1, 1});
  Problem<double> drop_in = make_problem(12, {6, 4, 6, 2, 5, 16}, true, false);
  drop_in.drop_in = true;
  for (double& a : drop_in.in[kALog]) a = static_cast<float>(-std::exp(a));
  for (double& v : drop_in.in[kDtRaw]) v = static_cast<float>(std::log1p(std::exp(v - 1.0)));
  expect_steps_match_the_reference(drop_in, {2, 4});
  expect_steps_match_the_reference(make_problem(13, {40, 8, 32, 1, 128, 64}, true, false), {1, 39});  // parallel
}

TEST(FastSsd, RejectsBadShapesAndArguments) {
  const Problem<float> p = to_float(make_problem(9, {10, 4, 3, 2, 5, 8}, true, false));
  std::vector<float> y(p.dy.size()), hT(4 * 3 * 5), saved(ssd_saved_floats(p.shape));
  auto forward = [&](SsdShape shape) { ssd_forward(shape, p.inputs(), y.data(), hT.data(), saved.data()); };
  EXPECT_THROW(forward({10, 4, 3, 3, 5, 8}), Error);  // H % G != 0
  EXPECT_THROW(forward({10, 4, 3, 2, 5, 0}), Error);  // chunk 0
  EXPECT_THROW(forward({10, 0, 3, 2, 5, 8}), Error);  // no heads
  EXPECT_THROW(forward({-1, 4, 3, 2, 5, 8}), Error);  // negative length
  SsdInputs<float> aliased = p.inputs();
  aliased.h0 = hT.data();
  EXPECT_THROW(ssd_forward(p.shape, aliased, y.data(), hT.data(), nullptr), Error);
  SsdInputs<float> missing = p.inputs();
  missing.Bm = nullptr;
  EXPECT_THROW(ssd_forward(p.shape, missing, y.data(), hT.data(), nullptr), Error);
  EXPECT_THROW(ssd_backward(p.shape, p.inputs(), nullptr, p.dy.data(), nullptr, {}), Error);  // no saved states
  EXPECT_THROW(ssd_step_forward(p.shape, p.inputs(), y.data(), nullptr), Error);            // no state
  EXPECT_THROW(ssd_step_forward({10, 4, 3, 3, 5, 8}, p.inputs(), y.data(), hT.data()), Error);
}

}  // namespace
}  // namespace hax::ops::testing
