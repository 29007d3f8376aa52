#include "hax/training/sweep_report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"

namespace hax::training {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The file's JSON; nullopt if it is missing or does not parse (a run still being written, or never started).
std::optional<json> read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

std::optional<double> number_at(const std::optional<json>& j, const char* key) {
  if (!j || !j->contains(key) || !(*j)[key].is_number()) return std::nullopt;
  return (*j)[key].get<double>();
}

std::vector<std::pair<double, double>> valid_curve(const fs::path& metrics) {
  std::vector<std::pair<double, double>> curve;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || j.value("event", "") != "valid") continue;
    curve.emplace_back(j.value("step", 0.0), 100.0 * j.value("accuracy", 0.0));
  }
  return curve;
}

std::string fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string arch_label(const std::string& arch) { return arch.empty() ? "plain" : arch; }

// The table's rows: plain first (if listed), then each sparse arch in each semantics.
std::vector<std::pair<std::string, std::string>> table_rows(const Experiment& e) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const std::string& arch : e.sparse_archs)
    if (arch.empty()) rows.emplace_back("", "none");
  for (const std::string& arch : e.sparse_archs)
    for (const std::string& s : e.semantics)
      if (!arch.empty()) rows.emplace_back(arch, s);
  return rows;
}

// "24.3 (24.1, 24.5)": the mean test accuracy (%) over the seeds evaluated, then each seed's, "–" where a seed has
// no result yet and "failed" where its run failed; "–" alone where no run of the cell exists or none has a result.
std::string ours_cell(const std::vector<const RunRecord*>& cell) {
  std::string seeds;
  double sum = 0;
  int evaluated = 0;
  for (const RunRecord* r : cell) {
    const std::string value = r->test_accuracy ? fixed(100 * *r->test_accuracy, 1)
                              : r->status == "failed" ? "failed" : "–";
    seeds += (seeds.empty() ? "" : ", ") + value;
    if (r->test_accuracy) {
      sum += 100 * *r->test_accuracy;
      ++evaluated;
    }
  }
  if (cell.empty()) return "–";
  if (evaluated == 0) return cell.size() == 1 ? seeds : "– (" + seeds + ")";
  return fixed(sum / evaluated, 1) + (cell.size() > 1 ? " (" + seeds + ")" : "");
}

std::string paper_cell(const Experiment& e, const std::string& base, const std::string& arch) {
  const auto b = e.paper.find(base);
  if (b == e.paper.end()) return "–";
  const auto a = b->second.find(arch);
  return a == b->second.end() ? "–" : fixed(a->second, 1);
}

std::string flags_text(const std::vector<std::pair<std::string, std::string>>& flags) {
  std::string text;
  for (const auto& [name, value] : flags) text += (text.empty() ? "" : " ") + name + " " + value;
  return text.empty() ? "(defaults)" : text;
}

void write_summary(std::ostream& md, const Experiment& e, const std::vector<RunRecord>& runs) {
  std::map<std::string, int> by_status;
  for (const RunRecord& r : runs) ++by_status[r.status];
  md << "# " << e.name << ": joint-recall test accuracy (%)\n\n"
     << "Experiment `" << e.path << "`, rendered by `hax sweep`: " << runs.size() << " runs (";
  std::string counts;
  for (const auto& [status, n] : by_status) counts += (counts.empty() ? "" : ", ") + cat(n, " ", status);
  md << counts << ").\n\n- training: `" << flags_text(e.train_flags) << "`, " << e.threads
     << " thread(s) per run\n- task: `" << flags_text(e.task_flags) << "`\n\n"
     << "Ours: the mean over seeds of the test accuracy of each run's best-validation checkpoint, each seed's in "
        "parentheses. Paper: the paper's number for the base and arch (any semantics), where the experiment gives "
        "one.\n\n";
}

void write_table(std::ostream& md, const Experiment& e, const std::vector<RunRecord>& runs) {
  md << "| sparse arch | semantics |";
  for (const ExperimentBase& b : e.bases) md << " " << b.name << " (ours) | " << b.name << " (paper) |";
  md << "\n|---|---|";
  for (std::size_t i = 0; i < e.bases.size(); ++i) md << "---:|---:|";
  md << "\n";
  for (const auto& [arch, semantics] : table_rows(e)) {
    md << "| " << arch_label(arch) << " | " << semantics << " |";
    for (const ExperimentBase& b : e.bases) {
      std::vector<const RunRecord*> cell;
      for (const RunRecord& r : runs)
        if (r.spec.base == b.name && r.spec.sparse_arch == arch && r.spec.semantics == semantics) cell.push_back(&r);
      md << " " << ours_cell(cell) << " | " << paper_cell(e, b.name, arch) << " |";
    }
    md << "\n";
  }
}

