// JSON files as hax writes and reads them: written atomically (io/atomic_file.h), indented; a file that is missing
// or not JSON is a hax::Error naming it.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

namespace hax::io {

void write_json_file(const std::filesystem::path& path, const nlohmann::json& j);
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace hax::io
