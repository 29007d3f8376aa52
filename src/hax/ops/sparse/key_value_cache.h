// The keys and values streaming inference keeps (layers/mixer_state.h): those of the positions some pattern still
// holds (KeyHolds, sparse_keys.h), no others. Rows live in a pool of slots, and a position no pattern holds any
// more hands its slot on to a newer one, so the pool of a bounded pattern stops growing at its bound (window w,
// sink w, LSH at most buckets x w, key selection w; plus the chunk in flight), and from then on a chunk no larger
// than the earlier ones allocates nothing. Only `full` (every position) and `dilated` (one in `dilation`) grow,
// by amortized doubling.
// A value type: a copy continues on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "hax/ops/sparse/sparse_keys.h"

namespace hax::ops::sparse {

namespace detail {

// position -> slot for the positions held: open addressing, linear probing, a power-of-two table at most half
// full. Erasing shifts the entries after it back (no tombstones), so a table whose size stops growing never
// rehashes and never allocates.
class PositionSlots {
 public:
  void insert(std::int32_t position, std::int32_t slot);
  std::int32_t find(std::int32_t position) const;  // -1 when absent
  std::int32_t erase(std::int32_t position);       // its slot; hax::Error when absent
  std::vector<std::int32_t> positions() const;     // the positions held, ascending
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return table_.capacity() * sizeof(Entry); }

 private:
  struct Entry {
    std::int32_t position = -1;  // -1: empty
    std::int32_t slot = -1;
  };
  std::size_t home(std::int32_t position) const;
  std::size_t locate(std::int32_t position) const;  // its entry, or the empty one where the probe stops
  void grow();

  std::vector<Entry> table_;
  int bits_ = 0;  // table_.size() == 2^bits_
  std::size_t size_ = 0;
};

}  // namespace detail

class KeyValueCache {
 public:
  KeyValueCache(int key_width, int value_width) : key_width_(key_width), value_width_(value_width) {}

  // Copies the rows of a new position (positions arrive in increasing order, once each) into a free slot. It is
  // held by no pattern until apply() counts the holds of its step: the chunk's attention runs in between.
  void append(std::int32_t position, const float* key, const float* value);
  // Rewrites the indices of `keys` (positions, all held or appended since the last apply) into slot rows; each
  // list keeps the order of its positions, so the attention sums in the order of the whole-sequence forward.
  void to_slots(SparseKeys& keys) const;
  // Counts the holds of the steps of positions first, first + 1, ... (holds.holders) and the holds that ended
  // (holds.released); a position left with none gives its slot back. Call after the chunk's attention.
  void apply(const KeyHolds& holds, std::int32_t first);

  const float* keys() const { return keys_.data(); }      // (slots, key_width)
  const float* values() const { return values_.data(); }  // (slots, value_width)
  int slots() const { return int(holds_.size()); }        // rows in the pool, in use or free
  int held() const { return int(map_.size()); }           // positions kept
  bool keeps(std::int32_t position) const { return map_.find(position) >= 0; }
  std::size_t bytes() const;                              // memory reserved, spare capacity included

  // Saved states (inference/state_file.h) keep the positions held, ascending, with their holds and rows: which
  // slot a row sat in changes nothing a query sees (each key list keeps the order of its positions).
  int key_width() const { return key_width_; }
  int value_width() const { return value_width_; }
  std::vector<std::int32_t> positions() const { return map_.positions(); }
  int holds_of(std::int32_t position) const { return holds_[slot_of(position)]; }
  const float* key_of(std::int32_t position) const { return keys() + std::size_t(slot_of(position)) * key_width_; }
  const float* value_of(std::int32_t position) const {
    return values() + std::size_t(slot_of(position)) * value_width_;
  }
  // append() with its holds already counted (> 0), for positions not kept yet, in increasing order.
  void restore(std::int32_t position, const float* key, const float* value, int holds);

 private:
  std::int32_t slot_of(std::int32_t position) const;  // hax::Error when not kept
  void forget(std::int32_t position) { free_.push_back(map_.erase(position)); }

  int key_width_, value_width_;
  std::vector<float> keys_, values_;
  std::vector<std::int32_t> holds_;  // (slots) how many patterns hold the slot's position
  std::vector<std::int32_t> free_;   // slots to reuse, the last freed first
  detail::PositionSlots map_;
};

}  // namespace hax::ops::sparse
