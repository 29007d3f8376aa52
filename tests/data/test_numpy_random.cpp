// NumpyRandomState against numpy itself: the primitives the joint-recall generator is built from.
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "../support/test_support.h"
#include "hax/data/numpy_random.h"
#include "hax/engine/error.h"

namespace hax::data {
namespace {

// Runs a numpy snippet after np.random.seed(seed); it prints integers separated by whitespace.
std::vector<std::int64_t> numpy_numbers(std::int64_t seed, const std::string& body) {
  const std::string script = "import numpy as np; np.random.seed(" + std::to_string(seed) + "); " + body;
  const auto result = testing::run_command("/usr/bin/python3 -c '" + script + "'");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::istringstream in(result.out);
  std::vector<std::int64_t> numbers;
  for (std::int64_t n; in >> n;) numbers.push_back(n);
  return numbers;
}

TEST(NumpyRandomState, RandintAndPermutationMatchNumpyDrawForDraw) {
  // Ranges with masks of every width the generator can meet, including 17-bit ones, and max 0 (no draw).
  const auto expected = numpy_numbers(
      12345,
      "print(*np.random.randint(0, 16, (3, 5)).ravel(), *np.random.permutation(13), *np.random.permutation(1), "
      "*np.random.randint(0, 1, 4), *np.random.randint(7, 1000, 50), *np.random.permutation(70000)[:64], "
      "*np.random.randint(0, 3, 40))");
  NumpyRandomState rng(12345);
  std::vector<std::int64_t> ours;
  auto randint = [&](std::int64_t low, std::int64_t high, int count) {
    for (int i = 0; i < count; ++i) ours.push_back(rng.randint(low, high));
  };
  auto permutation = [&](std::size_t n, std::size_t keep) {
    std::vector<std::uint32_t> perm(n);
    rng.permutation(std::span(perm));
    ours.insert(ours.end(), perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(keep));
  };
  randint(0, 16, 15);
  permutation(13, 13);
  permutation(1, 1);
  randint(0, 1, 4);
  randint(7, 1000, 50);
  permutation(70000, 64);
  randint(0, 3, 40);
  EXPECT_EQ(ours, expected);
}

TEST(NumpyRandomState, SeedMatchesStdMt19937AndMustFitThirtyTwoBits) {
  NumpyRandomState rng(NumpyRandomState::kMaxSeed);
  std::mt19937 reference(0xFFFFFFFFu);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(rng.next32(), reference());
  EXPECT_NO_THROW(NumpyRandomState(0));
  EXPECT_THROW(NumpyRandomState(-1), Error);
  try {
    NumpyRandomState(NumpyRandomState::kMaxSeed + 1);
    FAIL() << "seed 2^32 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--seed 4294967296 is out of range"), std::string::npos) << e.what();
  }
}

TEST(NumpyRandomState, MaskedDrawOfZeroUsesNoDraw) {
  NumpyRandomState a(5), b(5);
  EXPECT_EQ(a.masked_draw(0), 0u);
  EXPECT_EQ(a.next32(), b.next32());
}

}  // namespace
}  // namespace hax::data
