// The engine's seeded random numbers: xoshiro256** seeded through SplitMix64, with our own uniform and normal
// transforms. std::*_distribution is implementation-defined, so it is avoided: the same seed gives the same
// numbers on every run, compiler and thread count. (Data generators that must match numpy use data/numpy_random.h.)
#pragma once

#include <cstdint>
#include <span>

namespace hax {

class Rng {
 public:
  explicit Rng(std::uint64_t seed);

  // Everything the generator carries, for saved states (inference/state_file.h): Rng(state()) continues the draws.
  struct State {
    std::uint64_t seed = 0;
    std::uint64_t s[4] = {};
    bool has_spare = false;
    double spare = 0.0;
  };
  State state() const;
  // hax::Error for an all-zero xoshiro state (it would draw zeros forever).
  explicit Rng(const State& state);

  std::uint64_t next_u64();
  // Uniform in [0, 1) with 24 (float) or 53 (double) random bits.
  float uniform();
  double uniform_double();
  // Uniform integer in [0, n), unbiased (rejection); n > 0.
  std::uint64_t below(std::uint64_t n);
  // Standard normal (Box-Muller in double, rounded once).
  double normal();

  void fill_uniform(std::span<float> out, float lo, float hi);
  void fill_normal(std::span<float> out, float mean, float stddev);

  // An independent generator for sub-stream `stream` (e.g. one per layer), derived from this one's seed.
  Rng fork(std::uint64_t stream) const;

 private:
  std::uint64_t seed_;
  std::uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace hax
