#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "hax/ops/fast_math.h"

namespace hax::ops {
namespace {

// Floats in order as integers, so that the distance between two floats counts the floats between them (ulps).
std::int64_t ordinal(float x) {
  const std::int32_t bits = std::bit_cast<std::int32_t>(x);
  return bits < 0 ? -std::int64_t(bits & 0x7fffffff) : bits;
}
std::int64_t ulp_distance(float a, float b) {
  const std::int64_t d = ordinal(a) - ordinal(b);
  return d < 0 ? -d : d;
}
float from_ordinal(std::int64_t i) {
  return i < 0 ? -std::bit_cast<float>(std::int32_t(-i)) : std::bit_cast<float>(std::int32_t(i));
}

// The largest ulp distance from `want` (computed in double) over about 500k floats evenly spread (by ordinal)
// over [lo, hi], for the scalar function and for the same function on Vec8 lanes.
template <class Fast, class Want>
void expect_ulps(float lo, float hi, std::int64_t max_ulps, Fast fast, Want want) {
  const std::int64_t first = ordinal(lo), last = ordinal(hi);
  const std::int64_t step = std::max<std::int64_t>(1, (last - first) / 500000);
  std::int64_t worst = 0, worst_vec = 0;
  float worst_at = lo;
  for (std::int64_t i = first; i <= last; i += step) {
    const float x = from_ordinal(i);
    const float expected = static_cast<float>(want(static_cast<double>(x)));
    const std::int64_t ulps = ulp_distance(fast(x), expected);
    if (ulps > worst) worst = ulps, worst_at = x;
    const Vec8 lanes = fast(Vec8{x, x, x, x, x, x, x, x});
    worst_vec = std::max(worst_vec, ulp_distance(lanes[5], expected));
  }
  EXPECT_LE(worst, max_ulps) << "at x = " << worst_at;
  EXPECT_LE(worst_vec, max_ulps);
}

#define HAX_BOTH(f) [](auto x) { return f(x); }

const float kLowestNormalExpArg = -87.3365f;  // just above ln(FLT_MIN)
const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(FastMath, ExpIsWithinOneUlpWhereTheResultIsANormalFloat) {
  expect_ulps(kLowestNormalExpArg, std::log(std::numeric_limits<float>::max()), 1, HAX_BOTH(fast_exp),
              [](double x) { return std::exp(x); });
}

TEST(FastMath, ExpFlushesToZeroBelowTheNormalRangeAndOverflowsToInfinity) {
  for (float x : {-87.5f, -100.0f, -1e4f, -1e30f, -kInf}) EXPECT_EQ(fast_exp(x), 0.0f) << x;
  for (float x : {88.8f, 100.0f, 1e30f, kInf}) EXPECT_EQ(fast_exp(x), kInf) << x;
  EXPECT_TRUE(std::isnan(fast_exp(kNaN)));
  EXPECT_EQ(fast_exp(0.0f), 1.0f);
  const Vec8 lanes = fast_exp(Vec8{-1e30f, 1e30f, kNaN, 0.0f, -87.5f, 88.8f, -1.0f, 1.0f});
  EXPECT_EQ(lanes[0], 0.0f);
  EXPECT_EQ(lanes[1], kInf);
  EXPECT_TRUE(std::isnan(lanes[2]));
  EXPECT_EQ(lanes[3], 1.0f);
  EXPECT_EQ(lanes[4], 0.0f);
  EXPECT_EQ(lanes[5], kInf);
}

TEST(FastMath, ExpOfNonPositiveArgumentsMatchesExp) {
  expect_ulps(kLowestNormalExpArg, 0.0f, 1, HAX_BOTH(fast_exp_nonpositive), [](double x) { return std::exp(x); });
  for (float x : {-87.5f, -1e4f, -1e30f, -kInf}) EXPECT_EQ(fast_exp_nonpositive(x), 0.0f) << x;
  EXPECT_TRUE(std::isnan(fast_exp_nonpositive(kNaN)));
  for (float x : {-0.0f, -1e-30f, -0.5f, -3.0f, -50.0f}) EXPECT_EQ(fast_exp_nonpositive(x), fast_exp(x)) << x;
}

TEST(FastMath, LogIsWithinOneUlpForPositiveNormalFloats) {
  expect_ulps(std::numeric_limits<float>::min(), std::numeric_limits<float>::max(), 1, HAX_BOTH(fast_log),
              [](double x) { return std::log(x); });
}

TEST(FastMath, Log1pIsAccurateForTinyAndHugeArguments) {
  expect_ulps(0.0f, 1e30f, 2, HAX_BOTH(fast_log1p), [](double x) { return std::log1p(x); });
  EXPECT_EQ(fast_log1p(1e-30f), 1e-30f);
  EXPECT_EQ(fast_log1p(0.0f), 0.0f);
}

TEST(FastMath, SoftplusSigmoidAndSiluFollowPyTorch) {
  expect_ulps(-80.0f, 80.0f, 3, HAX_BOTH(fast_softplus), [](double v) { return v > 20 ? v : std::log1p(std::exp(v)); });
  expect_ulps(-80.0f, 80.0f, 2, HAX_BOTH(fast_sigmoid), [](double v) { return 1 / (1 + std::exp(-v)); });
  expect_ulps(-80.0f, 80.0f, 3, HAX_BOTH(fast_silu), [](double z) { return z / (1 + std::exp(-z)); });
  // Above the threshold softplus is the identity, also for huge v where exp(v) would overflow.
  for (float v : {20.5f, 100.0f, 1e30f}) EXPECT_EQ(fast_softplus(v), v);
  EXPECT_EQ(fast_softplus(-200.0f), 0.0f);
  EXPECT_EQ(fast_sigmoid(-200.0f), 0.0f);
  EXPECT_EQ(fast_sigmoid(200.0f), 1.0f);
}

TEST(FastMath, SoftplusGradientIsSigmoidBelowTheThresholdAndOneAbove) {
  for (float v : {-30.0f, -5.0f, -0.1f, 0.0f, 2.0f, 15.0f, 19.9f}) {
    float grad = 0.0f;
    fast_softplus(v, &grad);
    EXPECT_NEAR(grad, 1.0 / (1.0 + std::exp(-double(v))), 3e-7 * (1.0 / (1.0 + std::exp(-double(v))))) << v;
  }
  for (float v : {20.5f, 1e30f}) {
    float grad = 0.0f;
    fast_softplus(v, &grad);
    EXPECT_EQ(grad, 1.0f);
  }
}

TEST(FastMath, SiluGradientMatchesTheDerivative) {
  for (float z : {-30.0f, -4.0f, -1.0f, 0.0f, 0.5f, 3.0f, 30.0f}) {
    const double s = 1.0 / (1.0 + std::exp(-double(z)));
    EXPECT_NEAR(silu_grad(z, fast_sigmoid(z)), s * (1 + z * (1 - s)), 1e-6) << z;
  }
}

TEST(FastMath, SelectPicksPerLane) {
  EXPECT_EQ(select(true, 1.0f, 2.0f), 1.0f);
  EXPECT_EQ(select(false, 1.0f, 2.0f), 2.0f);
  const Vec8 a{1, 2, 3, 4, 5, 6, 7, 8}, b{};
  const Vec8 picked = select(a > 4.0f, a, b);
  for (int l = 0; l < kVecWidth; ++l) EXPECT_EQ(picked[l], l >= 4 ? a[l] : 0.0f);
}

}  // namespace
}  // namespace hax::ops
