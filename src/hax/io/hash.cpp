#include "hax/io/hash.h"

#include <algorithm>
#include <cstring>

namespace hax::io {
namespace {

constexpr std::uint64_t kLaneMultiplier = 0x9FB21C651E98DF25ull;
constexpr std::array<std::uint64_t, 4> kLaneStarts = {0x243F6A8885A308D3ull, 0x13198A2E03707344ull,
                                                      0xA4093822299F31D0ull, 0x082EFA98EC4E6C89ull};

std::uint64_t load_word(const unsigned char* bytes) {
  std::uint64_t word;
  std::memcpy(&word, bytes, sizeof word);  // little-endian hosts only: the file formats assume it too
  return word;
}

std::uint64_t lane_step(std::uint64_t lane, std::uint64_t word) {
  lane = (lane ^ word) * kLaneMultiplier;
  return lane ^ (lane >> 29);
}

void mix_block(std::array<std::uint64_t, 4>& lanes, const unsigned char* block) {
  for (std::size_t i = 0; i < lanes.size(); ++i) lanes[i] = lane_step(lanes[i], load_word(block + 8 * i));
}

// Full avalanche: every input bit flips each output bit with probability about 1/2.
std::uint64_t avalanche(std::uint64_t x) {
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  return x ^ (x >> 32);
}

}  // namespace

Hasher64::Hasher64(std::uint64_t seed) : seed_(seed) {
  for (std::size_t i = 0; i < lanes_.size(); ++i) lanes_[i] = kLaneStarts[i] ^ avalanche(seed + i);
}

void Hasher64::update(const void* data, std::size_t size) {
  if (size == 0) return;  // `data` may be null then (an empty vector's), which memcpy must never see
  auto bytes = static_cast<const unsigned char*>(data);
  total_size_ += size;
  if (pending_size_ > 0) {
    const std::size_t take = std::min(size, pending_.size() - pending_size_);
    std::memcpy(pending_.data() + pending_size_, bytes, take);
    pending_size_ += take;
    bytes += take;
    size -= take;
    if (pending_size_ < pending_.size()) return;
    mix_block(lanes_, pending_.data());
    pending_size_ = 0;
  }
  for (; size >= pending_.size(); bytes += pending_.size(), size -= pending_.size()) mix_block(lanes_, bytes);
  std::memcpy(pending_.data(), bytes, size);
  pending_size_ = size;
}

std::uint64_t Hasher64::digest() const {
  // The last partial block is zero-filled; the total length, mixed in below, tells it apart from real zeros.
  auto lanes = lanes_;
  if (pending_size_ > 0) {
    std::array<unsigned char, 32> block{};
    std::memcpy(block.data(), pending_.data(), pending_size_);
    mix_block(lanes, block.data());
  }
  std::uint64_t h = avalanche(seed_ ^ (total_size_ * kLaneMultiplier));
  for (std::uint64_t lane : lanes) h = avalanche(h ^ avalanche(lane));
  return h;
}

std::uint64_t hash64(const void* data, std::size_t size, std::uint64_t seed) {
  Hasher64 hasher(seed);
  hasher.update(data, size);
  return hasher.digest();
}

Hash128 hash128(const void* data, std::size_t size) {
  return {hash64(data, size, 0x5851F42D4C957F2Dull), hash64(data, size, 0x14057B7EF767814Full)};
}

}  // namespace hax::io

namespace hax::io {

Hash128Set::Hash128Set() : slots_(1024) {}

bool Hash128Set::insert(Hash128 key) {
  key.lo |= 1;  // so no real key is the empty marker; 127 bits are still plenty for uniqueness
  if (4 * (size_ + 1) > 3 * slots_.size()) grow();
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = key.hi & mask;; i = (i + 1) & mask) {
    if (slots_[i] == key) return false;
    if (slots_[i].lo == 0) {
      slots_[i] = key;
      ++size_;
      return true;
    }
  }
}

void Hash128Set::grow() {
  std::vector<Hash128> old(2 * slots_.size());
  old.swap(slots_);
  size_ = 0;
  for (const Hash128& key : old)
    if (key.lo != 0) insert(key);
}

}  // namespace hax::io
