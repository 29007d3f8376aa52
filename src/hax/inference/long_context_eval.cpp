#include "hax/inference/long_context_eval.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"

namespace hax::inference {
namespace {

namespace fs = std::filesystem;

std::string fixed(double value, int decimals) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << value;
  return out.str();
}

// "512 (1x)": a length in tokens and as a multiple of the training context.
std::string length_label(const LongContextReport& r, int length) {
  const double multiple = static_cast<double>(length) / r.context;
  return cat(length, " (", multiple == std::floor(multiple) ? fixed(multiple, 0) : fixed(multiple, 2), "x)");
}

std::string depth_label(double depth) { return fixed(depth, depth == std::floor(depth) ? 0 : 1) + "%"; }

template <class Keep>
std::pair<double, int> sum_cells(const LongContextReport& r, Keep keep) {
  double score = 0;
  int samples = 0;
  for (const RulerCell& c : r.cells)
    if (keep(c)) {
      score += c.score_sum;
      samples += c.samples;
    }
  return {score, samples};
}

}  // namespace

std::vector<data::TokenSequence> position_sequences(std::span<const std::int32_t> stream, int length,
                                                    int max_sequences) {
  check(!stream.empty(), "no held-out tokens to measure perplexity on");
  check(length >= 2 && max_sequences >= 1, "perplexity sequences need length >= 2 and a count >= 1");
  const std::size_t L = static_cast<std::size_t>(length);
  std::vector<data::TokenSequence> out;
  for (std::size_t at = 0; at + L <= stream.size() && static_cast<int>(out.size()) < max_sequences; at += L)
    out.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(at), stream.begin() + static_cast<std::ptrdiff_t>(at + L));
  if (out.empty()) out.emplace_back(stream.begin(), stream.end());
  return out;
}

double task_accuracy(const LongContextReport& r, RulerTask task, int length) {
  const auto [score, samples] = sum_cells(r, [&](const RulerCell& c) { return c.task == task && c.length == length; });
  return samples ? 100.0 * score / samples : 0.0;
}

double average_accuracy(const LongContextReport& r, int length) {
  double sum = 0;
  for (const RulerTask task : r.grid.tasks) sum += task_accuracy(r, task, length);
  return sum / static_cast<double>(r.grid.tasks.size());
}

double ChoiceSummary::accuracy() const {
  return choices ? 100.0 * recalled / choices : std::numeric_limits<double>::quiet_NaN();
}
double ChoiceSummary::answer_nll() const {
  return choices ? answer_nll_sum / choices : std::numeric_limits<double>::quiet_NaN();
}
double ChoiceSummary::margin() const {
  return choices ? margin_sum / choices : std::numeric_limits<double>::quiet_NaN();
}

ChoiceSummary task_choice(const LongContextReport& r, RulerTask task, int length) {
  ChoiceSummary s;
  for (const RulerCell& c : r.cells)
    if (c.task == task && c.length == length) {
      s.choices += c.choices;
      s.recalled += c.recalled;
      s.answer_nll_sum += c.answer_nll_sum;
      s.margin_sum += c.margin_sum;
    }
  return s;
}

double average_choice_accuracy(const LongContextReport& r, int length) {
  double sum = 0;
  int tasks = 0;
  for (const RulerTask task : r.grid.tasks)
    if (const ChoiceSummary s = task_choice(r, task, length); s.choices > 0) sum += s.accuracy(), ++tasks;
  return tasks ? sum / tasks : std::numeric_limits<double>::quiet_NaN();
}

