// `hax sweep` end to end through the built binary: a 2-base x {plain, sliding_window} x causal x 1-seed grid of a
// tiny Mamba, 3 updates each, 2 runs at once. It writes one results object per run and the rendered outputs, a
// second sweep re-runs nothing, a half-trained run is resumed, and a bad experiment file is a one-line error.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json tiny_experiment(const fs::path& config) {
  return {{"name", "tiny"},
          {"bases",
           {{{"name", "alpha"}, {"config", config.string()}}, {{"name", "beta"}, {"config", config.string()}}}},
          {"sparse_archs", {"", "sliding_window"}},
          {"semantics", {"causal"}},
          {"seeds", {1}},
          {"train", {{"steps", 3}, {"batch_size", 4}, {"lr", 0.01}, {"warmup", 1}, {"eval_every", 3}, {"threads", 1}}},
          {"task",
           {{"min_contexts", 2}, {"max_contexts", 3}, {"min_keys", 2}, {"max_keys", 3}, {"values", 4},
            {"train_per_cell", 32}, {"eval_per_cell", 4}}},
          {"paper", {{"alpha", {{"", 16.3}, {"sliding_window", 18.7}}}}}};
}

// One base, one arch in both semantics, the arch listed in "same_under_both_semantics".
json stood_for_experiment(const fs::path& config, const std::string& arch) {
  json j = tiny_experiment(config);
  j["bases"] = json::array({j["bases"][0]});
  j["sparse_archs"] = {arch};
  j["semantics"] = {"paper", "causal"};
  j["same_under_both_semantics"] = {arch};
  j.erase("paper");
  return j;
}

class CliSweep : public ::testing::Test {
 protected:
  fs::path write_experiment(const json& j, const std::string& file = "experiment.json") const {
    const fs::path path = dir_ / file;
    write_file(path, j.dump(2));
    return path;
  }
  CommandResult sweep(const fs::path& experiment, const std::string& flags = "") const {
    return run_hax(cat("sweep ", quoted(experiment), " --runs-dir ", quoted(runs()), " ", flags));
  }
  fs::path runs() const { return dir_ / "runs"; }
  fs::path config() const { return write_tiny_config(dir_); }

  ScratchDir dir_;
};

TEST_F(CliSweep, RunsTheGridThenRerunsNothing) {
  const fs::path experiment = write_experiment(tiny_experiment(config()));
  const CommandResult first = sweep(experiment, cat("--jobs 2 --out-docs ", quoted(dir_ / "docs")));
  ASSERT_EQ(first.exit_code, 0) << first.err;

  const json results = json::parse(read_file(runs() / "tiny/results.json"));
  ASSERT_EQ(results.size(), 4u) << results.dump(2);
  std::set<std::string> variants;
  for (const json& r : results) {
    for (const char* key : {"base", "sparse_arch", "semantics", "seed", "steps", "test_accuracy", "best_valid_accuracy",
                            "wall_seconds", "threads", "command", "eval_command", "status"})
      EXPECT_TRUE(r.contains(key)) << key << " in " << r.dump();
    EXPECT_EQ(r.at("status"), "done") << r.dump();
    EXPECT_EQ(r.at("steps"), 3);
    EXPECT_EQ(r.at("threads"), 1);
    const double accuracy = r.at("test_accuracy").get<double>();
    EXPECT_GE(accuracy, 0.0);
    EXPECT_LE(accuracy, 1.0);
    EXPECT_GT(r.at("wall_seconds").get<double>(), 0.0);
    EXPECT_TRUE(r.at("command").get<std::string>().starts_with("build/hax train --config ")) << r.at("command");
    EXPECT_TRUE(r.at("eval_command").get<std::string>().starts_with("build/hax eval --checkpoint "))
        << r.at("eval_command");
    EXPECT_EQ(r.at("semantics"), r.at("sparse_arch") == "" ? "none" : "causal");
    variants.insert(r.at("base").get<std::string>() + "/" + r.at("sparse_arch").get<std::string>());
  }
  EXPECT_EQ(variants, (std::set<std::string>{"alpha/", "alpha/sliding_window", "beta/", "beta/sliding_window"}));
  EXPECT_TRUE(fs::is_regular_file(runs() / "tiny/alpha__sliding_window__causal__seed1/sweep_run.json"));

  for (const fs::path out : {runs() / "tiny", dir_ / "docs"}) {
    const std::string md = read_file(out / "results.md");
    for (const char* text : {"alpha (ours)", "beta (paper)", "| plain | none |", "| sliding_window | causal |", "16.3",
                             "## Validation accuracy (%) by update\n\n| run | 3 |", "| beta__plain__none__seed1 | "})
      EXPECT_NE(md.find(text), std::string::npos) << text << " in\n" << md;
    for (const char* base : {"alpha", "beta"}) {
      const std::string svg = read_file(out / cat("curves_", base, ".svg"));
      const std::vector<std::string> elements = xml_elements(svg);
      EXPECT_EQ(std::count(elements.begin(), elements.end(), "polyline"), 2) << base;
      EXPECT_NE(svg.find(base), std::string::npos);
    }
  }

  const auto log = runs() / "tiny/beta__plain__none__seed1.train.log";
  const std::string log_before = read_file(log);
  const CommandResult second = sweep(experiment, "--jobs 2");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(read_file(log), log_before);
  EXPECT_EQ(json::parse(read_file(runs() / "tiny/results.json")), results);
}

