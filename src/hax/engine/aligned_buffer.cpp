#include "hax/engine/aligned_buffer.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <limits>
#include <string>

#include "hax/engine/error.h"

namespace hax {

void AlignedBuffer::Free::operator()(float* p) const { std::free(p); }

namespace {

// Reading /proc/meminfo costs about 40 us, a fifth of a decoded token (each decode step builds a small arena), so only
// buffers from this size up are checked against it; a smaller one that does not fit still fails by name below.
constexpr std::size_t kCheckedBytes = std::size_t(64) << 20;

}  // namespace

std::string format_bytes(std::size_t bytes) {
  if (bytes < (std::size_t(1) << 30)) return cat(std::fixed, std::setprecision(1), double(bytes) / (1 << 20), " MiB");
  return cat(std::fixed, std::setprecision(2), double(bytes) / (1 << 30), " GiB");
}

std::size_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::size_t total_kb = 0;
  std::string key;
  std::size_t kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit)
    if (key == "MemAvailable:" || key == "SwapFree:") total_kb += kb;
  return total_kb * 1024;
}

AlignedBuffer::AlignedBuffer(std::size_t count, const char* what) : size_(count) {
  if (count == 0) return;
  check(count <= std::numeric_limits<std::size_t>::max() / sizeof(float) - kAlignFloats, what, " of ", count,
        " floats is larger than any memory");
  const std::size_t bytes = round_up_to_alignment(count) * sizeof(float);
  const std::size_t available = bytes < kCheckedBytes ? 0 : available_memory_bytes();
  check(available == 0 || bytes <= available, "allocating ", what, " needs ", format_bytes(bytes), " (", count,
        " floats), but this machine has ", format_bytes(available), " available (memory + swap)");
  void* p = std::aligned_alloc(kAlignBytes, bytes);
  check(p != nullptr, "cannot allocate ", format_bytes(bytes), " for ", what);
  std::memset(p, 0, bytes);
  data_.reset(static_cast<float*>(p));
}

void AlignedBuffer::fill_zero() {
  if (size_ != 0) std::memset(data_.get(), 0, size_ * sizeof(float));
}

}  // namespace hax
