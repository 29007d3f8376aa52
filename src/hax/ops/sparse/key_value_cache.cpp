#include "hax/ops/sparse/key_value_cache.h"

#include <algorithm>

#include "hax/engine/error.h"

namespace hax::ops::sparse {

namespace detail {

std::size_t PositionSlots::home(std::int32_t position) const {
  // Fibonacci hashing: positions arrive in runs of consecutive integers, which the multiply spreads out.
  return std::size_t((std::uint64_t(std::uint32_t(position)) * 0x9E3779B97F4A7C15ull) >> (64 - bits_));
}

std::size_t PositionSlots::locate(std::int32_t position) const {
  const std::size_t mask = table_.size() - 1;
  std::size_t i = home(position);
  while (table_[i].position != -1 && table_[i].position != position) i = (i + 1) & mask;
  return i;
}

void PositionSlots::grow() {
  std::vector<Entry> old = std::move(table_);
  bits_ = std::max(bits_ + 1, 4);
  table_.assign(std::size_t(1) << bits_, Entry{});
  for (const Entry& e : old)
    if (e.position != -1) table_[locate(e.position)] = e;
}

void PositionSlots::insert(std::int32_t position, std::int32_t slot) {
  if (2 * (size_ + 1) > table_.size()) grow();
  Entry& e = table_[locate(position)];
  check(e.position == -1, "key-value cache: position ", position, " is already kept");
  e = {position, slot};
  ++size_;
}

std::int32_t PositionSlots::find(std::int32_t position) const {
  if (table_.empty()) return -1;
  const Entry& e = table_[locate(position)];
  return e.position == position ? e.slot : -1;
}

std::vector<std::int32_t> PositionSlots::positions() const {
  std::vector<std::int32_t> out;
  out.reserve(size_);
  for (const Entry& e : table_)
    if (e.position >= 0) out.push_back(e.position);
  std::sort(out.begin(), out.end());
  return out;
}

std::int32_t PositionSlots::erase(std::int32_t position) {
  const std::int32_t slot = find(position);
  check(slot >= 0, "key-value cache: position ", position, " is not kept");
  const std::size_t mask = table_.size() - 1;
  std::size_t hole = locate(position);
  // Backward-shift deletion: an entry after the hole whose home is not in (hole, at] would no longer be found
  // past the hole, so it moves into it, and the hole moves on.
  for (std::size_t at = (hole + 1) & mask; table_[at].position != -1; at = (at + 1) & mask) {
    const std::size_t h = home(table_[at].position);
    const bool stays = hole < at ? (h > hole && h <= at) : (h > hole || h <= at);
    if (stays) continue;
    table_[hole] = table_[at];
    hole = at;
  }
  table_[hole] = Entry{};
  --size_;
  return slot;
}

}  // namespace detail

void KeyValueCache::append(std::int32_t position, const float* key, const float* value) {
  std::int32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = slots();
    holds_.push_back(0);
    keys_.resize(keys_.size() + key_width_);  // amortized: std::vector grows its capacity geometrically
    values_.resize(values_.size() + value_width_);
  }
  std::copy_n(key, key_width_, keys_.begin() + std::size_t(slot) * key_width_);
  std::copy_n(value, value_width_, values_.begin() + std::size_t(slot) * value_width_);
  holds_[slot] = 0;
  map_.insert(position, slot);
}

void KeyValueCache::restore(std::int32_t position, const float* key, const float* value, int holds) {
  check(holds > 0, "key-value cache: position ", position, " restored with ", holds, " holds");
  check(!keeps(position), "key-value cache: position ", position, " restored twice");
  append(position, key, value);
  holds_[slot_of(position)] = holds;
}

std::int32_t KeyValueCache::slot_of(std::int32_t position) const {
  const std::int32_t slot = map_.find(position);
  check(slot >= 0, "key-value cache: position ", position, " is not kept (no pattern holds it)");
  return slot;
}

void KeyValueCache::to_slots(SparseKeys& keys) const {
  check(keys.slot_rows == 0, "key-value cache: the key lists are already slot rows");
  for (int t = 0; t < keys.T; ++t) {
    std::int32_t* list = keys.index.data() + std::size_t(t) * keys.k_max;
    for (int j = 0; j < keys.count[t]; ++j) list[j] = slot_of(list[j]);
  }
  keys.slot_rows = std::max(slots(), 1);
}

void KeyValueCache::apply(const KeyHolds& holds, std::int32_t first) {
  // Every hold of the chunk is counted before any release: a position may be held and let go within one chunk.
  for (std::size_t i = 0; i < holds.holders.size(); ++i) {
    const std::int32_t position = first + std::int32_t(i);
    const std::int32_t slot = slot_of(position);
    holds_[slot] += holds.holders[i];
    if (holds_[slot] == 0) forget(position);  // no pattern lists it after its own step
  }
  for (std::int32_t position : holds.released) {
    const std::int32_t slot = slot_of(position);
    check(holds_[slot] > 0, "key-value cache: position ", position, " released more often than held");
    if (--holds_[slot] == 0) forget(position);
  }
}

std::size_t KeyValueCache::bytes() const {
  return (keys_.capacity() + values_.capacity()) * sizeof(float) +
         (holds_.capacity() + free_.capacity()) * sizeof(std::int32_t) + map_.bytes();
}

}  // namespace hax::ops::sparse
