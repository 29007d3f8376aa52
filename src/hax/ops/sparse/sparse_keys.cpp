#include "hax/ops/sparse/sparse_keys.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "hax/engine/error.h"

namespace hax::ops::sparse {
namespace {

struct PatternName {
  std::string_view name;
  Pattern pattern;
};

constexpr PatternName kPatternNames[] = {
    {"sliding_window", Pattern::sliding_window},
    {"sink", Pattern::sink},
    {"dilated", Pattern::dilated},
    {"sign_bin_lsh", Pattern::sign_bin_lsh},
    {"argmax_lsh", Pattern::argmax_lsh},
    {"key_selection", Pattern::key_selection},
    {"full", Pattern::full},
};

Pattern pattern_named(std::string_view name) {
  for (const PatternName& known : kPatternNames)
    if (known.name == name) return known.pattern;
  std::string names;
  for (const PatternName& known : kPatternNames) names += cat(names.empty() ? "" : ", ", known.name);
  fail("unknown sparse pattern '", name, "' (known: ", names, ")");
}

// The last w key positions inserted into each bucket ("the w most recent same-bucket keys"): ring buffers, so a
// query reads at most w keys whatever the sequence length.
class BucketWindows {
 public:
  BucketWindows(int num_buckets, int w) : w_(w), slots_(std::size_t(num_buckets) * w), inserted_(num_buckets, 0) {}

  void insert(int bucket, std::int32_t s) {
    slots_[std::size_t(bucket) * w_ + inserted_[bucket] % w_] = s;
    ++inserted_[bucket];
  }
  void append_keys(int bucket, std::vector<std::int32_t>& out) const {
    const std::int32_t* slots = slots_.data() + std::size_t(bucket) * w_;
    out.insert(out.end(), slots, slots + std::min<std::int64_t>(inserted_[bucket], w_));
  }

 private:
  int w_;
  std::vector<std::int32_t> slots_;     // (num_buckets, w)
  std::vector<std::int64_t> inserted_;  // (num_buckets) keys ever inserted
};

// The w best keys offered so far in the order (score desc, index asc): cumulative top-w with ties going to the
// lower position. Keys arrive in increasing position, so a newcomer that ties the current worst is not admitted.
class TopKeys {
 public:
  explicit TopKeys(int w) : w_(w) { heap_.reserve(w); }

  void offer(std::int32_t s, float score) {
    const Entry entry{score, s};
    if (int(heap_.size()) < w_) {
      heap_.push_back(entry);
      std::push_heap(heap_.begin(), heap_.end(), ranks_higher);
    } else if (ranks_higher(entry, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), ranks_higher);
      heap_.back() = entry;
      std::push_heap(heap_.begin(), heap_.end(), ranks_higher);
    }
  }
  void append_keys(std::vector<std::int32_t>& out) const {
    for (const Entry& e : heap_) out.push_back(e.s);
  }

 private:
  struct Entry {
    float score;
    std::int32_t s;
  };
  // Used as the heap's "less than", it keeps the lowest-ranked entry (the one to evict) at the front.
  static bool ranks_higher(const Entry& a, const Entry& b) {
    return a.score > b.score || (a.score == b.score && a.s < b.s);
  }

  int w_;
  std::vector<Entry> heap_;
};

void append_range(std::vector<std::int32_t>& out, int first, int last) {  // [first, last]
  for (int s = std::max(first, 0); s <= last; ++s) out.push_back(s);
}

void check_buckets(std::span<const std::int32_t> buckets, int T, int num_buckets, const char* what) {
  check(int(buckets.size()) == T, what, " has ", buckets.size(), " entries, expected T = ", T);
  for (std::int32_t b : buckets)
    check(b >= 0 && b < num_buckets, what, " holds bucket ", b, " outside [0, ", num_buckets, ")");
}

void check_inputs(const SparseArch& arch, int T, const PatternInputs& in) {
  if (arch.has(Pattern::sign_bin_lsh)) {
    check_buckets(in.sign_bin_query_bucket, T, in.num_buckets, "sign_bin_query_bucket");
    check_buckets(in.sign_bin_key_bucket, T, in.num_buckets, "sign_bin_key_bucket");
  }
  if (arch.has(Pattern::argmax_lsh)) {
    check_buckets(in.argmax_query_bucket, T, in.num_buckets, "argmax_query_bucket");
    check_buckets(in.argmax_key_bucket, T, in.num_buckets, "argmax_key_bucket");
  }
  if (arch.has(Pattern::key_selection))
    check(int(in.key_score.size()) == T, "key_score has ", in.key_score.size(), " entries, expected T = ", T);
}

// The streaming state of the data-dependent patterns, advanced one position at a time. A pattern the arch lacks
// keeps an empty state that is never touched.
struct StreamingPatterns {
  bool uses_sign_bin, uses_argmax, uses_top;
  BucketWindows sign_bin, argmax;
  TopKeys top;

