#include "hax/engine/rng.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "hax/engine/error.h"

namespace hax {
namespace {

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Rng::Rng(std::uint64_t seed) : seed_(seed) {
  std::uint64_t x = seed;
  for (auto& word : s_) word = splitmix64(x);
}

Rng::State Rng::state() const {
  State state{seed_, {s_[0], s_[1], s_[2], s_[3]}, has_spare_, spare_};
  return state;
}

Rng::Rng(const State& state) : seed_(state.seed), has_spare_(state.has_spare), spare_(state.spare) {
  check((state.s[0] | state.s[1] | state.s[2] | state.s[3]) != 0, "random generator state is all zeros");
  std::copy_n(state.s, 4, s_);
}

std::uint64_t Rng::next_u64() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

float Rng::uniform() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }

double Rng::uniform_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

std::uint64_t Rng::below(std::uint64_t n) {
  check(n > 0, "Rng::below(0)");
  // Lemire-free simple rejection: discard the top partial block so every residue is equally likely.
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  std::uint64_t v;
  do v = next_u64();
  while (v >= limit);
  return v % n;
}

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1;
  do u1 = uniform_double();
  while (u1 <= 0.0);
  const double u2 = uniform_double();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * std::numbers::pi * u2;
  spare_ = r * std::sin(angle);
  has_spare_ = true;
  return r * std::cos(angle);
}

void Rng::fill_uniform(std::span<float> out, float lo, float hi) {
  // Rounding to float can land exactly on hi; step back one ulp so the range stays half-open.
  const float below_hi = std::nextafter(hi, lo);
  for (float& v : out) v = std::min(static_cast<float>(lo + (hi - lo) * uniform_double()), below_hi);
}

void Rng::fill_normal(std::span<float> out, float mean, float stddev) {
  for (float& v : out) v = static_cast<float>(mean + stddev * normal());
}

Rng Rng::fork(std::uint64_t stream) const {
  std::uint64_t x = seed_ ^ (0xD1B54A32D192ED03ull * (stream + 1));
  return Rng(splitmix64(x));
}

}  // namespace hax
