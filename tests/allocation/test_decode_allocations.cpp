// Issue 10's "no allocation per decoded token": once a stream is warm (ring buffers wrapped, the running top-w
// full), feeding it one token at a time must not touch the heap for any bounded pattern, on Mamba, Mamba2 or Samba.
// This executable replaces the global operator new to count calls, which is why it is a suite of its own.
// (aligned_alloc/malloc from AlignedBuffer are not counted; Arena and LogitStream only grow those on a larger call.)
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "../support/model_fixtures.h"
#include "hax/inference/logit_stream.h"

namespace {
std::atomic<long> g_news{0};
}  // namespace

void* operator new(std::size_t bytes) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(bytes ? bytes : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t bytes) { return operator new(bytes); }
void* operator new(std::size_t bytes, std::align_val_t align) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  const std::size_t a = static_cast<std::size_t>(align);
  if (void* p = std::aligned_alloc(a, (bytes + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t bytes, std::align_val_t align) { return operator new(bytes, align); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace hax::models {
namespace {

using testing::BaseArch;

// Every model whose inference state is bounded: all but `full` and `dilated`, which must keep a growing cache.
std::vector<BaseArch> bounded_cases() {
  std::vector<BaseArch> cases;
  for (const BaseArch& c : testing::all_base_archs())
    if (c.second.find("full") == std::string::npos && c.second.find("dilated") == std::string::npos)
      cases.push_back(c);
  return cases;
}

class DecodeAllocationTest : public ::testing::TestWithParam<BaseArch> {};

TEST_P(DecodeAllocationTest, AWarmStreamDecodesWithoutAllocating) {
  Model model(testing::tiny_config(GetParam().first, GetParam().second));
  testing::perturb_parameters(model);
  const std::vector<std::int32_t> tokens = testing::random_tokens(2300, model.config().vocab_size, 9);
  inference::LogitStream stream(model);
  // 8 keys per pattern: 2000 tokens wrap every window and bucket ring many times over, and bring the key-value
  // cache's pool to its bound (it grows only when more positions are held at once than ever before).
  for (int t = 0; t < 2000; ++t) stream.feed({&tokens[t], 1});
  const long before = g_news.load();
  for (int t = 2000; t < 2300; ++t) stream.feed({&tokens[t], 1});
  EXPECT_EQ(g_news.load() - before, 0) << "operator new calls while decoding 300 tokens";
}

// The counter itself works: otherwise the test above could not fail.
TEST(DecodeAllocationCounter, CountsVectorAllocations) {
  const long before = g_news.load();
  std::vector<int> v(10);
  asm volatile("" : : "g"(v.data()) : "memory");  // the allocation may not be elided
  EXPECT_GE(g_news.load() - before, 1);
}

INSTANTIATE_TEST_SUITE_P(BoundedModels, DecodeAllocationTest, ::testing::ValuesIn(bounded_cases()),
                         [](const auto& info) { return testing::base_arch_identifier(info.param); });

}  // namespace
}  // namespace hax::models
