// Sparse key lists (reference.md §3.5-3.8, done the fast way of §7.1): for each query t, the positions s <= t it may
// attend to, as the union of the patterns of a `sparse_arch` name such as "sign_bin_lsh+key_selection". No T x T
// matrix is built: window, sink and dilated are index ranges, LSH streams per-bucket ring buffers and key selection
// streams a top-w set.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace hax::ops::sparse {

// The names of the reference command line.
enum class Pattern { sliding_window, sink, dilated, sign_bin_lsh, argmax_lsh, key_selection, full };

struct SparseArch {
  std::vector<Pattern> patterns;  // each at most once, in the order of the name
  int budget = 0;                 // w = total_keys // number of patterns: window, sink, bucket and top-k size
  int dilation = 0;               // data_max_length // w: dilated keeps s with s mod dilation == dilation - 1

  bool has(Pattern p) const;
};

// Parses "a+b+c" (names as on the reference command line); hax::Error on an unknown or repeated name, or a budget
// of zero keys.
SparseArch parse_sparse_arch(std::string_view name, int total_keys = 64, int data_max_length = 2048);

// What the data-dependent patterns select on, one entry per position (T). Only the spans of the arch's patterns
// are read. Buckets come from lsh.h, scores from key_scorer.h.
struct PatternInputs {
  std::span<const std::int32_t> sign_bin_query_bucket, sign_bin_key_bucket;  // sign_bin_lsh
  std::span<const std::int32_t> argmax_query_bucket, argmax_key_bucket;      // argmax_lsh
  int num_buckets = 0;  // of the LSH patterns present: 2^num_hash (sign_bin), num_hash (argmax); the larger if both
  std::span<const float> key_score;  // key_selection
};

// For each query t (0..T-1) its keys: index[t * k_max + j] for j < count[t], sorted ascending, each at most once,
// all <= t. Entries past count[t] are unspecified. An empty list (count 0) is possible for dilated and the LSH
// patterns; what attention then does depends on the semantics (sparse_attention.h).
struct SparseKeys {
  int T = 0, k_max = 0;
  std::vector<std::int32_t> index;  // (T, k_max)
  std::vector<std::int32_t> count;  // (T)

  std::span<const std::int32_t> keys_of(int t) const {
    return {index.data() + std::size_t(t) * k_max, std::size_t(count[t])};
  }
  std::size_t total() const;  // number of (query, key) pairs
};

// The largest list a query of a length-T sequence can get: the sum of the patterns' sizes, capped at T. Dilated
// contributes T // dilation, which exceeds the budget once T > data_max_length (the reference asserts a union of at
// most total_keys keys; here the lists simply grow).
int max_keys_per_query(const SparseArch& arch, int T);

SparseKeys build_sparse_keys(const SparseArch& arch, int T, const PatternInputs& in);

}  // namespace hax::ops::sparse
