// Branch-free float math for the hot loops: each function works on one float (and then vectorizes inside
// `#pragma omp simd` loops, where a libm call would stop gcc) or on a GCC/Clang vector of floats such as Vec8
// (AVX2 registers with -march=x86-64-v3, pairs of SSE registers or plain scalars elsewhere).
// exp and log are Cephes-style: reduce the argument by powers of two, then a short minimax polynomial on the
// remainder; both are within 1 ulp of std::exp / std::log over their domains (tests/scan/test_fast_math.cpp).
// The functions built on them (log1p, softplus, sigmoid, silu) follow PyTorch's definitions.
//
// Everything is force-inlined: a call left in a loop body stops its vectorization.
// Every choice goes through select(): with the default -ftrapping-math gcc will not turn a float `c ? a : b`
// whose arms may raise FP flags into a blend, and then refuses to vectorize the loop around it.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace hax::ops {

using Vec8 = float __attribute__((vector_size(32)));
using Int8 = std::int32_t __attribute__((vector_size(32)));
constexpr int kVecWidth = 8;

[[gnu::always_inline]] inline Vec8 load_vec(const float* p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store_vec(float* p, Vec8 v) { std::memcpy(p, &v, sizeof v); }

// The float or Vec8 with every lane equal to `value`.
template <class V>
[[gnu::always_inline]] inline V splat(float value) {
  return V{} + value;
}

// c ? a : b. For one float it is computed as bit masks, so that it vectorizes (both a and b are evaluated); for
// vectors c is a lane mask (what a vector comparison gives).
[[gnu::always_inline]] inline float select(bool c, float a, float b) {
  const std::int32_t mask = -static_cast<std::int32_t>(c);
  return std::bit_cast<float>((std::bit_cast<std::int32_t>(a) & mask) | (std::bit_cast<std::int32_t>(b) & ~mask));
}
[[gnu::always_inline]] inline std::int32_t select(bool c, std::int32_t a, std::int32_t b) { return c ? a : b; }
template <class Mask, class V>
requires(!std::is_arithmetic_v<V>) [[gnu::always_inline]] inline V select(Mask c, V a, V b) { return c ? a : b; }

namespace detail {

// The int32 type of the same shape as V (float or a float vector).
template <class V>
struct IntOf {
  using type = decltype(V{} < V{});  // a vector comparison gives the int vector of the same width
};
template <>
struct IntOf<float> {
  using type = std::int32_t;
};

template <class V>
[[gnu::always_inline]] inline V to_float(typename IntOf<V>::type i) {
  if constexpr (std::is_same_v<V, float>) {
    return static_cast<float>(i);
  } else {
    return __builtin_convertvector(i, V);
  }
}

constexpr float kExpMaxArg = 88.72283935546875f;   // largest x with finite exp(x)
constexpr float kExpMinArg = -87.33654022216797f;  // ln(FLT_MIN): below it exp(x) would be denormal

template <class V>
struct ExpParts {
  V p;                        // in [sqrt(1/2), sqrt(2)]
  typename IntOf<V>::type n;  // exp(x) = p * 2^n
};

// Cephes expf for x in [kExpMinArg, kExpMaxArg] (or NaN): n = round(x / ln 2), then a degree-6 polynomial for
// exp(x - n ln 2), with ln 2 split in two so that x - n ln 2 is exact for |n| <= 128.
template <class V>
[[gnu::always_inline]] inline ExpParts<V> exp_parts(V x) {
  using I = typename IntOf<V>::type;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  const V shifted = x * kLog2e + kRoundMagic;
  const V n = shifted - kRoundMagic;
  const V r = (x - n * kLn2Hi) - n * kLn2Lo;  // |r| <= ln(2) / 2
  V p = splat<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // The low mantissa bits of `shifted` hold n.
  return {p, std::bit_cast<I>(shifted) - std::bit_cast<std::int32_t>(kRoundMagic)};
}

// 2^n for n in [-126, 127], from its bits.
template <class V, class I>
[[gnu::always_inline]] inline V pow2(I n) {
  if constexpr (std::is_same_v<V, float>) {
    return std::bit_cast<float>(static_cast<std::uint32_t>(n + 127) << 23);
  } else {
    return std::bit_cast<V>((n + 127) << 23);
  }
}

}  // namespace detail

// exp(x) for every float: 0 below ln(FLT_MIN) (so no denormals come out), +inf above ln(FLT_MAX), NaN for NaN.
template <class V>
[[gnu::always_inline]] inline V fast_exp(V x) {
  using I = typename detail::IntOf<V>::type;
  using detail::kExpMaxArg, detail::kExpMinArg;
  const V clamped = select(x < kExpMinArg, splat<V>(kExpMinArg), select(x > kExpMaxArg, splat<V>(kExpMaxArg), x));
  const auto [p, n] = detail::exp_parts(clamped);
  // n = 128 happens only near kExpMaxArg: 2^127 * 2 keeps the exponent in range. (The clamp at -126 matters only for
  // NaN, whose n is garbage.)
  const I n_in_range = select(n > 127, I{} + 127, select(n < -126, I{} - 126, n));
  const V result = p * detail::pow2<V>(n_in_range) * select(n > 127, splat<V>(2.0f), splat<V>(1.0f));
  return select(x < kExpMinArg, V{}, select(x > kExpMaxArg, splat<V>(__builtin_inff()), result));
}

// exp(x) for x <= 0 only (the scan's decays exp(Δ A)), in about 2/3 of fast_exp's operations: no overflow to
// handle. Same results as fast_exp there; 0 below ln(FLT_MIN); NaN for NaN.
template <class V>
[[gnu::always_inline]] inline V fast_exp_nonpositive(V x) {
  using detail::kExpMinArg;
  const auto [p, n] = detail::exp_parts(select(x < kExpMinArg, splat<V>(kExpMinArg), x));
  return select(x < kExpMinArg, V{}, p * detail::pow2<V>(n));
}

// log(x) for positive normal floats (the only inputs our callers produce): Cephes logf.
template <class V>
[[gnu::always_inline]] inline V fast_log(V x) {
  using I = typename detail::IntOf<V>::type;
  constexpr float kSqrtHalf = 0.707106781186547524f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;

  // x = m * 2^e with m in [0.5, 1), then m moved into [sqrt(1/2), sqrt(2)) so that log(m) stays small.
  const I bits = std::bit_cast<I>(x);
  V e = detail::to_float<V>((bits >> 23) - 126);
  V m = std::bit_cast<V>((bits & 0x007fffff) | 0x3f000000);
  const auto small = m < kSqrtHalf;
  e = select(small, e - 1.0f, e);
  m = select(small, m + m, m) - 1.0f;
  const V m2 = m * m;
  V p = splat<V>(7.0376836292e-2f);
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  const V y = p * m * m2 + e * kLn2Lo - 0.5f * m2;
  return m + y + e * kLn2Hi;
}

// log(1 + x) for x >= 0 (finite), accurate also for tiny x: log(u) * x / (u - 1) with u = fl(1 + x) cancels the
// rounding error of 1 + x (Goldberg's trick); when 1 + x rounds to 1, log1p(x) = x to float precision.
template <class V>
[[gnu::always_inline]] inline V fast_log1p(V x) {
  const V u = x + 1.0f;
  const V d = u - 1.0f;
  return select(d == 0.0f, x, fast_log(u) * (x / d));
}

// PyTorch's softplus with beta 1 and threshold 20: v above the threshold passes through unchanged.
constexpr float kSoftplusThreshold = 20.0f;

template <class V>
[[gnu::always_inline]] inline V fast_sigmoid(V v) {
  return 1.0f / (fast_exp(-v) + 1.0f);
}

// softplus(v), and in *grad its derivative as PyTorch's softplus_backward has it (1 above the threshold, sigmoid(v)
// below), both from one exp: sigmoid(v) = e / (1 + e) with e = exp(v).
template <class V>
[[gnu::always_inline]] inline V fast_softplus(V v, V* grad = nullptr) {
  const auto above = v > kSoftplusThreshold;
  const V e = fast_exp(select(above, V{}, v));  // keeps exp() finite where its result is unused
  if (grad) *grad = select(above, splat<V>(1.0f), e / (e + 1.0f));
  return select(above, v, fast_log1p(e));
}

template <class V>
[[gnu::always_inline]] inline V fast_silu(V z) {
  return z * fast_sigmoid(z);
}

// d silu / dz = sigmoid(z) * (1 + z * (1 - sigmoid(z))), given sigmoid(z).
template <class V>
[[gnu::always_inline]] inline V silu_grad(V z, V sigmoid_z) {
  return sigmoid_z * (z * (1.0f - sigmoid_z) + 1.0f);
}

}  // namespace hax::ops
