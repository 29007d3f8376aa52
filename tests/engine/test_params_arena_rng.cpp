#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "hax/engine/arena.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/engine/params.h"
#include "hax/engine/rng.h"

namespace hax {
namespace {

TEST(ParamStore, NamedViewsShareOneAlignedFlatBuffer) {
  ParamStore store;
  store.add("embeddings.weight", {100, 64});
  store.add("layers.0.mixer.D", {3});
  store.add("norm_f.weight", {64});
  store.allocate();
  EXPECT_EQ(store.num_parameters(), 6400u + 3u + 64u);
  auto d = store.param("layers.0.mixer.D");
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(d.data()) % 64, 0u);
  EXPECT_EQ(d.data(), store.params().data() + store.info("layers.0.mixer.D").offset);
  EXPECT_EQ(store.grad("norm_f.weight").data(), store.grads().data() + store.info("norm_f.weight").offset);
  store.grad("norm_f.weight")[5] = 3.0f;
  store.zero_grad();
  EXPECT_EQ(store.grad("norm_f.weight")[5], 0.0f);
  EXPECT_EQ(shape_string(store.info("embeddings.weight").shape), "(100, 64)");
}

TEST(ParamStore, RejectsDuplicatesUnknownNamesAndLateDeclarations) {
  ParamStore store;
  store.add("a", {2});
  EXPECT_THROW(store.add("a", {3}), Error);
  store.allocate();
  EXPECT_THROW(store.add("b", {1}), Error);
  EXPECT_THROW(store.param("missing"), Error);
}

// A buffer larger than the machine is one error that names it, the size needed and the memory there is.
TEST(ShapeNumel, CountsElementsAndRefusesNegativeOrWrappingShapes) {
  EXPECT_EQ(shape_numel({}), 1u);
  EXPECT_EQ(shape_numel({3, 0, 5}), 0u);
  EXPECT_EQ(shape_numel({2, 3, 4}), 24u);
  EXPECT_THROW(shape_numel({2, -3}), Error);
  // 2^32 x 2^32 wraps to 0 in 64 bits: without the check a file claiming it would pass as empty.
  try {
    shape_numel({std::int64_t(1) << 32, std::int64_t(1) << 32});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(4294967296, 4294967296) has more elements than any memory"),
              std::string::npos)
        << e.what();
  }
}

TEST(AlignedBuffer, TooLargeForTheMachineIsAnErrorSayingHowMuch) {
  const std::size_t available = available_memory_bytes();
  ASSERT_GT(available, 0u) << "/proc/meminfo unreadable";
  const std::size_t floats = available / sizeof(float) * 4;  // four times what there is
  try {
    AlignedBuffer buffer(floats, "the model's parameters");
    FAIL() << "allocated " << floats << " floats";
  } catch (const Error& e) {
    for (const char* part : {"the model's parameters", "needs", "GiB", "available"})
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << part << " in " << e.what();
  }
  EXPECT_THROW(AlignedBuffer(std::numeric_limits<std::size_t>::max(), "absurd"), Error);
}

TEST(Arena, BumpAllocatesAlignedZeroedBlocksAndReleasesToMarks) {
  Arena arena(1000);
  auto a = arena.alloc(10);
  a[0] = 7.0f;
  const auto mark = arena.mark();
  auto b = arena.alloc(100);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % 64, 0u);
  arena.release(mark);
  auto c = arena.alloc(100);
  EXPECT_EQ(b.data(), c.data());
  EXPECT_EQ(c[0], 0.0f);
  EXPECT_GE(arena.peak(), 112u);
  EXPECT_THROW(arena.alloc(5000, "logits"), Error);
}

TEST(Arena, UninitializedBlocksShareTheBumpPointerAndAreNaNWithAsserts) {
  Arena arena(1000);
  auto a = arena.alloc_uninitialized(10);
  auto b = arena.alloc_uninitialized(100);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % 64, 0u);
  EXPECT_EQ(b.data(), a.data() + 16);
  EXPECT_EQ(arena.used(), 16u + 112u);
#ifndef NDEBUG
  EXPECT_TRUE(std::isnan(b[99]));
#endif
  EXPECT_THROW(arena.alloc_uninitialized(5000, "logits"), Error);
}

TEST(Rng, SameSeedSameNumbersAndForksAreIndependent) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(Rng(42).next_u64(), c.next_u64());
  EXPECT_NE(Rng(42).fork(0).next_u64(), Rng(42).fork(1).next_u64());
  EXPECT_EQ(Rng(42).fork(3).next_u64(), Rng(42).fork(3).next_u64());
}

TEST(Rng, NormalAndUniformHaveTheRightMoments) {
  Rng rng(1);
  std::vector<float> v(200000);
  rng.fill_normal(v, 0.5f, 2.0f);
  double mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  double var = 0;
  for (float x : v) var += (x - mean) * (x - mean);
  var /= v.size();
  EXPECT_NEAR(mean, 0.5, 0.02);
  EXPECT_NEAR(var, 4.0, 0.05);
  rng.fill_uniform(v, -1.0f, 3.0f);
  mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  EXPECT_NEAR(mean, 1.0, 0.02);
  for (float x : v) ASSERT_TRUE(x >= -1.0f && x < 3.0f);
}

TEST(Gemm, MatchesNaiveProductForAllTransposes) {
  Rng rng(7);
  const int M = 5, N = 7, K = 3;
  std::vector<float> A(M * K), B(K * N), At(K * M), Bt(N * K);
  rng.fill_normal(A, 0, 1);
  rng.fill_normal(B, 0, 1);
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) At[k * M + i] = A[i * K + k];
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < N; ++j) Bt[j * K + k] = B[k * N + j];
  std::vector<float> want(M * N);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j)
      for (int k = 0; k < K; ++k) want[i * N + j] += A[i * K + k] * B[k * N + j];
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      std::vector<float> C(M * N, 1.0f);
      gemm(ta ? Trans::Yes : Trans::No, tb ? Trans::Yes : Trans::No, M, N, K, 1.0f, ta ? At.data() : A.data(),
           ta ? M : K, tb ? Bt.data() : B.data(), tb ? K : N, 1.0f, C.data(), N);
      for (int i = 0; i < M * N; ++i) EXPECT_NEAR(C[i], want[i] + 1.0f, 1e-5) << ta << tb << i;
    }
}

}  // namespace
}  // namespace hax
