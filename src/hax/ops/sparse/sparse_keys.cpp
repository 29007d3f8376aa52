#include "hax/ops/sparse/sparse_keys.h"

#include <algorithm>
#include <cmath>
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

void append_range(std::vector<std::int32_t>& out, int first, int last) {  // [first, last]
  for (int s = std::max(first, 0); s <= last; ++s) out.push_back(s);
}

void check_length(std::size_t size, int T, const char* what) {
  check(int(size) == T, what, " has ", size, " entries, expected T = ", T);
}

void check_inputs(const SparseArch& arch, int T, const PatternInputs& in) {
  if (arch.has(Pattern::sign_bin_lsh)) {
    check_length(in.sign_bin_query_bucket.size(), T, "sign_bin_query_bucket");
    check_length(in.sign_bin_key_bucket.size(), T, "sign_bin_key_bucket");
  }
  if (arch.has(Pattern::argmax_lsh)) {
    check_length(in.argmax_query_bucket.size(), T, "argmax_query_bucket");
    check_length(in.argmax_key_bucket.size(), T, "argmax_key_bucket");
  }
  if (arch.has(Pattern::key_selection)) check_length(in.key_score.size(), T, "key_score");
}

// Position t of the spans the arch reads (the others may be empty).
PositionInputs position_inputs(const SparseArch& arch, const PatternInputs& in, int t) {
  PositionInputs at;
  if (arch.has(Pattern::sign_bin_lsh))
    at.sign_bin_query_bucket = in.sign_bin_query_bucket[t], at.sign_bin_key_bucket = in.sign_bin_key_bucket[t];
  if (arch.has(Pattern::argmax_lsh))
    at.argmax_query_bucket = in.argmax_query_bucket[t], at.argmax_key_bucket = in.argmax_key_bucket[t];
  if (arch.has(Pattern::key_selection)) at.key_score = in.key_score[t];
  return at;
}

}  // namespace

bool SparseArch::has(Pattern p) const { return std::find(patterns.begin(), patterns.end(), p) != patterns.end(); }

bool SparseArch::semantics_invariant() const {
  const bool data_dependent = has(Pattern::sign_bin_lsh) || has(Pattern::argmax_lsh) || has(Pattern::key_selection);
  const bool never_empty = has(Pattern::sliding_window) || has(Pattern::full) || has(Pattern::sink);
  return !data_dependent && never_empty;
}

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
  return SparseKeyStream(arch, in.num_buckets).advance(T, in);
}

void build_sparse_keys(const SparseArch& arch, int T, const PatternInputs& in, SparseKeys& keys) {
  SparseKeyStream(arch, in.num_buckets).advance(T, in, keys);
}

namespace detail {

BucketWindows::BucketWindows(int num_buckets, int w)
    : w_(w), slots_(std::size_t(num_buckets) * w), inserted_(num_buckets, 0) {}

std::int32_t BucketWindows::insert(int bucket, std::int32_t s) {
  std::int32_t& slot = slots_[std::size_t(bucket) * w_ + inserted_[bucket] % w_];
  const std::int32_t evicted = inserted_[bucket] >= w_ ? slot : -1;
  slot = s;
  ++inserted_[bucket];
  return evicted;
}

void BucketWindows::append_keys(int bucket, std::vector<std::int32_t>& out) const {
  const std::int32_t* slots = slots_.data() + std::size_t(bucket) * w_;
  out.insert(out.end(), slots, slots + std::min<std::int64_t>(inserted_[bucket], w_));
}

void BucketWindows::restore(std::vector<std::int32_t> slots, std::vector<std::int64_t> inserted,
                            std::int32_t position) {
  check(slots.size() == slots_.size() && inserted.size() == inserted_.size(), "LSH rings: ", slots.size(),
        " slots and ", inserted.size(), " counters, expected ", slots_.size(), " and ", inserted_.size());
  for (std::size_t b = 0; b < inserted.size(); ++b) {
    check(inserted[b] >= 0 && inserted[b] <= position, "LSH ring ", b, ": ", inserted[b], " keys inserted after ",
          position, " positions");
    const std::int64_t live = std::min<std::int64_t>(inserted[b], w_);
    for (std::int64_t i = 0; i < live; ++i) {
      const std::int32_t s = slots[b * std::size_t(w_) + std::size_t(i)];
      check(s >= 0 && s < position, "LSH ring ", b, " holds position ", s, " outside [0, ", position, ")");
    }
  }
  slots_ = std::move(slots);
  inserted_ = std::move(inserted);
}

void BucketWindows::count_holds(std::vector<std::int32_t>& holds) const {
  std::vector<std::int32_t> keys;
  for (std::size_t b = 0; b < inserted_.size(); ++b) {
    keys.clear();
    append_keys(int(b), keys);
    for (const std::int32_t s : keys) ++holds[std::size_t(s)];
  }
}

void TopKeys::restore(std::vector<Entry> entries, std::int32_t position) {
  check(int(entries.size()) <= w_, "top-w set: ", entries.size(), " keys, at most ", w_);
  std::vector<std::int32_t> seen;
  for (const Entry& e : entries) {
    check(e.s >= 0 && e.s < position, "top-w set holds position ", e.s, " outside [0, ", position, ")");
    check(!std::isnan(e.score), "top-w set: position ", e.s, " has a NaN score");
    seen.push_back(e.s);
  }
  std::sort(seen.begin(), seen.end());
  check(std::adjacent_find(seen.begin(), seen.end()) == seen.end(), "top-w set holds a position twice");
  check(std::is_heap(entries.begin(), entries.end(), ranks_higher), "top-w set is not in heap order");
  heap_ = std::move(entries);
  heap_.reserve(w_);
}

TopKeys::TopKeys(int w) : w_(w) { heap_.reserve(w); }

TopKeys::Offered TopKeys::offer(std::int32_t s, float score) {
  const Entry entry{score, s};
  if (int(heap_.size()) < w_) {
    heap_.push_back(entry);
    std::push_heap(heap_.begin(), heap_.end(), ranks_higher);
    return {true, -1};
  }
  if (w_ == 0 || !ranks_higher(entry, heap_.front())) return {};
  std::pop_heap(heap_.begin(), heap_.end(), ranks_higher);
  const std::int32_t evicted = heap_.back().s;
  heap_.back() = entry;
  std::push_heap(heap_.begin(), heap_.end(), ranks_higher);
  return {true, evicted};
}

void TopKeys::append_keys(std::vector<std::int32_t>& out) const {
  for (const Entry& e : heap_) out.push_back(e.s);
}

bool TopKeys::ranks_higher(const Entry& a, const Entry& b) {
  return a.score > b.score || (a.score == b.score && a.s < b.s);
}

}  // namespace detail