TEST_F(CliSweep, ResumesAHalfTrainedRun) {
  json j = tiny_experiment(config());
  j["bases"] = json::array({j["bases"][0]});
  j["sparse_archs"] = {""};
  j["paper"] = {{"alpha", {{"", 16.3}}}};
  const fs::path experiment = write_experiment(j);
  const fs::path run = runs() / "tiny/alpha__plain__none__seed1";
  const CommandResult dry = sweep(experiment, "--dry-run");
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  // The recorded command, with 2 steps instead of 3 and the real binary: the run's first two updates.
  std::string command = dry.out.substr(dry.out.find("build/hax train"));
  command = command.substr(std::string("build/hax ").size(), command.find('\n') - std::string("build/hax ").size());
  const CommandResult half = run_hax(command.replace(command.find("--steps 3"), 9, "--steps 2"));
  ASSERT_EQ(half.exit_code, 0) << half.err;

  const CommandResult resumed = sweep(experiment);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(read_file(run.string() + ".train.log").find("--resume"), std::string::npos);
  const json results = json::parse(read_file(runs() / "tiny/results.json"));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].at("steps"), 3);
  EXPECT_EQ(results[0].at("status"), "done");
}

TEST_F(CliSweep, DryRunPrintsTheCommandsAndRunsNothing) {
  const CommandResult dry = sweep(write_experiment(tiny_experiment(config())), "--dry-run");
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  for (const char* text : {"# alpha__plain__none__seed1", "# beta__sliding_window__causal__seed1",
                           "build/hax train --config ", "--sparse-arch sliding_window --semantics causal --seed 1",
                           "--steps 3 --batch-size 4 --lr 0.01 --warmup 1 --eval-every 3 --threads 1",
                           "build/hax eval --checkpoint ", "--json ", "--heatmap "})
    EXPECT_NE(dry.out.find(text), std::string::npos) << text << " in\n" << dry.out;
  EXPECT_FALSE(fs::exists(runs()));
}

// A base's own "extra" flags (an ablation variant of a config) go to its runs only, after the experiment's.
TEST_F(CliSweep, ABasesExtraFlagsGoToItsRunsOnly) {
  json j = tiny_experiment(config());
  j["bases"][1]["extra"] = {"--lsh-resample", "training"};
  j["train"]["extra"] = {"--log-every", "1"};
  const CommandResult dry = sweep(write_experiment(j), "--dry-run");
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  for (const std::string run : {"alpha__sliding_window__causal__seed1", "beta__sliding_window__causal__seed1"}) {
    const std::size_t at = dry.out.find("# " + run);
    ASSERT_NE(at, std::string::npos) << dry.out;
    const std::string train = dry.out.substr(at, dry.out.find("build/hax eval", at) - at);
    const bool beta = run.starts_with("beta");
    EXPECT_EQ(train.find("--log-every 1 --lsh-resample training") != std::string::npos, beta) << train;
    EXPECT_NE(train.find("--log-every 1"), std::string::npos) << train;
  }
  json bad = tiny_experiment(config());
  bad["bases"][0]["extra"] = {"--steps", 4};
  EXPECT_TRUE(FailsWithOneErrorLine(sweep(write_experiment(bad, "bad.json"), "--dry-run"), "bases[0].extra[1]"));
}

