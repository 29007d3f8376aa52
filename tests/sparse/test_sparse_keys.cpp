// The key lists: parsing and budgets, and the streaming builders against the dense masks of the reference.
#include <gtest/gtest.h>

#include <algorithm>

#include "dense_reference.h"
#include "hax/engine/error.h"
#include "hax/ops/sparse/sparse_keys.h"
#include "sparse_fixtures.h"

namespace hax::ops::sparse::testing {
namespace {

TEST(SparseArch, SplitsTheBudgetEvenlyOverThePatterns) {
  EXPECT_EQ(parse_sparse_arch("sliding_window").budget, 64);
  EXPECT_EQ(parse_sparse_arch("sliding_window+sink").budget, 32);
  EXPECT_EQ(parse_sparse_arch("sign_bin_lsh+key_selection+sliding_window").budget, 21);  // 64 // 3
  EXPECT_EQ(parse_sparse_arch("dilated").dilation, 32);                                  // 2048 // 64
  EXPECT_EQ(parse_sparse_arch("sliding_window+dilated").dilation, 64);                   // 2048 // 32
  EXPECT_EQ(parse_sparse_arch("dilated", 10, 100).dilation, 10);
  const SparseArch hax = parse_sparse_arch("sign_bin_lsh+key_selection");
  EXPECT_EQ(hax.patterns, (std::vector<Pattern>{Pattern::sign_bin_lsh, Pattern::key_selection}));
}

TEST(SparseArch, RejectsUnknownRepeatedOrEmptyNames) {
  EXPECT_THROW(parse_sparse_arch("sliding"), Error);
  EXPECT_THROW(parse_sparse_arch("sink+sink"), Error);
  EXPECT_THROW(parse_sparse_arch("sink+"), Error);
  EXPECT_THROW(parse_sparse_arch("sink+full", 1), Error);  // 1 // 2 = 0 keys per pattern
}

void expect_keys_match_dense_masks(const std::string& name, int total_keys, int data_max_length, int T, int num_buckets,
                                   int score_levels, std::uint64_t seed) {
  SCOPED_TRACE(cat(name, " T=", T, " total=", total_keys, " buckets=", num_buckets, " levels=", score_levels));
  const SparseArch arch = parse_sparse_arch(name, total_keys, data_max_length);
  const OwnedPatternInputs inputs = random_pattern_inputs(T, num_buckets, score_levels, Rng(seed));
  const SparseKeys keys = build_sparse_keys(arch, T, inputs.view());
  const DenseMask mask = dense_union_mask(arch, T, inputs.view());
  for (int t = 0; t < T; ++t) {
    std::vector<std::int32_t> expected;
    for (int s = 0; s < T; ++s)
      if (mask[std::size_t(t) * T + s]) expected.push_back(s);
    const auto list = keys.keys_of(t);
    ASSERT_EQ(std::vector<std::int32_t>(list.begin(), list.end()), expected) << "query " << t;
    ASSERT_LE(keys.count[t], keys.k_max);
  }
}

TEST(SparseKeys, MatchTheDenseMasksForEveryArch) {
  for (const std::string& name : archs_under_test()) {
    expect_keys_match_dense_masks(name, 8, 32, 57, 4, 1000, 1);
    expect_keys_match_dense_masks(name, 64, 2048, 150, 16, 1000, 2);  // the paper's budget, T past the budget
    expect_keys_match_dense_masks(name, 6, 12, 1, 3, 1000, 3);        // a single position
  }
}

TEST(SparseKeys, TopKeysBreakTiesTowardsTheLowerPosition) {
  // Three score levels over 80 positions: almost every top-w boundary is a tie.
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    expect_keys_match_dense_masks("key_selection", 8, 32, 80, 2, 3, seed);
    expect_keys_match_dense_masks("sign_bin_lsh+key_selection", 16, 32, 80, 2, 2, seed);
  }
}

TEST(SparseKeys, TopKeysOfEqualScoresAreTheFirstW) {
  const SparseArch arch = parse_sparse_arch("key_selection", 4);
  const std::vector<float> score(10, 1.0f);
  const SparseKeys keys = build_sparse_keys(arch, 10, {.key_score = score});
  for (int t = 0; t < 10; ++t) {
    const auto list = keys.keys_of(t);
    std::vector<std::int32_t> expected;
    for (int s = 0; s <= std::min(t, 3); ++s) expected.push_back(s);
    EXPECT_EQ(std::vector<std::int32_t>(list.begin(), list.end()), expected) << "query " << t;
  }
}

TEST(SparseKeys, BucketWindowsKeepTheMostRecentSameBucketKeys) {
  const SparseArch arch = parse_sparse_arch("sign_bin_lsh", 2);
  // Keys alternate between buckets 0 and 1; every query asks bucket 0: the last two even positions (key t enters
  // before query t reads).
  std::vector<std::int32_t> key_bucket, query_bucket(9, 0);
  for (int t = 0; t < 9; ++t) key_bucket.push_back(t % 2);
  const SparseKeys keys = build_sparse_keys(
      arch, 9, {.sign_bin_query_bucket = query_bucket, .sign_bin_key_bucket = key_bucket, .num_buckets = 2});
  EXPECT_EQ(keys.count[0], 1);
  const auto last = keys.keys_of(8);
  EXPECT_EQ(std::vector<std::int32_t>(last.begin(), last.end()), (std::vector<std::int32_t>{6, 8}));
}

TEST(SparseKeys, RejectBucketsOutOfRangeAndMissingInputs) {
  const SparseArch arch = parse_sparse_arch("sign_bin_lsh");
  const std::vector<std::int32_t> bad = {0, 5}, good = {0, 1};
  EXPECT_THROW(
      build_sparse_keys(arch, 2, {.sign_bin_query_bucket = good, .sign_bin_key_bucket = bad, .num_buckets = 4}), Error);
  EXPECT_THROW(build_sparse_keys(parse_sparse_arch("key_selection"), 2, {}), Error);
}

}  // namespace
}  // namespace hax::ops::sparse::testing
