// Whole files in one call: their bytes, and JSON files as hax writes and reads them (written atomically through
// io/atomic_file.h, indented). A file that is missing, unreadable or not JSON is a hax::Error naming it.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace hax::io {

std::string read_file_bytes(const std::filesystem::path& path);

void write_json_file(const std::filesystem::path& path, const nlohmann::json& j);
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace hax::io