// A fresh machine has the committed results (--out-docs) but not the run folders: what results.json records as done
// is not trained again, and stays in the outputs; a changed experiment trains it again.
TEST_F(CliSweep, RunsRecordedInTheDocsAreNotTrainedAgain) {
  json j = tiny_experiment(config());
  j["bases"] = json::array({j["bases"][0]});
  const fs::path experiment = write_experiment(j);
  const std::string docs = cat("--out-docs ", quoted(dir_ / "docs"));
  ASSERT_EQ(sweep(experiment, docs).exit_code, 0);
  const json first = json::parse(read_file(dir_ / "docs/results.json"));
  ASSERT_EQ(first.size(), 2u);
  for (const json& r : first) EXPECT_FALSE(r.at("curve").empty()) << r.dump();

  fs::remove_all(runs());
  const CommandResult again = sweep(experiment, docs);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_FALSE(fs::exists(runs() / "tiny/alpha__plain__none__seed1.train.log"));
  const json second = json::parse(read_file(dir_ / "docs/results.json"));
  ASSERT_EQ(second.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(second[i].at("recorded"), true);
    for (const char* key : {"command", "eval_command", "test_accuracy", "best_valid_accuracy", "steps", "wall_seconds",
                            "curve", "folder", "status"})
      EXPECT_EQ(second[i].at(key), first[i].at(key)) << key;
  }
  EXPECT_NE(read_file(dir_ / "docs/results.md").find("| done (recorded) |"), std::string::npos);
  EXPECT_NE(sweep(experiment, docs + " --dry-run").out.find("recorded in --out-docs's results.json: skipped"),
            std::string::npos);

  j["train"]["steps"] = 4;  // another protocol: the recorded 3-update runs do not stand for it
  const CommandResult changed = sweep(write_experiment(j), docs);
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  for (const json& r : json::parse(read_file(dir_ / "docs/results.json"))) {
    EXPECT_EQ(r.at("steps"), 4);
    EXPECT_FALSE(r.contains("recorded"));
  }
}

TEST_F(CliSweep, OnlyRunsTheSelectedRunsAndRendersTheWholeGrid) {
  const fs::path experiment = write_experiment(tiny_experiment(config()));
  const CommandResult some = sweep(experiment, "--only 'alpha__sliding|beta__plain'");
  ASSERT_EQ(some.exit_code, 0) << some.err;
  std::map<std::string, std::string> status;
  for (const json& r : json::parse(read_file(runs() / "tiny/results.json")))
    status[r.at("base").get<std::string>() + "/" + r.at("sparse_arch").get<std::string>()] = r.at("status");
  EXPECT_EQ(status, (std::map<std::string, std::string>{{"alpha/", "pending"},
                                                         {"alpha/sliding_window", "done"},
                                                         {"beta/", "done"},
                                                         {"beta/sliding_window", "pending"}}));
  EXPECT_TRUE(FailsWithOneErrorLine(sweep(experiment, "--only gamma"), "matches no run"));
  EXPECT_TRUE(FailsWithOneErrorLine(sweep(experiment, "--only '('"), "not a regular expression"));
}

