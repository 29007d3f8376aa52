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
  // Whether `paper` and `causal` compute the same bits with this arch: no pattern looks at LSH or key-selection
  // statistics (nor has a gate loss), and every query's list holds a key by construction (a window or `full` holds
  // the query itself, a sink position 0), so `paper`'s uniform fallback never fires. Test:
  // SparseModel.SemanticsInvariantArchsComputeTheSameBitsUnderBothSemantics.
  bool semantics_invariant() const;
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

// One position's entries of PatternInputs.
struct PositionInputs {
  std::int32_t sign_bin_query_bucket = 0, sign_bin_key_bucket = 0;
  std::int32_t argmax_query_bucket = 0, argmax_key_bucket = 0;
  float key_score = 0;
};

// For each query t (0..T-1) its keys: index[t * k_max + j] for j < count[t], sorted ascending, each at most once,
// all <= query_offset + t. Entries past count[t] are unspecified. An empty list (count 0) is possible for dilated
// and the LSH patterns; what attention then does depends on the semantics (sparse_attention.h).
// query_offset is 0 for a whole sequence. A chunk of a longer sequence (streaming inference) holds the queries at
// positions query_offset .. query_offset + T - 1, and its key indices are positions in the whole sequence, so the
// keys of the chunk live in query_offset + T rows (key_rows()).
// Streaming inference keeps only the rows some pattern can still reach, in the slots of a cache
// (key_value_cache.h), which rewrites the indices into slot rows: then slot_rows > 0 is the cache's row count, and
// a list stays in the order of its positions though its slot rows are in none.
struct SparseKeys {
  int T = 0, k_max = 0;
  std::vector<std::int32_t> index;  // (T, k_max)
  std::vector<std::int32_t> count;  // (T)
  int query_offset = 0;
  int slot_rows = 0;  // 0: indices are positions; > 0: rows of a key-value cache of that many rows

  std::span<const std::int32_t> keys_of(int t) const {
    return {index.data() + std::size_t(t) * k_max, std::size_t(count[t])};
  }
  std::size_t total() const;  // number of (query, key) pairs
  int key_rows() const { return slot_rows > 0 ? slot_rows : query_offset + T; }
};

// Which positions the patterns hold after some steps of a SparseKeyStream: those a later query may still attend to,
// the only ones whose keys and values streaming inference keeps (key_value_cache.h). A position's holds start at
// its own step. Window, LSH and key selection end them later: the key slid out of the window, was pushed out of its
// bucket's ring, or dropped out of the top-w (a key that leaves the cumulative top-w never comes back). Sink,
// dilated and full hold for good, and a pattern that never lists a position (key selection not admitting a
// newcomer, dilated off its stride) does not hold it.
struct KeyHolds {
  std::vector<std::int32_t> holders;   // per step, in order: how many patterns hold that step's position after it
  std::vector<std::int32_t> released;  // one entry per hold that ended (a position once per pattern letting go)

  void clear() { holders.clear(), released.clear(); }
};

// The largest list a query of a length-T sequence can get: the sum of the patterns' sizes, capped at T. Dilated
// contributes T // dilation, which exceeds the budget once T > data_max_length (the reference asserts a union of at
// most total_keys keys; here the lists simply grow).
int max_keys_per_query(const SparseArch& arch, int T);

SparseKeys build_sparse_keys(const SparseArch& arch, int T, const PatternInputs& in);
// The same into `keys`, whose buffers are reused: a training step's lists are kept between steps, because at long
// lengths a fresh (T, k_max) list comes from the kernel as new zero pages every step (see sparse_attention.h).
void build_sparse_keys(const SparseArch& arch, int T, const PatternInputs& in, SparseKeys& keys);

namespace detail {

// The last w key positions inserted into each bucket ("the w most recent same-bucket keys"): ring buffers, so a
// query reads at most w keys whatever the sequence length.
class BucketWindows {
 public:
  BucketWindows(int num_buckets, int w);
  // Returns the key pushed out of the bucket's ring, -1 while the ring is not full.
  std::int32_t insert(int bucket, std::int32_t s);
  void append_keys(int bucket, std::vector<std::int32_t>& out) const;

  // Saved states: the rings (num_buckets, w) and the insert counters as they are; restore() takes them back after
  // checking the sizes and that every live entry is a position before `position` (hax::Error otherwise).
  const std::vector<std::int32_t>& slots() const { return slots_; }
  const std::vector<std::int64_t>& inserted() const { return inserted_; }
  void restore(std::vector<std::int32_t> slots, std::vector<std::int64_t> inserted, std::int32_t position);
  // Adds 1 to holds[s] for every position s in a ring.
  void count_holds(std::vector<std::int32_t>& holds) const;

