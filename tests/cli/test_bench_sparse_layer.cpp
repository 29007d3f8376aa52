// hax bench sparse-layer: the JSON has one row per length with positive times and the key lists' mean length, which
// is exact: with key selection alone a query t has min(t + 1, 64) keys, so the mean over T queries is known.
#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace hax::testing {
namespace {

// The mean over queries t < T of min(t + 1, k).
double mean_capped_keys(int T, int k) {
  double sum = 0;
  for (int t = 0; t < T; ++t) sum += std::min(t + 1, k);
  return sum / T;
}

TEST(BenchSparseLayer, ReportsTimesAndTheKeysPerQueryOfEachLength) {
  ScratchDir dir;
  const auto json_path = dir / "layer.json";
  const CommandResult r = run_hax("bench sparse-layer --config " + quoted(write_tiny_config(dir)) +
                                  " --sparse-arch key_selection --sparse-keys 64 --lengths 96,400 --warmup 0 --repeats 1 --threads 1"
                                  " --json " + quoted(json_path));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("keys/query"), std::string::npos) << r.out;
  const nlohmann::json j = nlohmann::json::parse(read_file(json_path));
  ASSERT_EQ(j.at("lengths").size(), 2u);
  for (const auto& row : j.at("lengths")) {
    const int T = row.at("T");
    EXPECT_GT(row.at("total_ms").get<double>(), 0);
    EXPECT_NEAR(row.at("keys_per_query").get<double>(), mean_capped_keys(T, 64), 1e-9) << T;
  }
  EXPECT_NEAR(j.at("keys_per_query_ratio").get<double>(), mean_capped_keys(400, 64) / mean_capped_keys(96, 64), 1e-9);
}

}  // namespace
}  // namespace hax::testing