// An arch listed in "same_under_both_semantics" is trained under `paper` only; its `causal` run is rendered with the
// `paper` run's results, its own commands, no wall time, and "measured_as" naming the twin. Those commands train the
// same weights; a causal run measured itself keeps its own results.
TEST_F(CliSweep, APaperRunStandsForItsCausalTwinWhereTheArchComputesTheSame) {
  json j = stood_for_experiment(config(), "sliding_window+sink");
  const fs::path experiment = write_experiment(j);
  const std::string causal = "alpha__sliding_window_sink__causal__seed1", paper = "alpha__sliding_window_sink__paper__seed1";
  EXPECT_NE(sweep(experiment, "--dry-run").out.find(causal + " (measured as " + paper + ": not trained)"),
            std::string::npos);
  const CommandResult only_causal = sweep(experiment, "--only causal");  // selects the twin's training
  ASSERT_EQ(only_causal.exit_code, 0) << only_causal.err;
  EXPECT_FALSE(fs::exists(runs() / "tiny" / causal));
  EXPECT_FALSE(fs::exists(runs() / "tiny" / (causal + ".train.log")));
  const json results = json::parse(read_file(runs() / "tiny/results.json"));
  ASSERT_EQ(results.size(), 2u);
  const json& measured = results[0].at("semantics") == "paper" ? results[0] : results[1];
  const json& stood_for = results[0].at("semantics") == "paper" ? results[1] : results[0];
  EXPECT_EQ(stood_for.at("status"), "done");
  EXPECT_EQ(stood_for.at("measured_as"), paper);
  EXPECT_FALSE(measured.contains("measured_as"));
  for (const char* key : {"test_accuracy", "best_valid_accuracy", "steps", "curve", "folder"})
    EXPECT_EQ(stood_for.at(key), measured.at(key)) << key;
  EXPECT_EQ(stood_for.at("wall_seconds"), 0.0);
  EXPECT_NE(stood_for.at("command").get<std::string>().find("--semantics causal"), std::string::npos);
  EXPECT_NE(stood_for.at("command").get<std::string>().find(causal), std::string::npos);
  EXPECT_NE(read_file(runs() / "tiny/results.md").find("done, measured as " + paper), std::string::npos);
  // The causal run's own command trains the same weights, bit for bit.
  const std::string command = stood_for.at("command").get<std::string>().substr(std::string("build/hax ").size());
  ASSERT_EQ(run_hax(command).exit_code, 0);
  EXPECT_EQ(read_file(runs() / "tiny" / causal / "best/model.safetensors"),
            read_file(runs() / "tiny" / paper / "best/model.safetensors"));
  // Once measured itself (evaluated too), the causal run keeps its own results.
  ASSERT_EQ(run_hax(stood_for.at("eval_command").get<std::string>().substr(std::string("build/hax ").size())).exit_code, 0);
  ASSERT_EQ(sweep(experiment, "--render-only").exit_code, 0);
  for (const json& r : json::parse(read_file(runs() / "tiny/results.json"))) {
    EXPECT_FALSE(r.contains("measured_as")) << r.dump();
    EXPECT_EQ(r.at("test_accuracy"), measured.at("test_accuracy"));
  }

  json not_invariant = j;
  not_invariant["sparse_archs"] = {"sign_bin_lsh"};
  not_invariant["same_under_both_semantics"] = {"sign_bin_lsh"};
  EXPECT_TRUE(FailsWithOneErrorLine(sweep(write_experiment(not_invariant, "lsh.json"), "--dry-run"),
                                    "same_under_both_semantics[0]"));
  json one_semantics = j;
  one_semantics["semantics"] = {"causal"};
  EXPECT_TRUE(FailsWithOneErrorLine(sweep(write_experiment(one_semantics, "one.json"), "--dry-run"),
                                    "both \"paper\" and \"causal\""));
  json not_in_grid = j;
  not_in_grid["same_under_both_semantics"] = {"sliding_window"};
  EXPECT_TRUE(FailsWithOneErrorLine(sweep(write_experiment(not_in_grid, "grid.json"), "--dry-run"),
                                    "same_under_both_semantics[0]"));
}

// On a fresh machine (only the committed results), a stood-for run is derived from its recorded twin again, not
// taken for a measurement of its own.
TEST_F(CliSweep, AStoodForRunStaysStoodForWhenItsTwinIsRecorded) {
  json j = stood_for_experiment(config(), "sliding_window");
  const fs::path experiment = write_experiment(j);
  const std::string docs = cat("--out-docs ", quoted(dir_ / "docs"));
  ASSERT_EQ(sweep(experiment, docs).exit_code, 0);
  fs::remove_all(runs());
  const CommandResult again = sweep(experiment, docs);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_FALSE(fs::exists(runs() / "tiny/alpha__sliding_window__paper__seed1.train.log"));
  const json results = json::parse(read_file(dir_ / "docs/results.json"));
  ASSERT_EQ(results.size(), 2u);
  for (const json& r : results) {
    EXPECT_EQ(r.at("status"), "done") << r.dump();
    EXPECT_EQ(r.at("recorded"), true) << r.dump();
    EXPECT_EQ(r.contains("measured_as"), r.at("semantics") == "causal") << r.dump();
  }
}

TEST_F(CliSweep, ABadExperimentIsAOneLineErrorNamingTheKey) {
  json top = tiny_experiment(config());
  top["trian"] = top["train"];
  EXPECT_TRUE(FailsWithOneErrorLine(sweep(write_experiment(top, "top.json"), "--dry-run"), "did you mean 'train'"));

  json nested = tiny_experiment(config());
  nested["train"]["stepz"] = 3;
  const CommandResult r = sweep(write_experiment(nested, "nested.json"), "--dry-run");
  EXPECT_TRUE(FailsWithOneErrorLine(r, "'train.stepz'"));
  EXPECT_TRUE(FailsWithOneErrorLine(r, "nested.json"));

  json value = tiny_experiment(config());
  value["semantics"] = {"strict"};
  EXPECT_TRUE(FailsWithOneErrorLine(sweep(write_experiment(value, "value.json"), "--dry-run"), "semantics[0]"));
  EXPECT_FALSE(fs::exists(runs()));
}

}  // namespace
}  // namespace hax::testing
