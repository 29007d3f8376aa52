// Branch-free float math that gcc vectorizes inside `#pragma omp simd` loops (libm calls would stop it).
// Every choice goes through select(): with the default -ftrapping-math gcc will not turn a float `c ? a : b`
// whose arms may raise FP flags into a blend, and then refuses to vectorize the loop around it.
// exp and log are Cephes-style: reduce the argument by powers of two, then a short minimax polynomial on the
// remainder; both are within 2 ulp of std::exp / std::log over their domains (tests/scan/test_fast_math.cpp).
// The functions built on them (log1p, softplus, sigmoid, silu) follow PyTorch's definitions.
#pragma once

#include <bit>
#include <cstdint>

namespace hax::ops {

// c ? a : b, computed as bit masks so that it vectorizes (a and b are both evaluated).
inline float select(bool c, float a, float b) {
  const std::int32_t mask = -static_cast<std::int32_t>(c);
  return std::bit_cast<float>((std::bit_cast<std::int32_t>(a) & mask) | (std::bit_cast<std::int32_t>(b) & ~mask));
}

// exp(x) for every float: 0 below ln(FLT_MIN) (so no denormals come out), +inf above ln(FLT_MAX), NaN for NaN.
inline float fast_exp(float x) {
  constexpr float kMaxArg = 88.72283935546875f;    // largest x with finite exp(x)
  constexpr float kMinArg = -87.33654022216797f;   // ln(FLT_MIN): below it the result would be denormal
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;           // ln 2 split in two, so that x - n*ln2 is exact for |n| <= 128
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.0f;       // 1.5 * 2^23: adding it rounds to an integer in the low bits

  const float clamped = select(x < kMinArg, kMinArg, select(x > kMaxArg, kMaxArg, x));  // NaN stays NaN
  const float shifted = clamped * kLog2e + kRoundMagic;
  const float n = shifted - kRoundMagic;                                       // round(x / ln 2)
  const float r = (clamped - n * kLn2Hi) - n * kLn2Lo;                         // |r| <= ln(2) / 2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // 2^n from its bits: the low mantissa bits of `shifted` hold n (|n| <= 128), the exponent field gets n + 127.
  const std::int32_t n_int = std::bit_cast<std::int32_t>(shifted) - std::bit_cast<std::int32_t>(kRoundMagic);
  // n = 128 happens only near kMaxArg; split it as 2^127 * 2 so the exponent field stays in range. (The lower
  // clamp only matters for NaN input, whose n is garbage.)
  const std::int32_t n_low = n_int > 127 ? 127 : (n_int < -126 ? -126 : n_int);
  const float scale = std::bit_cast<float>(static_cast<std::uint32_t>(n_low + 127) << 23);
  const float result = p * scale * select(n_int > 127, 2.0f, 1.0f);
  return select(x < kMinArg, 0.0f, select(x > kMaxArg, __builtin_inff(), result));
}

// log(x) for positive normal floats (the only inputs our callers produce): Cephes logf.
inline float fast_log(float x) {
  constexpr float kSqrtHalf = 0.707106781186547524f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;

  // x = m * 2^e with m in [0.5, 1), then m moved into [sqrt(1/2), sqrt(2)) so that log(m) stays small.
  const std::int32_t bits = std::bit_cast<std::int32_t>(x);
  float e = static_cast<float>((bits >> 23) - 126);
  float m = std::bit_cast<float>((bits & 0x007fffff) | 0x3f000000);
  const bool small = m < kSqrtHalf;
  e = select(small, e - 1.0f, e);
  m = select(small, m + m, m) - 1.0f;
  const float m2 = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float y = p * m * m2 + e * kLn2Lo - 0.5f * m2;
  return m + y + e * kLn2Hi;
}

// log(1 + x) for x >= 0 (finite), accurate also for tiny x: log(u) * x / (u - 1) with u = fl(1 + x) cancels the
// rounding error of 1 + x (Goldberg's trick); when 1 + x rounds to 1, log1p(x) = x to float precision.
inline float fast_log1p(float x) {
  const float u = 1.0f + x;
  const float d = u - 1.0f;
  return select(d == 0.0f, x, fast_log(u) * (x / d));
}

// PyTorch's softplus with beta 1 and threshold 20: v above the threshold passes through unchanged.
constexpr float kSoftplusThreshold = 20.0f;
inline float fast_softplus(float v) {
  const float below = select(v > kSoftplusThreshold, 0.0f, v);  // keeps exp() finite where its result is unused
  return select(v > kSoftplusThreshold, v, fast_log1p(fast_exp(below)));
}

inline float fast_sigmoid(float v) { return 1.0f / (1.0f + fast_exp(-v)); }

// d softplus / dv, as PyTorch's softplus_backward: 1 above the threshold, sigmoid(v) below.
inline float fast_softplus_grad(float v) { return select(v > kSoftplusThreshold, 1.0f, fast_sigmoid(v)); }

inline float fast_silu(float z) { return z * fast_sigmoid(z); }

// d silu / dz = sigmoid(z) * (1 + z * (1 - sigmoid(z))).
inline float fast_silu_grad(float z) {
  const float s = fast_sigmoid(z);
  return s * (1.0f + z * (1.0f - s));
}

}  // namespace hax::ops
