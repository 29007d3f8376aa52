// numpy's legacy `RandomState`, the part the joint-recall generator needs, reproduced draw for draw
// (reference.md §1.5). numpy seeds its MT19937 with init_genrand(seed), the same stream as std::mt19937(seed);
// on top of it, the legacy bounded-integer paths use "masked rejection": mask the 32-bit draw down to the
// smallest all-ones bit pattern covering the range and redraw until the value falls inside.
#pragma once

#include <cstdint>
#include <numeric>
#include <random>
#include <span>
#include <utility>

namespace hax::data {

class NumpyRandomState {
 public:
  static constexpr std::int64_t kMaxSeed = 0xFFFFFFFFll;

  // numpy rejects integer seeds outside [0, 2^32 - 1]; so does this (a hax::Error naming the seed).
  explicit NumpyRandomState(std::int64_t seed);
  static std::uint32_t checked_seed(std::int64_t seed);

  std::uint32_t next32() { return static_cast<std::uint32_t>(mt_()); }

  // Uniform in [0, max]; max = 0 returns 0 without drawing (numpy's `random_interval`).
  std::uint32_t masked_draw(std::uint32_t max) {
    if (max == 0) return 0;
    const std::uint32_t mask = all_ones_covering(max);
    std::uint32_t value;
    do value = next32() & mask;
    while (value > max);
    return value;
  }

  // Legacy `randint(low, high)` for one element (int64 path, range below 2^32): one masked draw.
  std::int64_t randint(std::int64_t low, std::int64_t high) {
    return low + masked_draw(static_cast<std::uint32_t>(high - low - 1));
  }

  // Legacy `permutation(out.size())`: arange, then the Fisher-Yates shuffle from the back.
  template <class Int>
  void permutation(std::span<Int> out) {
    std::iota(out.begin(), out.end(), Int{0});
    for (std::size_t i = out.size(); i-- > 1;) std::swap(out[i], out[masked_draw(static_cast<std::uint32_t>(i))]);
  }

 private:
  static std::uint32_t all_ones_covering(std::uint32_t value) {
    value |= value >> 1;
    value |= value >> 2;
    value |= value >> 4;
    value |= value >> 8;
    return value | (value >> 16);
  }

  std::mt19937 mt_;
};

}  // namespace hax::data
