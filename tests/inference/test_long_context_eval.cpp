// The long-context report (inference/long_context_eval.h): perplexity sequences cut from the held-out stream, and
// the table, heatmaps, chart and JSON made from a hand-built set of cells whose averages are known.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "../support/expect_error.h"
#include "../support/test_support.h"
#include "hax/inference/long_context_eval.h"

namespace hax::testing {
namespace {

using inference::RulerTask;

TEST(LongContextEval, PerplexitySequencesAreConsecutiveWholeCuts) {
  const std::vector<std::int32_t> stream = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const auto two = inference::position_sequences(stream, 4, 5);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], (data::TokenSequence{1, 2, 3, 4}));
  EXPECT_EQ(two[1], (data::TokenSequence{5, 6, 7, 8}));
  EXPECT_EQ(inference::position_sequences(stream, 4, 1).size(), 1u);
  EXPECT_EQ(inference::position_sequences(stream, 20, 3), std::vector<data::TokenSequence>{stream});
  expect_error_naming([] { inference::position_sequences({}, 4, 1); }, {"no held-out tokens"});
}

// niah_single_number: 50% at 512 (100 at depth 0, 0 at depth 100), 25% at 1024; variable_tracking: 100 everywhere.
inference::LongContextReport report() {
  inference::LongContextReport r;
  r.context = 512;
  r.grid = {{RulerTask::niah_single_number, RulerTask::variable_tracking}, {512, 1024}, {0, 100}, 2, 9};
  const auto cell = [](RulerTask t, int length, double depth, double score) {
    return inference::RulerCell{t, length, depth, 2, score, static_cast<int>(score)};
  };
  r.cells = {cell(RulerTask::niah_single_number, 512, 0, 2), cell(RulerTask::niah_single_number, 512, 100, 0),
             cell(RulerTask::niah_single_number, 1024, 0, 1), cell(RulerTask::niah_single_number, 1024, 100, 0),
             cell(RulerTask::variable_tracking, 512, 0, 2),   cell(RulerTask::variable_tracking, 512, 100, 2),
             cell(RulerTask::variable_tracking, 1024, 0, 2),  cell(RulerTask::variable_tracking, 1024, 100, 2)};
  r.bucket_width = 256;
  r.perplexity.nll_sum = 30;
  r.perplexity.tokens = 10;
  r.perplexity.bucket_nll_sum = {8, 0, 22};
  r.perplexity.bucket_tokens = {4, 0, 6};
  r.perplexity_sequences = 1;
  r.run = {{"checkpoint", "runs/lm/best"}, {"command", "hax lm eval ..."}};
  r.wall_seconds = 3.5;
  return r;
}

TEST(LongContextEval, TableAveragesOverDepthsThenOverTasks) {
  const inference::LongContextReport r = report();
  EXPECT_DOUBLE_EQ(inference::task_accuracy(r, RulerTask::niah_single_number, 512), 50.0);
  EXPECT_DOUBLE_EQ(inference::task_accuracy(r, RulerTask::niah_single_number, 1024), 25.0);
  EXPECT_DOUBLE_EQ(inference::average_accuracy(r, 1024), 62.5);
  const std::string md = inference::report_markdown(r);
  EXPECT_NE(md.find("| Length | niah_single_number | variable_tracking | Avg |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 512 (1x) | 50.0 | 100.0 | 75.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1024 (2x) | 25.0 | 100.0 | 62.50 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 0-255 | 4 | 2.0000 | 7.39 |"), std::string::npos) << md;
  EXPECT_EQ(md.find("| 256-511 |"), std::string::npos) << "an empty bucket has no row";
  EXPECT_NE(md.find("runs/lm/best"), std::string::npos);
}

