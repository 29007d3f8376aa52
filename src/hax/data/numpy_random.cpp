#include "hax/data/numpy_random.h"

#include "hax/engine/error.h"

namespace hax::data {

std::uint32_t NumpyRandomState::checked_seed(std::int64_t seed) {
  check(seed >= 0 && seed <= kMaxSeed, "--seed ", seed, " is out of range: numpy's RandomState takes seeds in [0, ",
        kMaxSeed, "]");
  return static_cast<std::uint32_t>(seed);
}

NumpyRandomState::NumpyRandomState(std::int64_t seed) : mt_(checked_seed(seed)) {}

}  // namespace hax::data
