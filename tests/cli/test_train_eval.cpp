// `hax train` and `hax eval` end to end through the built binary, on a tiny model and a 2 x 2 joint-recall grid:
// a run writes its metrics and checkpoints, --resume continues it, and eval's table, JSON and SVG agree with each
// other and with the trainer's own validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "../support/metrics.h"
#include "cli_support.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;

std::string train_args(const ScratchDir& dir, int steps) {
  return cat("train --config ", quoted(write_tiny_config(dir)), " --out ", quoted(dir / "run"), " --steps ", steps,
             " --batch-size 8 --lr 1e-2 --warmup 2 --eval-every 8 --log-every 1 --threads 1 ", kTinyTask);
}

std::vector<std::int64_t> train_steps(const fs::path& run) {
  std::vector<std::int64_t> steps;
  for (const auto& j : read_metrics(run, "train")) steps.push_back(j.at("step"));
  return steps;
}

nlohmann::json trainer_state(const fs::path& run) {
  return nlohmann::json::parse(read_file(run / "last/trainer_state.json"));
}

TEST(CliTrain, WritesMetricsAndCheckpointsThenResumes) {
  const ScratchDir dir;
  const CommandResult first = run_hax(train_args(dir, 8));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  for (const char* file : {"best/config.json", "best/model.safetensors", "last/model.safetensors",
                           "last/optimizer.safetensors", "last/trainer_state.json"})
    EXPECT_TRUE(fs::is_regular_file(dir / "run" / file)) << file;
  EXPECT_EQ(trainer_state(dir / "run").at("step"), 8);
  EXPECT_EQ(train_steps(dir / "run"), (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));

  const CommandResult again = run_hax(train_args(dir, 8));
  EXPECT_NE(again.exit_code, 0) << "a second run into the same folder without --resume must refuse";

  const CommandResult resumed = run_hax(train_args(dir, 12) + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming"), std::string::npos) << resumed.err;
  EXPECT_EQ(trainer_state(dir / "run").at("step"), 12);
  EXPECT_EQ(train_steps(dir / "run"), (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
}

TEST(CliTrain, HelpListsTheFlags) {
  const CommandResult help = run_hax("train --help");
  ASSERT_EQ(help.exit_code, 0) << help.err;
  for (const char* flag : {"--config", "--out", "--resume", "--steps", "--data-seed", "--min-contexts"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
}

// The per-cell accuracies (in %) of the table eval prints: rows after the "n_context \ n_key" header.
std::map<std::pair<int, int>, double> table_cells(const std::string& out) {
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line) && !line.starts_with("n_context \\ n_key")) {}
  std::istringstream header(line.substr(line.find("n_key") + 5));
  std::vector<int> keys;
  for (int key; header >> key;) keys.push_back(key);
  std::map<std::pair<int, int>, double> cells;
  while (std::getline(lines, line) && !line.starts_with("(")) {
    std::istringstream row(line);
    int context = 0;
    row >> context;
    for (int key : keys) row >> cells[{context, key}];
  }
  return cells;
}

class CliEval : public ::testing::Test {
 protected:
  void SetUp() override {
    const CommandResult train = run_hax(train_args(dir_, 8));
    ASSERT_EQ(train.exit_code, 0) << train.err;
  }
  fs::path best() const { return dir_ / "run/best"; }

  ScratchDir dir_;
};

TEST_F(CliEval, TableJsonAndHeatmapDescribeTheSameCells) {
  const CommandResult eval =
      run_hax(cat("eval --checkpoint ", quoted(best()), " --threads 1 --json ", quoted(dir_ / "eval.json"),
                  " --heatmap ", quoted(dir_ / "eval.svg"), " ", kTinyTask));
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const auto j = nlohmann::json::parse(read_file(dir_ / "eval.json"));

  // The cells are the flags' grid, each with its --eval-per-cell sequences; the overall accuracy is the mean over
  // sequences, so the cells' accuracies weighted by their sequence counts.
  std::set<std::pair<int, int>> grid;
  double weighted = 0;
  std::uint64_t sequences = 0;
  const auto printed = table_cells(eval.out);
  for (const auto& cell : j.at("cells")) {
    const std::pair<int, int> at{cell.at("n_context"), cell.at("n_key")};
    grid.insert(at);
    EXPECT_EQ(cell.at("sequences"), 4);
    weighted += cell.at("accuracy").get<double>() * cell.at("sequences").get<double>();
    sequences += cell.at("sequences").get<std::uint64_t>();
    ASSERT_TRUE(printed.contains(at)) << eval.out;
    EXPECT_NEAR(printed.at(at), 100 * cell.at("accuracy").get<double>(), 0.0501) << eval.out;
  }
  EXPECT_EQ(grid, (std::set<std::pair<int, int>>{{2, 2}, {2, 3}, {3, 2}, {3, 3}}));
  EXPECT_EQ(j.at("sequences"), 16);
  EXPECT_EQ(sequences, 16u);
  EXPECT_NEAR(j.at("accuracy").get<double>(), weighted / 16, 1e-12);
  EXPECT_GT(j.at("tokens").get<int>(), 0);
  EXPECT_GT(j.at("loss").get<double>(), 0);
  EXPECT_NE(eval.out.find("test split: accuracy"), std::string::npos) << eval.out;

  const std::string svg = read_file(dir_ / "eval.svg");
  ASSERT_TRUE(svg.starts_with("<?xml")) << svg.substr(0, 100);
  const std::vector<std::string> elements = xml_elements(svg);
  ASSERT_FALSE(elements.empty());
  EXPECT_EQ(elements.front(), "svg");
  EXPECT_EQ(std::count(elements.begin(), elements.end(), "linearGradient"), 1);  // the legend
  for (const char* text : {"n_key", "n_context", "Accuracy (%)", "url(#scale)"})
    EXPECT_NE(svg.find(text), std::string::npos) << text;
  std::size_t cells = 0;
  for (std::size_t at = svg.find("class=\"cell\""); at != std::string::npos; at = svg.find("class=\"cell\"", at + 1))
    ++cells;
  EXPECT_EQ(cells, 4u);
}

TEST_F(CliEval, TheValidSplitReproducesTheTrainersBestAccuracy) {
  const CommandResult eval =
      run_hax(cat("eval --checkpoint ", quoted(best()), " --split valid --batch-size 8 --threads 1 --json ",
                  quoted(dir_ / "valid.json"), " ", kTinyTask));
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const auto j = nlohmann::json::parse(read_file(dir_ / "valid.json"));
  EXPECT_DOUBLE_EQ(j.at("accuracy").get<double>(),
                   trainer_state(dir_ / "run").at("best_valid_accuracy").get<double>());
}

TEST_F(CliEval, ReadsAGenFileAndHonorsCount) {
  const fs::path data = dir_ / "test.bin";
  const CommandResult gen = run_hax(cat("gen joint-recall --split test --out ", quoted(data), " ", kTinyTask));
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const auto eval_json = [&](const std::string& args, const fs::path& json) {
    const CommandResult r =
        run_hax(cat("eval --checkpoint ", quoted(best()), " --threads 1 --json ", quoted(json), " ", args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(read_file(json));
  };
  const auto generated = eval_json(kTinyTask, dir_ / "generated.json");
  const auto from_file = eval_json("--data " + quoted(data), dir_ / "file.json");
  EXPECT_EQ(from_file.at("accuracy"), generated.at("accuracy"));
  EXPECT_EQ(from_file.at("cells"), generated.at("cells"));

  // A split runs through rounds of all cells, so its first 3 samples miss cell (3, 3): the table shows it as "-".
  const CommandResult first3 = run_hax(cat("eval --checkpoint ", quoted(best()), " --data ", quoted(data),
                                           " --count 3 --threads 1 --json ", quoted(dir_ / "first3.json")));
  ASSERT_EQ(first3.exit_code, 0) << first3.err;
  const auto j = nlohmann::json::parse(read_file(dir_ / "first3.json"));
  EXPECT_EQ(j.at("sequences"), 3);
  EXPECT_EQ(j.at("cells").size(), 3u);
  const std::size_t last_row = first3.out.rfind("\n                3 ");
  ASSERT_NE(last_row, std::string::npos) << first3.out;
  const std::string row = first3.out.substr(last_row + 1, first3.out.find('\n', last_row + 1) - last_row - 1);
  EXPECT_TRUE(row.ends_with(" -")) << row;
}

}  // namespace
}  // namespace hax::testing
