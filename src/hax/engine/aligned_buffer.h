// A zero-initialised, 64-byte aligned float buffer: the storage behind parameters, gradients and the arena.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace hax {

class AlignedBuffer {
 public:
  static constexpr std::size_t kAlignBytes = 64;
  static constexpr std::size_t kAlignFloats = kAlignBytes / sizeof(float);

  AlignedBuffer() = default;
  // `what` names the buffer in the error when the machine cannot hold it: a large size (64 MiB and up) is checked
  // against the memory available (MemAvailable + free swap) before allocating, so a model too large ends in one line
  // that says how much it needs and how much there is, not in std::bad_alloc or the OOM killer.
  explicit AlignedBuffer(std::size_t count, const char* what = "a buffer");

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  std::span<float> span() { return {data_.get(), size_}; }
  std::span<const float> span() const { return {data_.get(), size_}; }
  void fill_zero();

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> data_;
  std::size_t size_ = 0;
};

// Bytes of memory available to a new allocation: MemAvailable + SwapFree from /proc/meminfo; 0 if unknown.
std::size_t available_memory_bytes();
// "1.25 GiB" (or "12.5 MiB" under 1 GiB), for messages about memory.
std::string format_bytes(std::size_t bytes);

// Rounds a float count up so that the next block starts on a 64-byte boundary.
constexpr std::size_t round_up_to_alignment(std::size_t count) {
  return (count + AlignedBuffer::kAlignFloats - 1) / AlignedBuffer::kAlignFloats * AlignedBuffer::kAlignFloats;
}

}  // namespace hax
