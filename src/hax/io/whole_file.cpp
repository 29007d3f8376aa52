#include "hax/io/whole_file.h"

#include <fstream>
#include <sstream>

#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"

namespace hax::io {

std::string read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path.string(), ": cannot open");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  check(!in.bad(), path.string(), ": cannot read");
  return bytes.str();
}

void write_json_file(const std::filesystem::path& path, const nlohmann::json& j) {
  AtomicFile file(path);
  file.stream() << j.dump(2) << '\n';
  file.commit();
}

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  check(in.good(), "cannot open '", path.string(), "'");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("'", path.string(), "' is not valid JSON: ", e.what());
  }
}

}  // namespace hax::io