void write_runs(std::ostream& md, const std::vector<RunRecord>& runs) {
  md << "\n## Runs\n\n| run | steps | best valid % | test % | wall s (train + eval) | status | heatmap |\n"
     << "|---|---:|---:|---:|---:|---|---|\n";
  for (const RunRecord& r : runs) {
    md << "| " << r.spec.id() << " | " << r.steps << " | "
       << (r.best_valid_accuracy ? fixed(100 * *r.best_valid_accuracy, 1) : "–") << " | "
       << (r.test_accuracy ? fixed(100 * *r.test_accuracy, 1) : "–") << " | "
       << fixed(r.state.train_seconds + r.state.eval_seconds, 1) << " | " << r.status
       << (r.status == "failed" ? ": " + r.state.error : "") << (r.recorded ? " (recorded)" : "")
       << (r.measured_as.empty() ? "" : ", measured as " + r.measured_as) << " | "
       << (r.test_accuracy ? "[svg](heatmaps/" + r.spec.id() + ".svg)" : "–") << " |\n";
  }
  md << "\nCommands: `command` and `eval_command` of each run in results.json, runnable from the repository "
        "root. \"recorded\": taken from an earlier results.json, the run's folder being on another machine.";
  if (std::any_of(runs.begin(), runs.end(), [](const RunRecord& r) { return !r.measured_as.empty(); }))
    md << " \"measured as\": not trained; its arch computes the same bits under `paper` and `causal` (the "
          "experiment's \"same_under_both_semantics\", checked by SparseArch::semantics_invariant and its test), so "
          "the named `paper` run's results are this run's too (its own commands would reproduce them).";
  md << "\n";
}

// Validation accuracy (%) of each run at each evaluated update: how soon a run leaves a plateau, which the final
// accuracy alone does not show. Columns: every update at which any run was evaluated.
void write_curves(std::ostream& md, const std::vector<RunRecord>& runs) {
  std::set<double> updates;
  for (const RunRecord& r : runs)
    for (const auto& [update, accuracy] : r.curve) updates.insert(update);
  if (updates.empty()) return;
  md << "\n## Validation accuracy (%) by update\n\n| run |";
  for (double u : updates) md << " " << fixed(u, 0) << " |";
  md << "\n|---|";
  for (std::size_t i = 0; i < updates.size(); ++i) md << "---:|";
  md << "\n";
  for (const RunRecord& r : runs) {
    md << "| " << r.spec.id() << " |";
    const std::map<double, double> at(r.curve.begin(), r.curve.end());
    for (double u : updates) md << " " << (at.contains(u) ? fixed(at.at(u), 1) : "–") << " |";
    md << "\n";
  }
}

}  // namespace

SweepRunState read_sweep_state(const fs::path& run_dir) {
  SweepRunState s;
  const std::optional<json> j = read_json(run_dir / "sweep_run.json");
  if (!j || !j->is_object()) return s;
  s.train_seconds = j->value("train_seconds", 0.0);
  s.eval_seconds = j->value("eval_seconds", 0.0);
  s.status = j->value("status", "");
  s.error = j->value("error", "");
  return s;
}

void write_sweep_state(const fs::path& run_dir, const SweepRunState& s) {
  io::AtomicFile file(run_dir / "sweep_run.json");
  file.stream() << json{{"train_seconds", s.train_seconds},
                        {"eval_seconds", s.eval_seconds},
                        {"status", s.status},
                        {"error", s.error}}
                       .dump(2)
                << "\n";
  file.commit();
}

std::optional<std::int64_t> trained_steps(const fs::path& run_dir) {
  const std::optional<double> step = number_at(read_json(run_dir / "last/trainer_state.json"), "step");
  if (!step) return std::nullopt;
  return static_cast<std::int64_t>(*step);
}

RunRecord read_run(const Experiment& e, const RunSpec& run, const fs::path& run_dir, const std::string& program) {
  RunRecord r;
  r.spec = run;
  r.folder = run_dir.string();
  r.command = command_line(program, train_arguments(e, run, run_dir.string(), false));
  r.eval_command = command_line(program, eval_arguments(e, run_dir.string()));
  r.steps = trained_steps(run_dir).value_or(0);
  r.best_valid_accuracy = number_at(read_json(run_dir / "last/trainer_state.json"), "best_valid_accuracy");
  r.test_accuracy = number_at(read_json(run_dir / "test.json"), "accuracy");
  r.state = read_sweep_state(run_dir);
  r.threads = e.threads;
  r.status = r.test_accuracy ? "done" : r.state.status == "failed" ? "failed" : "pending";
  r.curve = valid_curve(run_dir / "metrics.jsonl");
  return r;
}