nlohmann::json report_json(const LongContextReport& r) {
  nlohmann::json j = r.run;
  j["context"] = r.context;
  j["lengths"] = r.grid.lengths;
  j["depths"] = r.grid.depths;
  j["samples_per_cell"] = r.grid.samples;
  j["seed"] = r.grid.seed;
  j["answer_prefix"] = answer_prefix_name(r.grid.prefix);
  j["metric"] = "RULER string_match_all: the percentage of expected values contained in the greedy continuation "
                "(case-insensitive), averaged over samples";
  j["wall_seconds"] = r.wall_seconds;
  nlohmann::json tasks = nlohmann::json::object();
  for (const RulerTask task : r.grid.tasks) {
    nlohmann::json cells = nlohmann::json::array(), by_length = nlohmann::json::object();
    for (const RulerCell& c : r.cells)
      if (c.task == task)
        cells.push_back({{"length", c.length}, {"depth", c.depth}, {"samples", c.samples},
                         {"accuracy", c.accuracy()}, {"score_sum", c.score_sum}, {"all_found", c.all_found},
                         {"choices", c.choices}, {"recalled", c.recalled}, {"answer_nll_sum", c.answer_nll_sum},
                         {"margin_sum", c.margin_sum}});
    nlohmann::json choice = nlohmann::json::object(), nll = nlohmann::json::object(), margin = nlohmann::json::object();
    for (const int length : r.grid.lengths) {
      const std::string key = std::to_string(length);
      by_length[key] = task_accuracy(r, task, length);
      const ChoiceSummary s = task_choice(r, task, length);
      choice[key] = s.choices ? nlohmann::json(s.accuracy()) : nlohmann::json(nullptr);
      nll[key] = s.choices ? nlohmann::json(s.answer_nll()) : nlohmann::json(nullptr);
      margin[key] = s.choices ? nlohmann::json(s.margin()) : nlohmann::json(nullptr);
    }
    tasks[ruler_task_name(task)] = {{"cells", cells},
                                    {"accuracy_by_length", by_length},
                                    {"choice_accuracy_by_length", choice},
                                    {"answer_nll_by_length", nll},
                                    {"margin_by_length", margin}};
  }
  j["tasks"] = tasks;
  nlohmann::json average = nlohmann::json::object(), choice_average = nlohmann::json::object();
  for (const int length : r.grid.lengths) {
    average[std::to_string(length)] = average_accuracy(r, length);
    const double choice = average_choice_accuracy(r, length);
    choice_average[std::to_string(length)] = std::isnan(choice) ? nlohmann::json(nullptr) : nlohmann::json(choice);
  }
  j["average_by_length"] = average;
  j["choice_metric"] = "forced choice: the percentage of prompts whose needle value is more likely (teacher-forced, "
                       "after the needle's lead-in) than a foil of the same kind found in no needle; chance 50";
  j["choice_average_by_length"] = choice_average;
  j["perplexity"] = {{"sequences", r.perplexity_sequences}, {"tokens_scored", r.perplexity.tokens},
                     {"mean_nll", r.perplexity.mean_nll()}, {"perplexity", r.perplexity.perplexity()},
                     {"bucket_width", r.bucket_width}, {"by_position", by_position_json(r.perplexity, r.bucket_width)}};
  return j;
}

namespace {

// "| Length | task... | Avg |" and its separator row: the head of the tables with lengths as rows, tasks as columns.
void task_table_header(std::ostringstream& md, const LongContextReport& r) {
  md << "| Length |";
  for (const RulerTask task : r.grid.tasks) md << " " << ruler_task_name(task) << " |";
  md << " Avg |\n|---|";
  for (std::size_t i = 0; i <= r.grid.tasks.size(); ++i) md << "---|";
  md << "\n";
}

// The forced-choice table: accuracy % (and the mean margin) per task and length; "–" where a task has none.
void choice_markdown(std::ostringstream& md, const LongContextReport& r) {
  bool any = false;
  for (const RulerCell& c : r.cells) any = any || c.choices > 0;
  if (!any) return;
  md << "## Forced choice (accuracy %, chance 50; in brackets the mean log-likelihood margin of the value over the "
        "foil, nats)\n\n";
  task_table_header(md, r);
  for (const int length : r.grid.lengths) {
    md << "| " << length_label(r, length) << " |";
    for (const RulerTask task : r.grid.tasks) {
      const ChoiceSummary s = task_choice(r, task, length);
      md << " " << (s.choices ? fixed(s.accuracy(), 1) + " (" + fixed(s.margin(), 2) + ")" : "–") << " |";
    }
    const double average = average_choice_accuracy(r, length);
    md << " " << (std::isnan(average) ? std::string("–") : fixed(average, 2)) << " |\n";
  }
  md << "\nAfter the prompt (which ends with the queried needle's lead-in), the needle's value and a foil of the same "
        "kind are scored teacher-forced; the prompt counts when the value is the more likely. Tasks whose prompt "
        "does not end with a lead-in (variable tracking) have none.\n\n";
}

}  // namespace

