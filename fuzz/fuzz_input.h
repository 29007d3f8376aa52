// libFuzzer's side of a fuzz target: the input bytes as a file (hax's readers take paths, as users give them), read
// by one of fuzz/readers.h. A finding stops libFuzzer, which saves the input.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz/readers.h"

namespace hax::fuzz {

// An in-memory file (memfd), rewritten for each input; /proc/self/fd/N names it. Nothing touches the disk and
// nothing is left behind when the fuzzer stops.
class InputFile {
 public:
  InputFile() : fd_(memfd_create("hax-fuzz-input", 0)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }

  const std::string& write(const std::uint8_t* data, std::size_t size) {
    if (ftruncate(fd_, 0) != 0 || pwrite_all(data, size) != size) {
      std::perror("writing the fuzz input");
      std::abort();
    }
    return path_;
  }

 private:
  std::size_t pwrite_all(const std::uint8_t* data, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    return done;
  }

  int fd_;
  std::string path_;
};

}  // namespace hax::fuzz

// Defines libFuzzer's entry point for the target `name` of fuzz/readers.h: the input, prepared as the target says,
// written to the in-memory file, then read.
#define HAX_FUZZ_TARGET(name)                                                                  \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {         \
    static const hax::fuzz::Target& target = hax::fuzz::target_named(name);                   \
    static hax::fuzz::InputFile input;                                                         \
    std::string bytes(reinterpret_cast<const char*>(data), size);                              \
    if (target.prepare) target.prepare(bytes);                                                 \
    const std::string& path = input.write(reinterpret_cast<const std::uint8_t*>(bytes.data()), \
                                          bytes.size());                                       \
    hax::fuzz::expect_success_or_error([&] { target.read(path); });                            \
    return 0;                                                                                  \
  }
