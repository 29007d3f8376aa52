#include "hax/engine/aligned_buffer.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <limits>
#include <string>

#include "hax/engine/error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hax {

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

std::size_t AlignedBuffer::checked_bytes(std::size_t count, const char* what) {
  check(count <= std::numeric_limits<std::size_t>::max() / sizeof(float) - kAlignFloats, what, " of ", count,
        " floats is larger than any memory");
  const std::size_t bytes = round_up_to_alignment(count) * sizeof(float);
  const std::size_t available = bytes < kCheckedBytes ? 0 : available_memory_bytes();
  check(available == 0 || bytes <= available, "allocating ", what, " needs ", format_bytes(bytes), " (", count,
        " floats), but this machine has ", format_bytes(available), " available (memory + swap)");
  return bytes;
}

void AlignedBuffer::map_anonymous(std::size_t bytes, const char* what) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  check(p != MAP_FAILED, "cannot allocate ", format_bytes(bytes), " for ", what, ": ", std::strerror(errno));
  owner_ = std::shared_ptr<void>(p, [bytes](void* q) { munmap(q, bytes); });
  data_ = static_cast<float*>(p);
}

AlignedBuffer::AlignedBuffer(std::size_t count, const char* what) : size_(count) {
  if (count == 0) return;
  const std::size_t bytes = checked_bytes(count, what);
  if (bytes >= kMappedBytes) {
    map_anonymous(bytes, what);
    madvise(data_, bytes, MADV_HUGEPAGE);  // advice only: where the kernel has no huge pages, 4 KiB ones it is
    return;
  }
  void* p = std::aligned_alloc(kAlignBytes, bytes);
  check(p != nullptr, "cannot allocate ", format_bytes(bytes), " for ", what);
  std::memset(p, 0, bytes);
  owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  data_ = static_cast<float*>(p);
}

AlignedBuffer AlignedBuffer::zero_pages(std::size_t count, const char* what) {
  AlignedBuffer buffer;
  if (count == 0) return buffer;
  buffer.map_anonymous(checked_bytes(count, what), what);
  buffer.size_ = count;
  return buffer;
}

AlignedBuffer AlignedBuffer::map_file(const std::string& path, std::size_t offset, std::size_t count) {
  check(offset % kAlignBytes == 0, path, ": mapped data at byte ", offset, " is not ", kAlignBytes, "-byte aligned");
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  check(fd >= 0, path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  const bool stat_ok = fstat(fd, &st) == 0;
  const std::size_t file_bytes = stat_ok ? std::size_t(st.st_size) : 0;
  if (!stat_ok || offset + count * sizeof(float) > file_bytes || file_bytes == 0) {
    close(fd);
    fail(path, ": ", file_bytes, " bytes, too short for ", count, " floats at byte ", offset);
  }
  // Populated at once, since the caller reads every value (the load checks them all) and one call that maps the
  // page cache is cheaper than a fault per page; but populated read-only, then made writable: populating a writable
  // private mapping copies every page (6x slower for a 365 MB model), where this way only a page written is copied.
  void* p = mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  int map_errno = errno;
  close(fd);  // the mapping keeps the file open
  if (p != MAP_FAILED && mprotect(p, file_bytes, PROT_READ | PROT_WRITE) != 0) {
    map_errno = errno;
    munmap(p, file_bytes);
    p = MAP_FAILED;
  }
  check(p != MAP_FAILED, path, ": cannot map: ", std::strerror(map_errno));
  AlignedBuffer whole;
  whole.owner_ = std::shared_ptr<void>(p, [file_bytes](void* q) { munmap(q, file_bytes); });
  whole.mapping_base_ = static_cast<const char*>(p);
  whole.mapping_bytes_ = file_bytes;
  whole.file_mapping_ = true;
  return whole.view_of_same_mapping(offset, count);
}

AlignedBuffer AlignedBuffer::view_of_same_mapping(std::size_t offset, std::size_t count) const {
  check(file_mapping_, "view of a buffer that is not a file mapping");
  check(offset % kAlignBytes == 0 && offset + count * sizeof(float) <= mapping_bytes_, "view of ", count,
        " floats at byte ", offset, " outside a mapping of ", mapping_bytes_, " bytes");
  AlignedBuffer view;
  view.owner_ = owner_;
  view.mapping_base_ = mapping_base_;
  view.mapping_bytes_ = mapping_bytes_;
  view.file_mapping_ = true;
  view.data_ = reinterpret_cast<float*>(const_cast<char*>(mapping_base_) + offset);
  view.size_ = count;
  return view;
}

void AlignedBuffer::fill_zero() {
  if (size_ != 0) std::memset(data_, 0, size_ * sizeof(float));
}

}  // namespace hax