std::string report_markdown(const LongContextReport& r) {
  std::ostringstream md;
  md << "# Long-context evaluation\n\n";
  if (r.run.contains("checkpoint")) md << "Checkpoint: `" << r.run["checkpoint"].get<std::string>() << "`  \n";
  if (r.run.contains("command")) md << "Command: `" << r.run["command"].get<std::string>() << "`  \n";
  std::string depths;
  for (const double d : r.grid.depths) depths += (depths.empty() ? "" : ", ") + depth_label(d);
  md << "Training context: " << r.context << " tokens; " << r.grid.samples << " samples per length x depth cell, depths "
     << depths << ", seed " << r.grid.seed << ", answer prefix `"
     << answer_prefix_name(r.grid.prefix) << "`; wall time " << fixed(r.wall_seconds, 1) << " s.\n\n";
  md << "## RULER-style tasks (accuracy %, over depths)\n\n";
  task_table_header(md, r);
  for (const int length : r.grid.lengths) {
    md << "| " << length_label(r, length) << " |";
    for (const RulerTask task : r.grid.tasks) md << " " << fixed(task_accuracy(r, task, length), 1) << " |";
    md << " " << fixed(average_accuracy(r, length), 2) << " |\n";
  }
  md << "\nScored by RULER's string_match_all: the share of expected values contained in the greedy continuation, "
        "ignoring case.\n\n";
  choice_markdown(md, r);
  md << "## Perplexity by position\n\n"
     << r.perplexity_sequences << " held-out sequences; overall mean NLL " << fixed(r.perplexity.mean_nll(), 4)
     << " nats, perplexity " << fixed(r.perplexity.perplexity(), 2) << ".\n\n| Positions | Tokens | Mean NLL | "
        "Perplexity |\n|---|---|---|---|\n";
  for (std::size_t b = 0; b < r.perplexity.bucket_tokens.size(); ++b) {
    if (r.perplexity.bucket_tokens[b] == 0) continue;
    const double nll = r.perplexity.bucket_mean_nll(b);
    md << "| " << b * r.bucket_width << "-" << (b + 1) * r.bucket_width - 1 << " | " << r.perplexity.bucket_tokens[b]
       << " | " << fixed(nll, 4) << " | " << fixed(std::exp(nll), 2) << " |\n";
  }
  return md.str();
}

io::Heatmap task_heatmap(const LongContextReport& r, RulerTask task) {
  io::Heatmap map;
  map.title = cat(ruler_task_name(task), ": accuracy % (", r.grid.samples, " samples a cell)");
  map.column_axis = "needle depth";
  map.row_axis = "context length (tokens)";
  for (const double d : r.grid.depths) map.columns.push_back(depth_label(d));
  for (const int length : r.grid.lengths) {
    map.rows.push_back(length_label(r, length));
    for (const double d : r.grid.depths) {
      const auto cell = std::find_if(r.cells.begin(), r.cells.end(), [&](const RulerCell& c) {
        return c.task == task && c.length == length && c.depth == d;
      });
      map.values.push_back(cell == r.cells.end() ? std::nullopt : std::optional<double>(cell->accuracy()));
    }
  }
  return map;
}

io::LineChart perplexity_chart(const LongContextReport& r) {
  io::LineChart chart;
  chart.title = "Held-out NLL by position";
  chart.x_axis = "position (tokens)";
  chart.y_axis = "mean NLL (nats)";
  chart.x_min = 0;
  io::LineSeries nll;
  nll.label = "mean NLL per " + std::to_string(r.bucket_width) + " positions";
  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (std::size_t b = 0; b < r.perplexity.bucket_tokens.size(); ++b) {
    if (r.perplexity.bucket_tokens[b] == 0) continue;
    const double y = r.perplexity.bucket_mean_nll(b);
    nll.points.emplace_back((static_cast<double>(b) + 0.5) * r.bucket_width, y);
    low = std::min(low, y);
    high = std::max(high, y);
  }
  chart.series.push_back(nll);
  if (!nll.points.empty()) {  // a dashed vertical line where the training context ends
    chart.series.push_back({"training context (" + std::to_string(r.context) + ")",
                            {{r.context, low}, {r.context, high}}, 1, true, 1.0});
  }
  return chart;
}

std::vector<fs::path> write_report(const fs::path& dir, const LongContextReport& r) {
  std::error_code error;
  fs::create_directories(dir, error);
  check(!error, "cannot create the output folder '", dir.string(), "': ", error.message());
  std::vector<fs::path> written{dir / "results.json", dir / "results.md"};
  // A continuation or a path that is not UTF-8 is written with U+FFFD, never a failed dump.
  io::write_file_atomically(written[0], report_json(r).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  io::write_file_atomically(written[1], report_markdown(r));
  for (const RulerTask task : r.grid.tasks) {
    written.push_back(dir / ("ruler_" + ruler_task_name(task) + ".svg"));
    io::write_file_atomically(written.back(), io::heatmap_svg(task_heatmap(r, task)));
  }
  written.push_back(dir / "perplexity_by_position.svg");
  io::write_file_atomically(written.back(), io::line_chart_svg(perplexity_chart(r)));
  return written;
}

}  // namespace hax::inference
