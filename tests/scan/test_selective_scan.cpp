#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "hax/engine/error.h"
#include "hax/ops/selective_scan.h"
#include "scan_case.h"

namespace hax::ops::testing {
namespace {

// L = Σ dy · y + Σ dhT · hT, whose gradient is what the backward computes.
double reference_loss(const ScanCase<double>& c) {
  ScanResult<double> r = empty_result(c);
  ref::selective_scan_forward(c.shape, c.inputs(), r.y.data(), r.hT.data());
  double loss = 0.0;
  for (std::size_t i = 0; i < r.y.size(); ++i) loss += c.dy[i] * r.y[i];
  for (std::size_t i = 0; i < c.dhT.size(); ++i) loss += c.dhT[i] * r.hT[i];
  return loss;
}

// Central differences on every element of every input, against the reference backward, all in double.
void expect_reference_gradients_match_finite_differences(ScanCase<double> c) {
  const ScanResult<double> analytic = run_reference(c);
  constexpr double kStep = 1e-6;
  for (int t = 0; t < kNumTensors; ++t) {
    for (std::size_t i = 0; i < c.in[t].size(); ++i) {
      const double saved = c.in[t][i];
      c.in[t][i] = saved + kStep;
      const double up = reference_loss(c);
      c.in[t][i] = saved - kStep;
      const double down = reference_loss(c);
      c.in[t][i] = saved;
      const double numeric = (up - down) / (2 * kStep);
      EXPECT_NEAR(analytic.grad[t][i], numeric, 1e-6 * (1.0 + std::abs(numeric))) << kTensorNames[t] << "[" << i << "]";
    }
  }
}

TEST(ReferenceScan, GradientsMatchFiniteDifferences) {
  expect_reference_gradients_match_finite_differences(make_case(1, {2, 7, 3, 4}, {}));
}

TEST(ReferenceScan, GradientsMatchFiniteDifferencesWithInitialStateLengthsAndFinalStateGradient) {
  expect_reference_gradients_match_finite_differences(make_case(2, {3, 6, 5, 3}, {true, true, true}));
}

TEST(ReferenceScan, GradientsMatchFiniteDifferencesOnASingleChannelAndState) {
  expect_reference_gradients_match_finite_differences(make_case(3, {1, 9, 1, 1}, {true, false, true}));
}

// max |got - want| <= tol * max(1, max |want|), per tensor: fp32 against the double reference.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 1.0, worst = 0.0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::abs(want[i]));
    if (std::abs(got[i] - want[i]) > worst) worst = std::abs(got[i] - want[i]), worst_at = i;
  }
  EXPECT_LE(worst, tol * scale) << what << "[" << worst_at << "]: " << got[worst_at] << " vs " << want[worst_at];
}

void expect_fast_matches_reference(const ScanCase<double>& c, int chunk) {
  const ScanResult<double> want = run_reference(c);
  const ScanResult<float> got = run_fast(convert<float>(c), chunk);
  constexpr double kTol = 2e-5;
  expect_close(got.y, want.y, kTol, "y");
  expect_close(got.hT, want.hT, kTol, "hT");
  for (int t = 0; t < kNumTensors; ++t)
    expect_close(got.grad[t], want.grad[t], kTol, std::string("d") + kTensorNames[t]);
}

// The drop-in op's forms (capi/): A given directly, z / D / dt_bias left out, no softplus on Δ.
CaseOptions drop_in_options(bool direct_A, bool no_z, bool no_D, bool no_dt_bias, bool no_softplus) {
  CaseOptions o{true, false, true};
  o.direct_A = direct_A, o.no_z = no_z, o.no_D = no_D, o.no_dt_bias = no_dt_bias, o.no_softplus = no_softplus;
  return o;
}

TEST(ReferenceScan, GradientsMatchFiniteDifferencesInTheDropInForms) {
  expect_reference_gradients_match_finite_differences(make_case(4, {2, 6, 3, 4}, drop_in_options(true, true, true, true, true)));
  expect_reference_gradients_match_finite_differences(make_case(5, {2, 6, 3, 4}, drop_in_options(true, false, false, true, false)));
}

TEST(FastScan, MatchesReferenceOnOddSizes) { expect_fast_matches_reference(make_case(10, {3, 45, 37, 5}, {}), 8); }

TEST(FastScan, MatchesReferenceWithInitialStateLengthsAndFinalStateGradient) {
  expect_fast_matches_reference(make_case(11, {4, 70, 40, 16}, {true, true, true}), kScanChunk);
}

TEST(FastScan, MatchesReferenceInEveryDropInForm) {
  for (int form = 0; form < 32; ++form) {
    SCOPED_TRACE(form);
    const CaseOptions o = drop_in_options(form & 1, form & 2, form & 4, form & 8, form & 16);
    expect_fast_matches_reference(make_case(40 + form, {2, 37, 19, 5}, o), 8);
  }
}

TEST(FastScan, MatchesReferenceWithOneChannelAndChunkOne) {
  expect_fast_matches_reference(make_case(12, {2, 13, 1, 3}, {true, true, true}), 1);
}

