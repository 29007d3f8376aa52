// A run folder's metrics.jsonl, as the suites read it.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hax::testing {

// Every line of RUN/metrics.jsonl, parsed; with `event`, only the lines of that event ("train", "valid", ...).
inline std::vector<nlohmann::json> read_metrics(const std::filesystem::path& run, const std::string& event = "") {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (event.empty() || j.at("event") == event) lines.push_back(std::move(j));
  }
  return lines;
}

// The same without the wall-clock figures (tokens_per_second), which differ between otherwise identical runs.
inline std::vector<nlohmann::json> read_metrics_without_timing(const std::filesystem::path& run) {
  std::vector<nlohmann::json> lines = read_metrics(run);
  for (nlohmann::json& j : lines) j.erase("tokens_per_second");
  return lines;
}

}  // namespace hax::testing
