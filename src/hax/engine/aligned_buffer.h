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
  // Buffers from kMappedBytes up are fresh anonymous mappings: the kernel hands out zero pages on first touch, so
  // allocating costs nothing and memory is only used where the buffer is written (a model's gradients, when it only
  // runs inference, never are). They ask for transparent huge pages: a 365 MB model faults in 2 MiB at a time
  // instead of 4 KiB (on the development VM a fault costs microseconds: 0.6 s for the 4 KiB pages of 365 MB).
  // Smaller ones come from the heap and are zeroed: a buffer made per call is then reused by the allocator instead
  // of faulting in fresh pages every time (glibc maps blocks from 32 MiB up itself).
  explicit AlignedBuffer(std::size_t count, const char* what = "a buffer");
  // A fresh anonymous mapping whatever the size (zero pages on first touch): for long-lived buffers of which only
  // a part may ever be written, such as an arena sized for the largest call.
  static AlignedBuffer zero_pages(std::size_t count, const char* what = "a buffer");

  // `count` floats of the file at byte `offset` (a multiple of kAlignBytes), mapped copy-on-write: reading costs no
  // copy, writing copies only the pages written, and the file never changes. The file must not be truncated while
  // the buffer lives (replacing it by a rename, as every writer of ours does, is safe). Throws hax::Error naming the
  // file when it is shorter than offset + count floats or cannot be mapped.
  static AlignedBuffer map_file(const std::string& path, std::size_t offset, std::size_t count);
  // The same range of an existing mapping (two buffers of one file share its mapping).
  AlignedBuffer view_of_same_mapping(std::size_t offset, std::size_t count) const;
  bool is_file_mapping() const { return file_mapping_; }
  // The whole file of a file mapping, as bytes (for copying tensors that do not lie where a view could use them).
  std::span<const char> mapped_file() const { return {mapping_base_, mapping_bytes_}; }

  AlignedBuffer(AlignedBuffer&&) noexcept = default;
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  float* data() { return data_; }
  const float* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::span<float> span() { return {data_, size_}; }
  std::span<const float> span() const { return {data_, size_}; }
  void fill_zero();

  static constexpr std::size_t kMappedBytes = std::size_t(32) << 20;

 private:
  // Checks the size against the machine's memory and returns it in bytes, rounded up to whole 64-byte lines.
  static std::size_t checked_bytes(std::size_t count, const char* what);
  void map_anonymous(std::size_t bytes, const char* what);

  // What the memory belongs to (an aligned_alloc block or a mapping); shared only by views of one file mapping.
  std::shared_ptr<void> owner_;
  float* data_ = nullptr;
  std::size_t size_ = 0;
  bool file_mapping_ = false;
  // For views: where the whole mapping starts and its length in bytes.
  const char* mapping_base_ = nullptr;
  std::size_t mapping_bytes_ = 0;
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