void expect_same(const ScanResult<float>& a, const ScanResult<float>& b) {
  EXPECT_EQ(a.y, b.y);
  EXPECT_EQ(a.hT, b.hT);
  for (int t = 0; t < kNumTensors; ++t) EXPECT_EQ(a.grad[t], b.grad[t]) << kTensorNames[t];
}

// The backward recomputes each chunk's states with the forward's arithmetic, so the chunk size changes nothing.
TEST(FastScan, ChunkSizeDoesNotChangeAnyBit) {
  const ScanCase<float> c = convert<float>(make_case(20, {3, 50, 20, 16}, {true, true, true}));
  const ScanResult<float> base = run_fast(c, 1);
  for (int chunk : {7, 32, 50, 64}) {
    SCOPED_TRACE(chunk);
    expect_same(run_fast(c, chunk), base);
  }
}

TEST(FastScan, ThreadCountDoesNotChangeAnyBit) {
  const ScanCase<float> c = convert<float>(make_case(21, {5, 30, 70, 16}, {true, true, true}));
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const ScanResult<float> one = run_fast(c);
  omp_set_num_threads(3);
  const ScanResult<float> three = run_fast(c);
  omp_set_num_threads(threads);
  expect_same(one, three);
}

TEST(FastScan, BackwardAccumulatesIntoGradients) {
  const ScanCase<float> c = convert<float>(make_case(22, {2, 20, 19, 4}, {true, true, true}));
  const ScanResult<float> fresh = run_fast(c);
  ScanResult<float> twice = fresh;
  std::vector<float> checkpoints(scan_checkpoint_floats(c.shape));
  std::vector<float> y(fresh.y.size()), hT(fresh.hT.size());
  selective_scan_forward(c.shape, c.inputs(), y.data(), hT.data(), checkpoints.data());
  selective_scan_backward(c.shape, c.inputs(), checkpoints.data(), c.dy.data(), c.dhT.data(), twice.grads(c.options));
  for (int t = 0; t < kNumTensors; ++t) {
    for (std::size_t i = 0; i < fresh.grad[t].size(); ++i)
      ASSERT_EQ(twice.grad[t][i], fresh.grad[t][i] + fresh.grad[t][i]) << kTensorNames[t] << "[" << i << "]";
  }
}

// The first `steps` positions of every (B, T, width) tensor of a case.
template <class S>
std::vector<S> leading_steps(const std::vector<S>& v, const ScanShape& shape, int width, int first, int steps) {
  std::vector<S> out;
  for (int b = 0; b < shape.batch; ++b) {
    const auto row = v.begin() + (std::size_t(b) * shape.seq_len + first) * width;
    out.insert(out.end(), row, row + std::size_t(steps) * width);
  }
  return out;
}

// Positions [first, first + steps) of a case as a case of its own (inputs per time step sliced, the rest kept).
ScanCase<float> time_slice(const ScanCase<float>& c, int first, int steps) {
  ScanCase<float> s = c;
  s.shape.seq_len = steps;
  for (int t : {kX, kDtRaw, kZ}) s.in[t] = leading_steps(c.in[t], c.shape, c.shape.channels, first, steps);
  for (int t : {kBm, kCm}) s.in[t] = leading_steps(c.in[t], c.shape, c.shape.state, first, steps);
  s.dy = leading_steps(c.dy, c.shape, c.shape.channels, first, steps);
  return s;
}

// Streaming: scan(T1) then scan(T2) from its final state is scan(T1 + T2), and feeding the second part's dh0 back
// as the first part's dhT gives the whole sequence's gradients.
TEST(FastScan, TwoPartsFromTheFinalStateEqualTheWhole) {
  const ScanCase<float> whole = convert<float>(make_case(30, {2, 45, 24, 16}, {true, false, true}));
  const ScanResult<float> want = run_fast(whole);
  ScanCase<float> first = time_slice(whole, 0, 19), second = time_slice(whole, 19, 26);
  std::vector<float> y1(first.in[kX].size());
  second.in[kH0].assign(whole.in[kH0].size(), 0.0f);
  selective_scan_forward(first.shape, first.inputs(), y1.data(), second.in[kH0].data(), nullptr);
  const ScanResult<float> part2 = run_fast(second);
  first.dhT = part2.grad[kH0];
  const ScanResult<float> part1 = run_fast(first);

  EXPECT_EQ(part2.hT, want.hT);
  auto joined = [&](const std::vector<float>& a, const std::vector<float>& b, int width) {
    std::vector<float> out;
    for (int bi = 0; bi < whole.shape.batch; ++bi) {
      out.insert(out.end(), a.begin() + std::size_t(bi) * 19 * width, a.begin() + std::size_t(bi + 1) * 19 * width);
      out.insert(out.end(), b.begin() + std::size_t(bi) * 26 * width, b.begin() + std::size_t(bi + 1) * 26 * width);
    }
    return out;
  };
  EXPECT_EQ(joined(part1.y, part2.y, whole.shape.channels), want.y);
  // Per-position gradients follow the same arithmetic; sums over time are added in another order, so: close.
  const auto near = [](const std::vector<float>& got, const std::vector<float>& expected, const char* what) {
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], expected[i], 1e-5f * (1.0f + std::abs(expected[i]))) << what << "[" << i << "]";
  };
  for (int t : {kX, kDtRaw, kZ})
    near(joined(part1.grad[t], part2.grad[t], whole.shape.channels), want.grad[t], kTensorNames[t]);
  for (int t : {kBm, kCm}) near(joined(part1.grad[t], part2.grad[t], whole.shape.state), want.grad[t], kTensorNames[t]);
  for (int t : {kDtBias, kALog, kD}) {
    std::vector<float> sum(part1.grad[t].size());
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] = part1.grad[t][i] + part2.grad[t][i];
    near(sum, want.grad[t], kTensorNames[t]);
  }
  near(part1.grad[kH0], want.grad[kH0], "h0");
}