// A pattern the arch lacks keeps an empty state that is never touched.
SparseKeyStream::SparseKeyStream(const SparseArch& arch, int num_buckets)
    : arch_(arch),
      num_buckets_(num_buckets),
      sign_bin_(arch.has(Pattern::sign_bin_lsh) ? num_buckets : 0, arch.budget),
      argmax_(arch.has(Pattern::argmax_lsh) ? num_buckets : 0, arch.budget),
      top_(arch.has(Pattern::key_selection) ? arch.budget : 0) {}

SparseKeyStream::Snapshot SparseKeyStream::snapshot() const {
  return {t_, sign_bin_.slots(), argmax_.slots(), sign_bin_.inserted(), argmax_.inserted(), top_.entries()};
}

void SparseKeyStream::restore(Snapshot s) {
  check(s.position >= 0, "key stream: negative position ", s.position);
  sign_bin_.restore(std::move(s.sign_bin_slots), std::move(s.sign_bin_inserted), s.position);
  argmax_.restore(std::move(s.argmax_slots), std::move(s.argmax_inserted), s.position);
  top_.restore(std::move(s.top), s.position);
  t_ = s.position;
}

SparseKeyStream::Held SparseKeyStream::held(std::size_t limit) const {
  const int w = arch_.budget, d = arch_.dilation, t = t_;
  // The data-dependent holds, once per ring or top-w entry.
  std::vector<std::int32_t> listed;
  for (const detail::BucketWindows* rings : {&sign_bin_, &argmax_})
    for (std::size_t b = 0; b < rings->inserted().size(); ++b) rings->append_keys(int(b), listed);
  top_.append_keys(listed);
  std::sort(listed.begin(), listed.end());
  // Every candidate, at most limit + 1 from each pattern that may hold many.
  std::vector<std::int32_t> candidates = listed;
  const auto add_range = [&](std::int64_t lo, std::int64_t hi) {  // [lo, hi)
    for (std::int64_t s = std::max<std::int64_t>(lo, 0); s < hi && s - lo <= std::int64_t(limit); ++s)
      candidates.push_back(std::int32_t(s));
  };
  if (arch_.has(Pattern::sliding_window)) add_range(std::int64_t(t) - w + 1, t);
  if (arch_.has(Pattern::sink)) add_range(0, std::min(w, t));
  if (arch_.has(Pattern::full)) add_range(0, t);
  if (arch_.has(Pattern::dilated))
    for (std::int64_t s = d - 1, n = 0; s < t && n <= std::int64_t(limit); s += d, ++n)
      candidates.push_back(std::int32_t(s));
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  if (candidates.size() > limit + 1) candidates.resize(limit + 1);
  Held held;
  for (const std::int32_t s : candidates) {
    const auto [first, last] = std::equal_range(listed.begin(), listed.end(), s);
    int h = int(last - first);
    h += arch_.has(Pattern::sliding_window) && s > t - w;
    h += fixed_holds(s);
    if (h == 0) continue;
    held.positions.push_back(s);
    held.holds.push_back(h);
  }
  return held;
}