 private:
  int w_;
  std::vector<std::int32_t> slots_;     // (num_buckets, w)
  std::vector<std::int64_t> inserted_;  // (num_buckets) keys ever inserted
};

// The w best keys offered so far in the order (score desc, index asc): cumulative top-w with ties going to the
// lower position. Keys arrive in increasing position, so a newcomer that ties the current worst is not admitted.
class TopKeys {
 public:
  explicit TopKeys(int w);
  struct Offered {
    bool admitted = false;
    std::int32_t evicted = -1;  // the key the newcomer pushed out of a full set, -1 if none
  };
  Offered offer(std::int32_t s, float score);
  void append_keys(std::vector<std::int32_t>& out) const;

  struct Entry {
    float score;
    std::int32_t s;
  };
  // Saved states: the heap as it is laid out; restore() checks its size, its order, and that each position is
  // before `position` and there once (hax::Error otherwise).
  const std::vector<Entry>& entries() const { return heap_; }
  void restore(std::vector<Entry> entries, std::int32_t position);

 private:
  // Used as the heap's "less than", it keeps the lowest-ranked entry (the one to evict) at the front.
  static bool ranks_higher(const Entry& a, const Entry& b);

  int w_;
  std::vector<Entry> heap_;
};

}  // namespace detail

// The key lists of one sequence, built one position at a time: what build_sparse_keys runs over a whole sequence,
// and what streaming inference keeps between chunks. Per position the work is O(k log k) for a list of k keys
// (O(log w) more for key selection) and nothing depends on how many positions came before, except the lists of
// `full` and `dilated`, which grow with the position by definition. Memory: O(num_buckets * w), whatever the length.
// A value type: a copy continues on its own.
class SparseKeyStream {
 public:
  // num_buckets as in PatternInputs (unused without an LSH pattern).
  SparseKeyStream(const SparseArch& arch, int num_buckets);

  // Position t = position(): key t enters the data-dependent patterns first (so s = t is a candidate of query t),
  // then `keys` receives query t's list (sorted, each key once, all <= t). hax::Error on a bucket out of range.
  // With `holds`, the step's holds are appended to it (one holders entry, the releases).
  void next(const PositionInputs& in, std::vector<std::int32_t>& keys, KeyHolds* holds = nullptr);
  // The lists of the next T positions, inputs (T) for them: a SparseKeys with query_offset = position() before the
  // call and k_max = max_keys_per_query(arch, query_offset + T). The spans' sizes are checked.
  SparseKeys advance(int T, const PatternInputs& in);
  // The same into `keys`, whose buffers are reused (decoding allocates nothing once they are large enough), and the
  // T steps' holds into `holds` (cleared first).
  void advance(int T, const PatternInputs& in, SparseKeys& keys, KeyHolds& holds);
  // The same without the holds.
  void advance(int T, const PatternInputs& in, SparseKeys& keys);

  int position() const { return t_; }
  const SparseArch& arch() const { return arch_; }

  // Everything the stream carries, as plain values (saved states, inference/state_file.h). Patterns the arch lacks
  // leave their fields empty.
  struct Snapshot {
    std::int32_t position = 0;
    std::vector<std::int32_t> sign_bin_slots, argmax_slots;        // (buckets, w)
    std::vector<std::int64_t> sign_bin_inserted, argmax_inserted;  // (buckets)
    std::vector<detail::TopKeys::Entry> top;                       // the top-w heap, in its layout
  };
  Snapshot snapshot() const;
  // Takes a snapshot of a stream of the same arch and buckets back: the stream then continues as that one did.
  // hax::Error when its sizes or positions cannot be that stream's.
  void restore(Snapshot snapshot);
  // The past positions some pattern holds, ascending, with how many hold each (the holds KeyValueCache counts):
  // at most `limit` + 1 of them (more means more than limit), so that the work stays bounded by the caller's.
  struct Held {
    std::vector<std::int32_t> positions, holds;
  };
  Held held(std::size_t limit) const;

 private:
  void check_bucket(std::int32_t bucket, const char* what) const;
  // The advance()s: holds (cleared first) may be null.
  void advance_into(int T, const PatternInputs& in, SparseKeys& keys, KeyHolds* holds);
  // Appends query t_'s keys of one pattern (duplicates across patterns possible).
  void append_pattern_keys(Pattern pattern, const PositionInputs& in, std::vector<std::int32_t>& out) const;
  // Key t_ enters the LSH rings and the top-w; returns how many of them hold it, and appends what they let go of
  // to `released` (when not null).
  int enter_key(const PositionInputs& in, std::vector<std::int32_t>* released);
  // The holds of window, sink, dilated and full on key t_ (the window lets go of the key that slides out).
  int range_holds(std::vector<std::int32_t>* released) const;
  // How many of sink, dilated and full hold key s for good (each holds it from its step on, or never).
  int fixed_holds(std::int64_t s) const;

  SparseArch arch_;
  int num_buckets_;
  int t_ = 0;
  detail::BucketWindows sign_bin_, argmax_;
  detail::TopKeys top_;
  std::vector<std::int32_t> row_;  // advance's scratch: one query's list
};

}  // namespace hax::ops::sparse