  StreamingPatterns(const SparseArch& arch, const PatternInputs& in)
      : uses_sign_bin(arch.has(Pattern::sign_bin_lsh)),
        uses_argmax(arch.has(Pattern::argmax_lsh)),
        uses_top(arch.has(Pattern::key_selection)),
        sign_bin(uses_sign_bin ? in.num_buckets : 0, arch.budget),
        argmax(uses_argmax ? in.num_buckets : 0, arch.budget),
        top(uses_top ? arch.budget : 0) {}

  // Key t enters before query t reads, so s = t is a candidate of query t.
  void insert_key(int t, const PatternInputs& in) {
    if (uses_sign_bin) sign_bin.insert(in.sign_bin_key_bucket[t], t);
    if (uses_argmax) argmax.insert(in.argmax_key_bucket[t], t);
    if (uses_top) top.offer(t, in.key_score[t]);
  }
};

void append_pattern_keys(Pattern pattern, const SparseArch& arch, int t, const StreamingPatterns& streams,
                         const PatternInputs& in, std::vector<std::int32_t>& out) {
  const int w = arch.budget, d = arch.dilation;
  switch (pattern) {
    case Pattern::sliding_window:
      return append_range(out, t - w + 1, t);
    case Pattern::sink:
      return append_range(out, 0, std::min(w - 1, t));
    case Pattern::dilated:
      for (int s = d - 1; s <= t; s += d) out.push_back(s);
      return;
    case Pattern::sign_bin_lsh:
      return streams.sign_bin.append_keys(in.sign_bin_query_bucket[t], out);
    case Pattern::argmax_lsh:
      return streams.argmax.append_keys(in.argmax_query_bucket[t], out);
    case Pattern::key_selection:
      return streams.top.append_keys(out);
    case Pattern::full:
      return append_range(out, 0, t);
  }
}

}  // namespace

bool SparseArch::has(Pattern p) const { return std::find(patterns.begin(), patterns.end(), p) != patterns.end(); }

SparseArch parse_sparse_arch(std::string_view name, int total_keys, int data_max_length) {
  SparseArch arch;
  for (std::size_t start = 0;;) {
    const std::size_t plus = name.find('+', start);
    const Pattern p = pattern_named(name.substr(start, plus == std::string_view::npos ? plus : plus - start));
    check(!arch.has(p), "sparse arch '", name, "' names a pattern twice");
    arch.patterns.push_back(p);
    if (plus == std::string_view::npos) break;
    start = plus + 1;
  }
  const int n = int(arch.patterns.size());
  arch.budget = total_keys / n;
  check(arch.budget > 0, "sparse arch '", name, "': ", total_keys, " keys split over ", n, " patterns leaves none");
  arch.dilation = data_max_length / arch.budget;
  check(arch.dilation > 0, "sparse arch '", name, "': data_max_length ", data_max_length, " < budget ", arch.budget);
  return arch;
}

std::size_t SparseKeys::total() const { return std::accumulate(count.begin(), count.end(), std::size_t(0)); }

int max_keys_per_query(const SparseArch& arch, int T) {
  std::int64_t sum = 0;
  for (Pattern p : arch.patterns)
    sum += p == Pattern::full ? T : p == Pattern::dilated ? T / arch.dilation : arch.budget;
  return int(std::min<std::int64_t>(sum, T));
}

SparseKeys build_sparse_keys(const SparseArch& arch, int T, const PatternInputs& in) {
  check_inputs(arch, T, in);
  SparseKeys keys;
  keys.T = T;
  keys.k_max = max_keys_per_query(arch, T);
  keys.index.assign(std::size_t(T) * keys.k_max, 0);
  keys.count.assign(T, 0);
  StreamingPatterns streams(arch, in);
  std::vector<std::int32_t> row;
  for (int t = 0; t < T; ++t) {
    streams.insert_key(t, in);
    row.clear();
    for (Pattern p : arch.patterns) append_pattern_keys(p, arch, t, streams, in, row);
    std::sort(row.begin(), row.end());
    row.erase(std::unique(row.begin(), row.end()), row.end());  // the union counts a key chosen twice once
    std::copy(row.begin(), row.end(), keys.index.begin() + std::size_t(t) * keys.k_max);
    keys.count[t] = int(row.size());
  }
  return keys;
}

}  // namespace hax::ops::sparse
