// hax sweep: runs an experiment's grid of `hax train` + `hax eval` runs (training/experiment.h has the file
// format), several at once, each a child process of this binary with its output in a log beside its folder. It
// resumes what was interrupted, skips what is done, and renders results.json, results.md and curves_<base>.svg
// (training/sweep_report.h) from the run folders after every run, so the outputs are current at any moment.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "hax/cli/commands.h"
#include "hax/cli/progress.h"
#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"
#include "hax/io/svg_lines.h"
#include "hax/training/experiment.h"
#include "hax/training/sweep_report.h"

extern char** environ;

namespace hax::cli {
namespace {

namespace fs = std::filesystem;
using training::Experiment;
using training::RunSpec;

constexpr const char* kRecordedProgram = "build/hax";  // how commands are recorded: runnable from the repo root

struct SweepCommand {
  std::string experiment_path;
  std::string runs_dir;  // empty: $HOME/hax-runs
  std::string out_docs;
  int jobs = 0;          // 0: cores / threads per run
  std::string only;      // a regular expression: run only the runs whose id it matches (all are rendered)
  bool dry_run = false, render_only = false;
};

struct Sweep {
  Experiment experiment;
  fs::path root;  // RUNS_DIR/<name>
  std::vector<RunSpec> runs;
  // By run id: the runs --out-docs's results.json records as done by an earlier sweep (training::recorded_run).
  std::map<std::string, training::RunRecord> recorded_runs;
  fs::path run_dir(const RunSpec& run) const { return root / run.id(); }
  const training::RunRecord* recorded(const RunSpec& run) const {
    const auto found = recorded_runs.find(run.id());
    return found == recorded_runs.end() ? nullptr : &found->second;
  }
  // Finished here (its folder has test.json) or recorded as finished by an earlier sweep elsewhere.
  bool measured(const RunSpec& run) const { return fs::exists(run_dir(run) / "test.json") || recorded(run); }
  // The run that is trained for `run`: its `paper` twin where the experiment lets that stand for it
  // (training::measured_by) and run was not measured itself (a measurement beats its stand-in), else run.
  RunSpec trained(const RunSpec& run) const {
    return measured(run) ? run : training::measured_by(experiment, run).value_or(run);
  }
  bool done(const RunSpec& run) const { return measured(trained(run)); }
};

fs::path default_runs_dir() {
  const char* home = std::getenv("HOME");
  check(home && *home, "HOME is not set: give the runs folder with --runs-dir");
  return fs::path(home) / "hax-runs";
}

// ---- running one child ----

// The environment with OMP_WAIT_POLICY=passive: idle OpenMP threads of concurrent runs sleep instead of spinning.
std::vector<std::string> child_environment() {
  std::vector<std::string> env{"OMP_WAIT_POLICY=passive"};
  for (char** e = environ; *e; ++e)
    if (!std::string_view(*e).starts_with("OMP_WAIT_POLICY=")) env.emplace_back(*e);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Runs `program args` with stdin from /dev/null and stdout and stderr appended to `log`; returns the exit status
// (128 + the signal for a child killed by one, -1 if it could not start). While the child runs, `on_minute` is
// called about once a minute.
int run_child(const std::string& program, std::vector<std::string> args, const fs::path& log,
              const std::function<void()>& on_minute) {
  {
    std::ofstream header(log, std::ios::app);
    header << "== hax sweep: " << training::command_line(program, args) << "\n";
  }
  args.insert(args.begin(), program);
  std::vector<std::string> env = child_environment();
  std::vector<char*> argv = c_strings(args), envp = c_strings(env);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    std::ofstream(log, std::ios::app) << "cannot start " << program << ": " << std::strerror(spawned) << "\n";
    return -1;
  }
  int status = 0;
  for (int tick = 1;; ++tick) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) break;
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (tick % 60 == 0) on_minute();
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string last_line(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs one phase (train or eval) as a child; adds its wall time to the run's state as it goes (every minute, so a
// sweep killed at a session's end loses at most a minute of it), and on failure marks it failed with the last line
// of its log. Returns whether it succeeded.
bool run_phase(const std::string& program, const std::vector<std::string>& args, const fs::path& dir,
               const char* phase, double training::SweepRunState::*seconds) {
  const fs::path log = dir.string() + "." + phase + ".log";
  auto counted_until = std::chrono::steady_clock::now();
  const auto add_elapsed = [&](training::SweepRunState& state) {
    state.*seconds += seconds_since(counted_until);
    counted_until = std::chrono::steady_clock::now();
  };
  const int code = run_child(program, args, log, [&] {
    training::SweepRunState state = training::read_sweep_state(dir);
    add_elapsed(state);
    state.status = "running";
    training::write_sweep_state(dir, state);
  });
  training::SweepRunState state = training::read_sweep_state(dir);
  add_elapsed(state);
  state.status = code == 0 ? "running" : "failed";
  state.error = code == 0 ? "" : cat(phase, " exited with ", code, ": ", last_line(log));
  training::write_sweep_state(dir, state);
  return code == 0;
}

// Trains (fresh, or resumed from last/) up to the experiment's steps, then evaluates on the test split. A done run
// (Sweep::done) is left alone.
void execute_run(const Sweep& s, const RunSpec& run, const std::string& program) {
  if (s.done(run)) return;
  const fs::path dir = s.run_dir(run);
  fs::create_directories(dir);
  const std::optional<std::int64_t> step = training::trained_steps(dir);
  // Without last/ nothing can be resumed: start clean rather than append to the metrics of a lost attempt.
  if (!step) fs::remove(dir / "metrics.jsonl");
  if (!step || *step < s.experiment.steps) {
    const auto args = training::train_arguments(s.experiment, run, dir.string(), step.has_value());
    if (!run_phase(program, args, dir, "train", &training::SweepRunState::train_seconds)) return;
  }
  if (!run_phase(program, training::eval_arguments(s.experiment, dir.string()), dir, "eval",
                 &training::SweepRunState::eval_seconds))
    return;
  training::SweepRunState state = training::read_sweep_state(dir);
  state.status = "done";
  training::write_sweep_state(dir, state);
}

// execute_run, with any error of the sweep's own (a full disk, an unwritable folder) recorded as the run's failure
// instead of ending the sweep from a worker thread.
void execute_run_safely(const Sweep& s, const RunSpec& run, const std::string& program) {
  try {
    execute_run(s, run, program);
  } catch (const std::exception& e) {
    training::SweepRunState state = training::read_sweep_state(s.run_dir(run));
    state.status = "failed";
    state.error = cat("hax sweep: ", e.what());
    try {
      training::write_sweep_state(s.run_dir(run), state);
    } catch (const std::exception&) {
      std::cerr << "hax sweep: " << run.id() << ": " << e.what() << "\n";
    }
  }
}

// ---- outputs ----

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

training::RunRecord read_record(const Sweep& s, const RunSpec& run) {
  training::RunRecord r = training::read_run(s.experiment, run, s.run_dir(run), kRecordedProgram);
  if (r.status != "done")
    if (const training::RunRecord* recorded = s.recorded(run)) r = *recorded;
  return r;
}

std::vector<training::RunRecord> read_records(const Sweep& s) {
  std::vector<training::RunRecord> records;
  for (const RunSpec& run : s.runs) {
    const RunSpec trained = s.trained(run);
    records.push_back(trained.id() == run.id()
                          ? read_record(s, run)
                          : training::stood_for_by(s.experiment, run, read_record(s, trained), kRecordedProgram));
  }
  return records;
}

void render_into(const fs::path& out, const Sweep& s, const std::vector<training::RunRecord>& records) {
  fs::create_directories(out / "heatmaps");
  io::write_file_atomically(out / "results.json", training::results_json(records).dump(2) + "\n");
  io::write_file_atomically(out / "results.md", training::results_markdown(s.experiment, records));
  for (const training::ExperimentBase& base : s.experiment.bases)
    io::write_file_atomically(out / ("curves_" + base.name + ".svg"),
               io::line_chart_svg(training::curves_chart(s.experiment, records, base.name)));
  for (const training::RunRecord& r : records)
    if (r.status == "done" && fs::exists(fs::path(r.folder) / "test.svg"))
      io::write_file_atomically(out / "heatmaps" / (r.spec.id() + ".svg"), read_text(fs::path(r.folder) / "test.svg"));
}

// Returns the number of failed runs.
std::size_t render(const Sweep& s, const std::string& out_docs) {
  const std::vector<training::RunRecord> records = read_records(s);
  render_into(s.root, s, records);
  if (!out_docs.empty()) render_into(out_docs, s, records);
  return static_cast<std::size_t>(
      std::count_if(records.begin(), records.end(), [](const auto& r) { return r.status == "failed"; }));
}

// ---- the command ----

void print_dry_run(const Sweep& s, const std::vector<RunSpec>& selected) {
  for (const RunSpec& run : selected) {
    const fs::path dir = s.run_dir(run);
    const std::optional<std::int64_t> step = training::trained_steps(dir);
    const RunSpec trained = s.trained(run);
    std::cout << "# " << run.id()
              << (trained.id() != run.id() ? cat(" (measured as ", trained.id(), ": not trained)")
                  : fs::exists(dir / "test.json") ? " (done: skipped)"
                  : s.recorded(run) ? " (done, recorded in --out-docs's results.json: skipped)"
                  : step ? cat(" (resumes from step ", *step, ")") : "")
              << "\n"
              << training::command_line(kRecordedProgram, training::train_arguments(s.experiment, run, dir.string(),
                                                                                     false))
              << "\n"
              << training::command_line(kRecordedProgram, training::eval_arguments(s.experiment, dir.string()))
              << "\n";
  }
}

void check_configs(const Experiment& e) {
  for (const training::ExperimentBase& b : e.bases)
    check(fs::is_regular_file(b.config), e.path, ": base '", b.name, "': config '", b.config,
          "' not found (paths are relative to the folder hax sweep runs in, the repository root)");
}

int default_jobs(const Experiment& e) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / e.threads);
}

// The runs --only selects (all without it), in the grid's order. A selected run that another's measurement stands
// for stays in (dry runs list it) and run_all trains its twin.
std::vector<RunSpec> selected_runs(const Sweep& s, const std::string& only) {
  if (only.empty()) return s.runs;
  std::regex pattern;
  try {
    pattern = std::regex(only, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail("hax sweep: --only '", only, "' is not a regular expression: ", e.what());
  }
  std::vector<RunSpec> selected;
  std::copy_if(s.runs.begin(), s.runs.end(), std::back_inserter(selected),
               [&](const RunSpec& run) { return std::regex_search(run.id(), pattern); });
  check(!selected.empty(), "hax sweep: --only '", only, "' matches no run of ", s.experiment.path, " (run ids look like ",
        s.runs.front().id(), "; --dry-run lists them)");
  return selected;
}

// The runs to train for `selected`: each one's trained run (Sweep::trained) once, unless done.
std::vector<RunSpec> runs_to_train(const Sweep& s, const std::vector<RunSpec>& selected) {
  std::vector<RunSpec> todo;
  std::set<std::string> ids;
  for (const RunSpec& run : selected) {
    const RunSpec trained = s.trained(run);
    if (!s.done(trained) && ids.insert(trained.id()).second) todo.push_back(trained);
  }
  return todo;
}

// Runs the runs not yet done, `jobs` at a time, re-rendering the outputs after each.
void run_all(const Sweep& s, const std::vector<RunSpec>& selected, const SweepCommand& c) {
  const std::vector<RunSpec> todo = runs_to_train(s, selected);
  const std::string program = fs::read_symlink("/proc/self/exe").string();
  const int jobs = std::min<int>(c.jobs > 0 ? c.jobs : default_jobs(s.experiment), static_cast<int>(todo.size()));
  std::cerr << "hax sweep: " << todo.size() << " of " << s.runs.size() << " runs of " << s.experiment.path
            << " to run in " << s.root.string() << ", " << jobs << " at a time, " << s.experiment.threads
            << " thread(s) each\n";
  std::mutex mutex;
  std::atomic<std::size_t> next{0};
  std::size_t done = 0;
  Progress bar("sweep", todo.size(), "runs");
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < todo.size();) {
      execute_run_safely(s, todo[i], program);
      const std::lock_guard lock(mutex);
      render(s, c.out_docs);
      bar.update(++done, todo[i].id() + " " + training::read_sweep_state(s.run_dir(todo[i])).status);
    }
  };
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; ++j) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  bar.finish();
}

