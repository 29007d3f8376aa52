// A run folder's metrics.jsonl, as the suites read it.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "hax/io/safetensors.h"
#include "test_support.h"

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

// Two run folders hold the same run: the tensors of each of `files` (safetensors, relative to the run), last/'s
// trainer state and the metrics (timing aside) are identical, bit for bit.
inline void expect_identical_runs(const std::filesystem::path& a, const std::filesystem::path& b,
                                  const std::vector<std::string>& files) {
  for (const std::string& file : files) {
    const auto x = io::SafetensorsFile(a / file).read_all();
    const auto y = io::SafetensorsFile(b / file).read_all();
    ASSERT_EQ(x.size(), y.size()) << file;
    for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i].values, y[i].values) << file << " " << x[i].name;
  }
  EXPECT_EQ(read_file(a / "last/trainer_state.json"), read_file(b / "last/trainer_state.json"));
  EXPECT_EQ(read_metrics_without_timing(a), read_metrics_without_timing(b));
}

}  // namespace hax::testing
