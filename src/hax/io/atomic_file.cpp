#include "hax/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "hax/engine/error.h"

namespace hax::io {
namespace {

constexpr std::size_t kBufferBytes = 1 << 20;

[[noreturn]] void fail_on(const std::filesystem::path& path, const char* action) {
  fail("cannot ", action, " '", path.string(), "': ", std::strerror(errno));
}

std::filesystem::path directory_of(const std::filesystem::path& path) {
  return path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
}

// Creates a new, empty hidden file beside `path` (O_EXCL: never someone else's file) with the usual permissions.
std::filesystem::path create_temp_beside(const std::filesystem::path& path) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string name = cat(".", path.filename().string(), ".tmp.", getpid(), ".", counter.fetch_add(1));
    const std::filesystem::path temp = directory_of(path) / name;
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      ::close(fd);
      return temp;
    }
    if (errno != EEXIST) fail_on(path, "write");
  }
  fail("cannot write '", path.string(), "': no free temp file name beside it");
}

void fsync_path(const std::filesystem::path& path, int flags, const std::filesystem::path& named) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail_on(named, "sync");
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) fail_on(named, "sync");
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
  check(!path_.empty(), "empty output path");
  std::error_code error;
  check(!std::filesystem::is_directory(path_, error), "cannot write '", path_.string(), "': it is a directory");
  target_ = std::filesystem::weakly_canonical(path_, error);
  if (error) target_ = path_;
  const std::filesystem::file_status status = std::filesystem::status(target_, error);
  direct_ = std::filesystem::exists(status) && !std::filesystem::is_regular_file(status);
  if (!direct_) temp_path_ = create_temp_beside(target_);
  buffer_.resize(kBufferBytes);
  out_.rdbuf()->pubsetbuf(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  out_.open(direct_ ? target_ : temp_path_, std::ios::binary | std::ios::trunc);
  if (!out_.is_open()) {
    discard();
    fail("cannot write '", path_.string(), "'");
  }
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() noexcept {
  if (out_.is_open()) out_.close();
  if (direct_) return;
  std::error_code ignored;
  std::filesystem::remove(temp_path_, ignored);
}

void AtomicFile::commit() {
  check(!committed_, "'", path_.string(), "' committed twice");
  out_.flush();
  const bool written = out_.good();
  out_.close();
  check(written && !out_.fail(), "cannot write '", path_.string(), "': write failed (disk full?)");
  if (direct_) {  // a device or FIFO: nothing to sync or rename
    committed_ = true;
    return;
  }
  fsync_path(temp_path_, O_RDONLY, path_);
  if (::rename(temp_path_.c_str(), target_.c_str()) != 0) fail_on(path_, "replace");
  committed_ = true;
  fsync_path(directory_of(target_), O_RDONLY | O_DIRECTORY, path_);  // makes the rename itself durable
}

void write_file_atomically(const std::filesystem::path& path, std::string_view text) {
  AtomicFile file(path);
  file.stream() << text;
  file.commit();
}

}  // namespace hax::io
