// Shared inputs of the sparse-attention tests: the arch names under test and random pattern inputs (buckets and
// scores) with the ties the builders must break correctly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hax/engine/rng.h"
#include "hax/ops/sparse/sparse_keys.h"

namespace hax::ops::sparse::testing {

// Every pattern alone and the combinations of the paper's table.
inline const std::vector<std::string>& archs_under_test() {
  static const std::vector<std::string> archs = {"sliding_window",
                                                 "sink",
                                                 "dilated",
                                                 "sign_bin_lsh",
                                                 "argmax_lsh",
                                                 "key_selection",
                                                 "full",
                                                 "sliding_window+sink",
                                                 "sliding_window+dilated",
                                                 "sign_bin_lsh+key_selection"};
  return archs;
}

// Owns what a PatternInputs points at (random ones below, or the buckets and scores of a pipeline).
struct OwnedPatternInputs {
  std::vector<std::int32_t> sign_q, sign_k, argmax_q, argmax_k;
  std::vector<float> score;
  int num_buckets = 0;

  PatternInputs view() const { return {sign_q, sign_k, argmax_q, argmax_k, num_buckets, score}; }
};

// Buckets uniform in [0, num_buckets); scores from `score_levels` distinct values, so that few levels make ties.
inline OwnedPatternInputs random_pattern_inputs(int T, int num_buckets, int score_levels, Rng rng) {
  OwnedPatternInputs r;
  r.num_buckets = num_buckets;
  for (auto* buckets : {&r.sign_q, &r.sign_k, &r.argmax_q, &r.argmax_k})
    for (int t = 0; t < T; ++t) buckets->push_back(std::int32_t(rng.below(num_buckets)));
  for (int t = 0; t < T; ++t) r.score.push_back(float(rng.below(score_levels)) - 0.5f * score_levels);
  return r;
}

// Positions [first, first + count) of every span of `in` (the spans of random_pattern_inputs all hold T entries).
inline PatternInputs slice(const PatternInputs& in, int first, int count) {
  auto part = [&](auto span) { return span.empty() ? span : span.subspan(first, count); };
  return {part(in.sign_bin_query_bucket), part(in.sign_bin_key_bucket), part(in.argmax_query_bucket),
          part(in.argmax_key_bucket), in.num_buckets, part(in.key_score)};
}

inline std::vector<float> random_floats(std::size_t n, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  rng.fill_uniform(v, lo, hi);
  return v;
}

}  // namespace hax::ops::sparse::testing
