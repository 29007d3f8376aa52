#include "hax/io/json_file.h"

#include <fstream>

#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"

namespace hax::io {

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