void SparseKeyStream::check_bucket(std::int32_t bucket, const char* what) const {
  check(bucket >= 0 && bucket < num_buckets_, what, " holds bucket ", bucket, " outside [0, ", num_buckets_, ")");
}

void SparseKeyStream::next(const PositionInputs& in, std::vector<std::int32_t>& keys, KeyHolds* holds) {
  std::vector<std::int32_t>* released = holds ? &holds->released : nullptr;
  const int entered = enter_key(in, released);
  keys.clear();
  for (Pattern p : arch_.patterns) append_pattern_keys(p, in, keys);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());  // the union counts a key chosen twice once
  const int ranged = range_holds(released);
  if (holds) holds->holders.push_back(entered + ranged);
  ++t_;
}

int SparseKeyStream::enter_key(const PositionInputs& in, std::vector<std::int32_t>* released) {
  int holders = 0;
  auto let_go = [&](std::int32_t s) {
    if (s >= 0 && released) released->push_back(s);
  };
  if (arch_.has(Pattern::sign_bin_lsh)) {
    check_bucket(in.sign_bin_query_bucket, "sign_bin_query_bucket");
    check_bucket(in.sign_bin_key_bucket, "sign_bin_key_bucket");
    let_go(sign_bin_.insert(in.sign_bin_key_bucket, t_));
    ++holders;
  }
  if (arch_.has(Pattern::argmax_lsh)) {
    check_bucket(in.argmax_query_bucket, "argmax_query_bucket");
    check_bucket(in.argmax_key_bucket, "argmax_key_bucket");
    let_go(argmax_.insert(in.argmax_key_bucket, t_));
    ++holders;
  }
  if (arch_.has(Pattern::key_selection)) {
    const detail::TopKeys::Offered offered = top_.offer(t_, in.key_score);
    let_go(offered.evicted);
    holders += offered.admitted;
  }
  return holders;
}

int SparseKeyStream::range_holds(std::vector<std::int32_t>* released) const {
  const int w = arch_.budget, t = t_;
  int holders = 0;
  if (arch_.has(Pattern::sliding_window)) {
    ++holders;
    // Query t + 1's window starts at t - w + 2: the key at t - w + 1 was the last query's oldest.
    if (t - w + 1 >= 0 && released) released->push_back(t - w + 1);
  }
  return holders + fixed_holds(t);
}

int SparseKeyStream::fixed_holds(std::int64_t s) const {
  const int w = arch_.budget, d = arch_.dilation;
  return (arch_.has(Pattern::sink) && s < w) + (arch_.has(Pattern::dilated) && s % d == d - 1) +
         arch_.has(Pattern::full);
}

void SparseKeyStream::append_pattern_keys(Pattern pattern, const PositionInputs& in,
                                          std::vector<std::int32_t>& out) const {
  const int w = arch_.budget, d = arch_.dilation, t = t_;
  switch (pattern) {
    case Pattern::sliding_window:
      return append_range(out, t - w + 1, t);
    case Pattern::sink:
      return append_range(out, 0, std::min(w - 1, t));
    case Pattern::dilated:
      for (int s = d - 1; s <= t; s += d) out.push_back(s);
      return;
    case Pattern::sign_bin_lsh:
      return sign_bin_.append_keys(in.sign_bin_query_bucket, out);
    case Pattern::argmax_lsh:
      return argmax_.append_keys(in.argmax_query_bucket, out);
    case Pattern::key_selection:
      return top_.append_keys(out);
    case Pattern::full:
      return append_range(out, 0, t);
  }
}

SparseKeys SparseKeyStream::advance(int T, const PatternInputs& in) {
  SparseKeys keys;
  advance_into(T, in, keys, nullptr);
  return keys;
}

void SparseKeyStream::advance(int T, const PatternInputs& in, SparseKeys& keys, KeyHolds& holds) {
  advance_into(T, in, keys, &holds);
}

void SparseKeyStream::advance(int T, const PatternInputs& in, SparseKeys& keys) { advance_into(T, in, keys, nullptr); }

void SparseKeyStream::advance_into(int T, const PatternInputs& in, SparseKeys& keys, KeyHolds* holds) {
  check_inputs(arch_, T, in);
  keys.T = T;
  keys.query_offset = t_;
  keys.slot_rows = 0;
  keys.k_max = max_keys_per_query(arch_, t_ + T);
  keys.index.assign(std::size_t(T) * keys.k_max, 0);
  keys.count.assign(T, 0);
  if (holds) holds->clear();
  for (int t = 0; t < T; ++t) {
    next(position_inputs(arch_, in, t), row_, holds);
    std::copy(row_.begin(), row_.end(), keys.index.begin() + std::size_t(t) * keys.k_max);
    keys.count[t] = int(row_.size());
  }
}

}  // namespace hax::ops::sparse
