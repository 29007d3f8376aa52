// A fast non-cryptographic hash, for file checksums and for the generators' dedup keys.
//
// Four independent 64-bit lanes take one 8-byte word each per 32-byte block (so the multiplies overlap), and each
// step `lane = xorshift((lane ^ word) * odd)` is a bijection of the lane for a fixed word and of the word for a
// fixed lane: a change in any single word always changes its lane, so a flipped byte can never cancel out before
// the final mix. The final mix folds the lanes and the length through a strong avalanche, one lane at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace hax::io {

class Hasher64 {
 public:
  explicit Hasher64(std::uint64_t seed = 0);

  void update(const void* data, std::size_t size);
  std::uint64_t digest() const;

 private:
  std::array<std::uint64_t, 4> lanes_;
  std::array<unsigned char, 32> pending_{};
  std::size_t pending_size_ = 0;
  std::uint64_t total_size_ = 0;
  std::uint64_t seed_;
};

std::uint64_t hash64(const void* data, std::size_t size, std::uint64_t seed = 0);

struct Hash128 {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  friend bool operator==(const Hash128&, const Hash128&) = default;
};

// Two hashes of the same bytes under unrelated seeds.
Hash128 hash128(const void* data, std::size_t size);

}  // namespace hax::io

namespace hax::io {

// An insert-only set of 128-bit hashes (open addressing, linear probing): the generators' "seen" set, which for
// the full joint-recall stream holds 1.47M entries in 32 MiB instead of a node per entry.
class Hash128Set {
 public:
  Hash128Set();
  // True when `key` was not in the set yet.
  bool insert(Hash128 key);
  std::size_t size() const { return size_; }

 private:
  void grow();

  std::vector<Hash128> slots_;  // an all-zero slot is empty; keys are stored with their lowest bit forced to 1
  std::size_t size_ = 0;
};

}  // namespace hax::io
