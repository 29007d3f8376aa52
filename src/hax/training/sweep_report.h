// What `hax sweep` knows about each run, read back from its folder (so a sweep's outputs can be rendered again at
// any time from the folders alone), and the outputs rendered from it: results.json (one object per run),
// results.md (our table beside the paper's, and every run's steps, accuracy and wall time) and the
// validation-accuracy curves of each base as an SVG line chart.
//
// A run folder holds what `hax train` and `hax eval` write (last/trainer_state.json, metrics.jsonl, test.json,
// test.svg) and the sweep's own sweep_run.json: {"train_seconds", "eval_seconds", "status", "error"}, the wall
// seconds summed over every attempt, and the last attempt's outcome.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/io/svg_lines.h"
#include "hax/training/experiment.h"

namespace hax::training {

struct SweepRunState {
  double train_seconds = 0, eval_seconds = 0;
  std::string status;  // "", "running", "done" or "failed"
  std::string error;   // a failed run: the last line of its log
};

SweepRunState read_sweep_state(const std::filesystem::path& run_dir);
void write_sweep_state(const std::filesystem::path& run_dir, const SweepRunState& state);  // atomically

// The step of the run's last/ checkpoint; nullopt if it has none.
std::optional<std::int64_t> trained_steps(const std::filesystem::path& run_dir);

struct RunRecord {
  RunSpec spec;
  std::string command, eval_command;  // runnable from the repository root
  std::string folder;                 // the run folder
  std::int64_t steps = 0;             // reached
  std::optional<double> test_accuracy, best_valid_accuracy;  // fractions
  SweepRunState state;
  int threads = 1;
  std::string status;  // done (evaluated), failed, or pending
  std::vector<std::pair<double, double>> curve;  // (update, validation accuracy in %)
  bool recorded = false;  // read back from an earlier results.json (recorded_run), not from the run's folder
  std::string measured_as;  // the id of the run whose measurement stands for this one (measured_by); "" if itself
};

// `program` is the name commands are recorded with ("build/hax").
RunRecord read_run(const Experiment& e, const RunSpec& run, const std::filesystem::path& run_dir,
                   const std::string& program);

// A finished run as an earlier results.json recorded it, for a sweep on a machine that no longer has the run's
// folder (a fresh machine keeps the committed results, not ~/hax-runs). Only a "done" object of the same base, arch,
// semantics and seed whose recorded command is the one this experiment gives for its folder counts: a changed
// experiment (other steps, task or flags) trains the run again, and an object "measured_as" another run is no
// measurement of its own. nullopt if `results` (results.json's array) has none.
std::optional<RunRecord> recorded_run(const Experiment& e, const RunSpec& run, const nlohmann::json& results,
                                      const std::string& program);

// The record of a run that another's measurement stands for (measured_by(e, run) gave `twin.spec`): the twin's
// results and folder under the run's own spec and commands (which would reproduce them bit for bit), no wall time
// of its own, and measured_as naming the twin.
RunRecord stood_for_by(const Experiment& e, const RunSpec& run, const RunRecord& twin, const std::string& program);

nlohmann::json results_json(const std::vector<RunRecord>& runs);
std::string results_markdown(const Experiment& e, const std::vector<RunRecord>& runs);
io::LineChart curves_chart(const Experiment& e, const std::vector<RunRecord>& runs, const std::string& base);

}  // namespace hax::training