std::optional<RunRecord> recorded_run(const Experiment& e, const RunSpec& run, const json& results,
                                      const std::string& program) {
  if (!results.is_array()) return std::nullopt;
  for (const json& j : results) {
    // An object "measured_as" another run was not measured itself: the sweep derives it from its twin again.
    if (!j.is_object() || j.value("status", "") != "done" || j.contains("measured_as") ||
        j.value("base", "") != run.base || j.value("sparse_arch", "") != run.sparse_arch || j.value("semantics", "") != run.semantics ||
        j.value("seed", std::int64_t{-1}) != run.seed || !j.contains("folder") || !j["folder"].is_string() ||
        !j.contains("test_accuracy") || !j["test_accuracy"].is_number())
      continue;
    RunRecord r;
    r.spec = run;
    r.folder = j["folder"].get<std::string>();
    r.command = command_line(program, train_arguments(e, run, r.folder, false));
    r.eval_command = command_line(program, eval_arguments(e, r.folder));
    if (j.value("command", "") != r.command || j.value("eval_command", "") != r.eval_command) continue;
    r.steps = j.value("steps", std::int64_t{0});
    r.test_accuracy = j["test_accuracy"].get<double>();
    if (j.contains("best_valid_accuracy") && j["best_valid_accuracy"].is_number())
      r.best_valid_accuracy = j["best_valid_accuracy"].get<double>();
    r.state.train_seconds = j.value("train_seconds", j.value("wall_seconds", 0.0));
    r.state.eval_seconds = j.value("eval_seconds", 0.0);
    r.state.status = "done";
    r.threads = j.value("threads", e.threads);
    r.status = "done";
    if (j.contains("curve") && j["curve"].is_array())
      for (const json& point : j["curve"])
        if (point.is_array() && point.size() == 2 && point[0].is_number() && point[1].is_number())
          r.curve.emplace_back(point[0].get<double>(), point[1].get<double>());
    r.recorded = true;
    return r;
  }
  return std::nullopt;
}

RunRecord stood_for_by(const Experiment& e, const RunSpec& run, const RunRecord& twin, const std::string& program) {
  RunRecord r = twin;
  r.spec = run;
  const std::string own_folder = (fs::path(twin.folder).parent_path() / run.id()).string();
  r.command = command_line(program, train_arguments(e, run, own_folder, false));
  r.eval_command = command_line(program, eval_arguments(e, own_folder));
  r.state = SweepRunState{0, 0, twin.state.status, twin.state.error};
  r.measured_as = twin.spec.id();
  return r;
}

json results_json(const std::vector<RunRecord>& runs) {
  json all = json::array();
  for (const RunRecord& r : runs) {
    json j{{"base", r.spec.base},
           {"sparse_arch", r.spec.sparse_arch},
           {"semantics", r.spec.semantics},
           {"seed", r.spec.seed},
           {"steps", r.steps},
           {"test_accuracy", r.test_accuracy ? json(*r.test_accuracy) : json(nullptr)},
           {"best_valid_accuracy", r.best_valid_accuracy ? json(*r.best_valid_accuracy) : json(nullptr)},
           {"wall_seconds", r.state.train_seconds + r.state.eval_seconds},
           {"train_seconds", r.state.train_seconds},
           {"eval_seconds", r.state.eval_seconds},
           {"threads", r.threads},
           {"command", r.command},
           {"eval_command", r.eval_command},
           {"status", r.status},
           {"folder", r.folder},
           {"curve", r.curve}};
    if (r.status == "failed") j["error"] = r.state.error;
    if (r.recorded) j["recorded"] = true;
    if (!r.measured_as.empty()) j["measured_as"] = r.measured_as;
    all.push_back(j);
  }
  return all;
}

std::string results_markdown(const Experiment& e, const std::vector<RunRecord>& runs) {
  std::ostringstream md;
  write_summary(md, e, runs);
  write_table(md, e, runs);
  write_runs(md, runs);
  write_curves(md, runs);
  return md.str();
}

io::LineChart curves_chart(const Experiment& e, const std::vector<RunRecord>& runs, const std::string& base) {
  io::LineChart chart;
  chart.title = cat(e.name, ": ", base, ", validation accuracy");
  chart.x_axis = "update";
  chart.y_axis = "validation accuracy (%)";
  chart.x_min = 0;
  chart.y_min = 0;
  chart.y_max = 100;
  const auto rows = table_rows(e);
  for (std::size_t row = 0; row < rows.size(); ++row) {
    const auto& [arch, semantics] = rows[row];
    const int color = static_cast<int>(std::find(e.sparse_archs.begin(), e.sparse_archs.end(), arch) -
                                       e.sparse_archs.begin());
    const bool dashed = semantics == "causal";
    bool any = false;
    for (const RunRecord& r : runs) {
      if (r.spec.base != base || r.spec.sparse_arch != arch || r.spec.semantics != semantics) continue;
      if (!r.measured_as.empty()) continue;  // its twin's curve, drawn already
      chart.series.push_back({cat(r.spec.id()), r.curve, color, dashed, 1.2, false});
      any = true;
    }
    const std::string label = arch_label(arch) + (arch.empty() ? "" : " (" + semantics + ")");
    if (any) chart.series.push_back({label, {}, color, dashed, 2.0, true});  // the legend entry of the variant
  }
  return chart;
}

}  // namespace hax::training