// The grid's runs that --out-docs's results.json (if there is one) records as done; a file that does not parse is an
// error rather than a reason to train its runs again.
std::map<std::string, training::RunRecord> read_recorded_runs(const Sweep& s, const std::string& out_docs) {
  const fs::path path = fs::path(out_docs) / "results.json";
  if (out_docs.empty() || !fs::exists(path)) return {};
  std::ifstream in(path);
  const nlohmann::json results = nlohmann::json::parse(in, nullptr, false);
  check(!results.is_discarded() && results.is_array(), path.string(),
        ": not a results.json of hax sweep (a JSON array of runs); move it away to start the results afresh");
  std::map<std::string, training::RunRecord> recorded;
  for (const RunSpec& run : s.runs)
    if (std::optional<training::RunRecord> r = training::recorded_run(s.experiment, run, results, kRecordedProgram))
      recorded.emplace(run.id(), std::move(*r));
  return recorded;
}

void run_sweep(const SweepCommand& c) {
  Sweep s;
  s.experiment = training::load_experiment(c.experiment_path);
  s.root = (c.runs_dir.empty() ? default_runs_dir() : fs::path(c.runs_dir)) / s.experiment.name;
  s.runs = training::expand_runs(s.experiment);
  check(!s.runs.empty(), s.experiment.path,
        ": the grid has no runs (only sparse archs, and every base \"sparse\": false)");
  s.recorded_runs = read_recorded_runs(s, c.out_docs);
  const std::vector<RunSpec> selected = selected_runs(s, c.only);
  if (c.dry_run) return print_dry_run(s, selected);
  if (!c.render_only) {
    check_configs(s.experiment);
    fs::create_directories(s.root);
    run_all(s, selected, c);
  }
  const std::size_t failed = render(s, c.out_docs);
  std::cerr << "hax sweep: results in " << (s.root / "results.md").string()
            << (c.out_docs.empty() ? "" : " and " + c.out_docs) << "\n";
  check(failed == 0 || c.render_only, failed, " of ", s.runs.size(), " runs failed (status \"failed\" in ",
        (s.root / "results.json").string(), ", logs beside their folders)");
}

