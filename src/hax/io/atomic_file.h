// All-or-nothing output files. Everything goes to a hidden temp file in the target's directory (so the final
// rename stays on one filesystem and is atomic); commit() flushes, fsyncs and renames it over the target. If
// commit() never runs (an error, an exception, a crash) the temp file is removed or at worst left under its
// hidden temp name: a partial output never appears under the target's name.
//
// A symlinked target is resolved first, so the temp file and the rename go beside the file it points to and the link
// stays a link. A target that exists and is not a regular file (a character device such as /dev/stdout or
// /dev/full, a FIFO) is written directly, never renamed over: every write is checked at commit(), so a full device
// is an error, never a "wrote".
#pragma once

#include <filesystem>
#include <fstream>
#include <ostream>
#include <string_view>
#include <vector>

namespace hax::io {

class AtomicFile {
 public:
  // Creates the temp file now, so an unwritable target fails before any work: a hax::Error naming the path.
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  std::ostream& stream() { return out_; }
  const std::filesystem::path& path() const { return path_; }

  // Write errors that the stream swallowed (a full disk) surface here, as a hax::Error naming the path.
  void commit();

 private:
  void discard() noexcept;

  std::filesystem::path path_;       // as given, for messages
  std::filesystem::path target_;     // path_ with its symlinks resolved: where the bytes go
  std::filesystem::path temp_path_;  // empty when writing directly
  bool direct_ = false;              // target_ exists and is not a regular file
  std::vector<char> buffer_;  // a larger stream buffer than the default: outputs here run to gigabytes
  std::ofstream out_;
  bool committed_ = false;
};

// The whole of `text` as the file at `path`, through an AtomicFile.
void write_file_atomically(const std::filesystem::path& path, std::string_view text);

}  // namespace hax::io