// A padded sequence gives exactly the unpadded sequence's results; padding gets y = 0 and no gradient.
TEST(FastScan, PaddingIsInvisible) {
  const int real = 21, padded = 40;
  ScanCase<float> c = convert<float>(make_case(40, {1, padded, 20, 16}, {true, false, true}));
  // Garbage in the padding: any use of it would show.
  for (std::size_t i = std::size_t(real) * c.shape.channels; i < c.in[kX].size(); ++i) {
    c.in[kX][i] = 1e30f, c.in[kDtRaw][i] = -1e30f, c.in[kZ][i] = 1e30f, c.dy[i] = 1e30f;
  }
  for (std::size_t i = std::size_t(real) * c.shape.state; i < c.in[kBm].size(); ++i)
    c.in[kBm][i] = c.in[kCm][i] = 1e30f;
  ScanCase<float> unpadded = time_slice(c, 0, real);
  c.lengths = {real};
  const ScanResult<float> got = run_fast(c, 8), want = run_fast(unpadded, 8);
  const auto real_part = [&](const std::vector<float>& v, int width) {
    return leading_steps(v, c.shape, width, 0, real);
  };
  const auto pad_part = [&](const std::vector<float>& v, int width) {
    return std::vector<float>(v.begin() + std::size_t(real) * width, v.end());
  };
  EXPECT_EQ(real_part(got.y, 20), want.y);
  EXPECT_EQ(pad_part(got.y, 20), std::vector<float>(std::size_t(padded - real) * 20, 0.0f));
  EXPECT_EQ(got.hT, want.hT);
  for (int t : {kX, kDtRaw, kZ}) {
    EXPECT_EQ(real_part(got.grad[t], 20), want.grad[t]) << kTensorNames[t];
    EXPECT_EQ(pad_part(got.grad[t], 20), std::vector<float>(std::size_t(padded - real) * 20, 0.0f)) << kTensorNames[t];
  }
  for (int t : {kBm, kCm}) {
    EXPECT_EQ(real_part(got.grad[t], 16), want.grad[t]) << kTensorNames[t];
    EXPECT_EQ(pad_part(got.grad[t], 16), std::vector<float>(std::size_t(padded - real) * 16, 0.0f)) << kTensorNames[t];
  }
  for (int t : {kDtBias, kALog, kD, kH0}) EXPECT_EQ(got.grad[t], want.grad[t]) << kTensorNames[t];
}

TEST(FastScan, EmptySequenceKeepsTheInitialState) {
  ScanCase<float> c = convert<float>(make_case(41, {2, 9, 18, 4}, {true, false, true}));
  c.lengths = {9, 0};
  const ScanResult<float> r = run_fast(c);
  const std::size_t state = std::size_t(18) * 4;
  EXPECT_TRUE(std::equal(r.hT.begin() + state, r.hT.end(), c.in[kH0].begin() + state));
  EXPECT_TRUE(std::equal(r.grad[kH0].begin() + state, r.grad[kH0].end(), c.dhT.begin() + state));
  EXPECT_TRUE(std::all_of(r.y.begin() + 9 * 18, r.y.end(), [](float v) { return v == 0.0f; }));
}

TEST(FastScan, RejectsBadLengthsAndChunks) {
  ScanCase<float> c = convert<float>(make_case(42, {2, 5, 3, 2}, {}));
  std::vector<float> y(c.in[kX].size());
  c.lengths = {5, 6};
  EXPECT_THROW(selective_scan_forward(c.shape, c.inputs(), y.data(), nullptr, nullptr), Error);
  c.lengths = {-1, 2};
  EXPECT_THROW(selective_scan_forward(c.shape, c.inputs(), y.data(), nullptr, nullptr), Error);
  c.lengths.clear();
  EXPECT_THROW(selective_scan_forward(c.shape, c.inputs(), y.data(), nullptr, nullptr, 0), Error);
  EXPECT_THROW(scan_checkpoint_floats(c.shape, 0), Error);
}

}  // namespace
}  // namespace hax::ops::testing