void register_sweep(CLI::App& app) {
  auto* command = app.add_subcommand("sweep", "Run an experiment's grid of train + eval runs and render the results");
  command->footer(
      "The experiment file (JSON) lists bases (model configs), sparse archs, semantics, seeds, training and task\n"
      "settings, and the paper's numbers; src/hax/training/experiment.h documents it. Each run gets a folder\n"
      "RUNS_DIR/NAME/<base>__<arch>__<semantics>__seed<S>; an interrupted run resumes, a finished one is skipped.\n"
      "Writes results.json, results.md and curves_<base>.svg in RUNS_DIR/NAME (and --out-docs).\n"
      "With --out-docs, a run that its results.json records as done (same command) counts as done even where\n"
      "RUNS_DIR lacks its folder: a sweep on a fresh machine trains only what the committed results lack.");
  auto c = std::make_shared<SweepCommand>();
  command->add_option("experiment", c->experiment_path, "Experiment file (JSON)")->required();
  command->add_option("--runs-dir", c->runs_dir, "Where run folders live (default: $HOME/hax-runs)");
  command->add_option("--out-docs", c->out_docs, "Also write results.json, results.md and the SVGs here");
  command->add_option("--jobs,-j", c->jobs, "Runs at once (default: cores / threads per run)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--only", c->only,
                      "Run only the runs whose id matches this regular expression (e.g. 'sink|dilated'); "
                      "the outputs still cover the whole grid");
  command->add_flag("--dry-run", c->dry_run, "Print each run's train and eval commands; run nothing");
  command->add_flag("--render-only", c->render_only, "Render the outputs from the run folders; run nothing");
  command->callback([c] { run_sweep(*c); });
}

}  // namespace

void register_sweep_commands(CLI::App& app) { register_sweep(app); }

}  // namespace hax::cli
