// hax bench decode: the table's runs happen in child processes, reach the JSON with positive rates and their own peak
// RSS, and a series stops, saying why, before a length whose predicted prefill exceeds the time limit.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace hax::testing {
namespace {

nlohmann::json run_bench(const ScratchDir& dir, const std::string& args) {
  const auto config = write_tiny_config(dir);
  const auto json_path = dir / "decode.json";
  const CommandResult r = run_hax("bench decode --config " + quoted(config) + " --chunk 64 --decode-tokens 8 " +
                                  args + " --json " + quoted(json_path));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(read_file(json_path));
}

TEST(BenchDecode, RunsEveryArchAndThreadCountInChildren) {
  ScratchDir dir;
  const nlohmann::json j = run_bench(dir, "--archs plain,sliding_window,sign_bin_lsh+key_selection --lengths 128,256 "
                                          "--threads 1,2");
  ASSERT_EQ(j.at("series").size(), 6u);
  for (const auto& series : j.at("series")) {
    ASSERT_EQ(series.at("runs").size(), 2u) << series.dump();
    EXPECT_EQ(series.at("stopped"), "");
    for (const auto& run : series.at("runs")) {
      EXPECT_GT(run.at("prefill_tokens_per_second").get<double>(), 0);
      EXPECT_GT(run.at("decode_tokens_per_second").get<double>(), 0);
      EXPECT_EQ(run.at("decoded"), 8);
      EXPECT_GT(run.at("max_rss_mib").get<double>(), 1.0);  // the child's whole process, not an arena
    }
  }
}

TEST(BenchDecode, StopsASeriesBeforeALengthPredictedTooSlow) {
  ScratchDir dir;
  // full's prefill grows with T^2: from 128 to 2^20 tokens is a factor of 2^26 in predicted time.
  const nlohmann::json j = run_bench(dir, "--archs full --lengths 128,1048576 --threads 1 --time-limit 1");
  ASSERT_EQ(j.at("series").size(), 1u);
  const auto& series = j.at("series")[0];
  EXPECT_EQ(series.at("runs").size(), 1u);
  EXPECT_NE(series.at("stopped").get<std::string>().find("predicted prefill"), std::string::npos) << series.dump();
}

TEST(BenchDecode, RefusesAnUnknownArchBeforeRunning) {
  ScratchDir dir;
  const auto config = write_tiny_config(dir);
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax("bench decode --config " + quoted(config) + " --archs windowz"),
                                    "windowz"));
}

}  // namespace
}  // namespace hax::testing