TEST(LongContextEval, HeatmapsAreLengthsByDepthsAndTheJsonHoldsEveryCell) {
  const inference::LongContextReport r = report();
  const io::Heatmap map = inference::task_heatmap(r, RulerTask::niah_single_number);
  EXPECT_EQ(map.rows, (std::vector<std::string>{"512 (1x)", "1024 (2x)"}));
  EXPECT_EQ(map.columns, (std::vector<std::string>{"0%", "100%"}));
  ASSERT_EQ(map.values.size(), 4u);
  EXPECT_DOUBLE_EQ(*map.values[0], 100.0);
  EXPECT_DOUBLE_EQ(*map.values[1], 0.0);
  EXPECT_DOUBLE_EQ(*map.values[2], 50.0);

  const io::LineChart chart = inference::perplexity_chart(r);
  ASSERT_EQ(chart.series.size(), 2u);
  EXPECT_EQ(chart.series[0].points, (std::vector<std::pair<double, double>>{{128, 2.0}, {640, 22.0 / 6}}));
  EXPECT_EQ(chart.series[1].points.front().first, 512);

  const nlohmann::json j = inference::report_json(r);
  EXPECT_EQ(j.at("checkpoint"), "runs/lm/best");
  EXPECT_EQ(j.at("tasks").size(), 2u);
  EXPECT_EQ(j.at("tasks").at("niah_single_number").at("cells").size(), 4u);
  EXPECT_DOUBLE_EQ(j.at("tasks").at("niah_single_number").at("accuracy_by_length").at("1024").get<double>(), 25.0);
  EXPECT_DOUBLE_EQ(j.at("average_by_length").at("512").get<double>(), 75.0);
  EXPECT_EQ(j.at("perplexity").at("by_position").size(), 3u);
  EXPECT_TRUE(j.at("perplexity").at("by_position")[1].at("mean_nll").is_null());
  EXPECT_EQ(j.at("wall_seconds"), 3.5);

  const ScratchDir dir;
  const auto written = inference::write_report(dir / "out", r);
  EXPECT_EQ(written.size(), 2u + 2 + 1);
  for (const auto& path : written) EXPECT_FALSE(read_file(path).empty()) << path;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "out" / "results.json")), j);
  EXPECT_TRUE(std::filesystem::exists(dir / "out" / "ruler_variable_tracking.svg"));
}

// The forced choice: summed over depths, averaged over the tasks that have one; none at all leaves its table out.
TEST(LongContextEval, ForcedChoiceSumsOverDepthsAndSkipsTasksWithoutOne) {
  inference::LongContextReport r = report();
  EXPECT_EQ(inference::report_markdown(r).find("Forced choice"), std::string::npos);
  EXPECT_TRUE(inference::report_json(r).at("choice_average_by_length").at("512").is_null());
  // niah_single_number at 512: 2 of 2 at depth 0 (margins 1, 3), 1 of 2 at depth 100 (margins 2, -2).
  r.cells[0].choices = 2, r.cells[0].recalled = 2, r.cells[0].margin_sum = 4, r.cells[0].answer_nll_sum = 1;
  r.cells[1].choices = 2, r.cells[1].recalled = 1, r.cells[1].margin_sum = 0, r.cells[1].answer_nll_sum = 3;
  const inference::ChoiceSummary s = inference::task_choice(r, RulerTask::niah_single_number, 512);
  EXPECT_DOUBLE_EQ(s.accuracy(), 75.0);
  EXPECT_DOUBLE_EQ(s.margin(), 1.0);
  EXPECT_DOUBLE_EQ(s.answer_nll(), 1.0);
  EXPECT_DOUBLE_EQ(inference::average_choice_accuracy(r, 512), 75.0);  // variable tracking has none
  EXPECT_TRUE(std::isnan(inference::average_choice_accuracy(r, 1024)));
  const std::string md = inference::report_markdown(r);
  EXPECT_NE(md.find("| 512 (1x) | 75.0 (1.00) | – | 75.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1024 (2x) | – | – | – |"), std::string::npos) << md;
  const nlohmann::json j = inference::report_json(r);
  EXPECT_DOUBLE_EQ(j.at("choice_average_by_length").at("512").get<double>(), 75.0);
  EXPECT_TRUE(j.at("tasks").at("variable_tracking").at("choice_accuracy_by_length").at("512").is_null());
  EXPECT_DOUBLE_EQ(j.at("tasks").at("niah_single_number").at("margin_by_length").at("512").get<double>(), 1.0);
}

}  // namespace
}  // namespace hax::testing
