// hax eval: the accuracy of a checkpoint on a joint-recall split (generated from the flags, or read from a `hax gen`
// file), overall and per (n_context, n_key) cell: a table on stdout, and on request JSON and an SVG heatmap.
// Accuracy is the paper's: per sequence, the fraction of its scored positions predicted right; then the mean over
// sequences (training::evaluate).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/cli/commands.h"
#include "hax/cli/progress.h"
#include "hax/cli/task_options.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"
#include "hax/io/svg_heatmap.h"
#include "hax/training/checkpoint.h"
#include "hax/training/evaluate.h"

namespace hax::cli {
namespace {

namespace fs = std::filesystem;

struct EvalCommand {
  std::string checkpoint;
  std::string data_path;  // empty: generate the split from the joint-recall flags
  std::string split = "test";
  std::uint64_t count = 0;  // 0: the whole split
  int batch_size = 64;
  int threads = 0;
  std::string json_path, heatmap_path;
  data::JointRecallConfig task;
};

std::string fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// The distinct n_context (rows) and n_key (columns) values of the evaluated cells, ascending. Taken from the
// results rather than the flags, so a `hax gen` file or a partial --count gets exactly the cells it holds.
struct CellAxes {
  std::vector<std::uint32_t> contexts, keys;
};

CellAxes axes_of(const training::EvalResult& result) {
  std::set<std::uint32_t> contexts, keys;
  for (const auto& entry : result.cells) {
    contexts.insert(entry.first.n_context);
    keys.insert(entry.first.n_key);
  }
  return {{contexts.begin(), contexts.end()}, {keys.begin(), keys.end()}};
}

// A cell's accuracy in percent; nullopt where no sequence of the evaluated range fell into it.
std::optional<double> cell_percent(const training::EvalResult& result, data::Cell cell) {
  const auto it = result.cells.find(cell);
  if (it == result.cells.end()) return std::nullopt;
  return 100.0 * it->second.accuracy();
}

std::string right_aligned(const std::string& text, std::size_t width) {
  return std::string(width > text.size() ? width - text.size() : 0, ' ') + text;
}

void print_table(std::ostream& out, const training::EvalResult& result, const std::string& data_label) {
  out << data_label << ": accuracy " << fixed(100.0 * result.accuracy, 2) << "% over " << result.sequences
      << " sequences (loss " << fixed(result.loss, 4) << ", " << result.tokens << " scored tokens)\n\n";
  const std::string corner = "n_context \\ n_key";
  constexpr std::size_t kColumn = 7;
  const CellAxes axes = axes_of(result);
  out << corner;
  for (std::uint32_t key : axes.keys) out << right_aligned(std::to_string(key), kColumn);
  out << "\n";
  for (std::uint32_t context : axes.contexts) {
    out << right_aligned(std::to_string(context), corner.size());
    for (std::uint32_t key : axes.keys) {
      const std::optional<double> percent = cell_percent(result, {context, key});
      out << right_aligned(percent ? fixed(*percent, 1) : "-", kColumn);
    }
    out << "\n";
  }
  out << "(accuracy in %: rows n_context, columns n_key)\n";
}

nlohmann::json result_json(const EvalCommand& c, const std::string& data, const training::EvalResult& result) {
  nlohmann::json cells = nlohmann::json::array();
  for (const auto& [cell, score] : result.cells)
    cells.push_back({{"n_context", cell.n_context},
                     {"n_key", cell.n_key},
                     {"accuracy", score.accuracy()},
                     {"sequences", score.sequences}});
  return {{"checkpoint", c.checkpoint},
          {"data", data},
          {"accuracy", result.accuracy},
          {"loss", result.loss},
          {"sequences", result.sequences},
          {"tokens", result.tokens},
          {"cells", cells}};
}

io::Heatmap heatmap_of(const training::EvalResult& result, const std::string& data_label) {
  io::Heatmap map;
  map.title = cat("Accuracy (%), ", data_label, ": ", fixed(100.0 * result.accuracy, 1), "% overall");
  map.column_axis = "n_key";
  map.row_axis = "n_context";
  const CellAxes axes = axes_of(result);
  for (std::uint32_t key : axes.keys) map.columns.push_back(std::to_string(key));
  for (std::uint32_t context : axes.contexts) {
    map.rows.push_back(std::to_string(context));
    for (std::uint32_t key : axes.keys) map.values.push_back(cell_percent(result, {context, key}));
  }
  return map;
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return text;
}

// The output files, created before the evaluation so that an unwritable path fails at once, not after it.
struct EvalOutputs {
  std::unique_ptr<io::AtomicFile> json, heatmap;
};

EvalOutputs open_outputs(const EvalCommand& c) {
  EvalOutputs outputs;
  if (!c.json_path.empty()) outputs.json = std::make_unique<io::AtomicFile>(c.json_path);
  if (!c.heatmap_path.empty()) outputs.heatmap = std::make_unique<io::AtomicFile>(c.heatmap_path);
  return outputs;
}

void check_heatmap_format(const std::string& path) {
  if (path.empty()) return;
  const std::string extension = lowercase(fs::path(path).extension().string());
  check(extension == ".svg", "--heatmap '", path,
        "': only SVG heatmaps are supported; give a file name ending in .svg");
}

std::unique_ptr<training::SampleSource> eval_source(const EvalCommand& c, const models::ModelConfig& model) {
  if (!c.data_path.empty()) return training::open_dataset(c.data_path);
  c.task.validate();
  // Caught here, the mismatch is one line naming both numbers instead of an embedding error mid-evaluation.
  check(c.task.highest_token() < model.vocab_size, "the joint-recall flags give token ids up to ",
        c.task.highest_token(), ", outside the checkpoint's vocab_size ", model.vocab_size, " ('", c.checkpoint,
        "/config.json')");
  return training::joint_recall_source(c.task, data::parse_split(c.split));
}

std::string data_label(const EvalCommand& c) {
  if (!c.data_path.empty()) return fs::path(c.data_path).filename().string();
  return cat(data::split_name(data::parse_split(c.split)), " split");
}

void write_and_commit(io::AtomicFile& file, const std::string& text) {
  file.stream() << text;
  file.commit();
}

void run_eval(const EvalCommand& c) {
  check_heatmap_format(c.heatmap_path);
  set_num_threads(c.threads);
  auto model = training::load_model(c.checkpoint);
  auto source = eval_source(c, model->config());
  check(c.count <= source->size(), "--count ", c.count, " is more than the ", source->size(), " samples of ",
        source->describe());
  const std::uint64_t count = c.count == 0 ? source->size() : c.count;
  EvalOutputs outputs = open_outputs(c);
  std::cerr << "hax eval: " << c.checkpoint << "\n  data: " << source->describe() << "\n  samples: " << count
            << "\n  threads: " << num_threads() << "\n";

  Progress bar("eval", count, "samples");
  const training::EvalResult result =
      training::evaluate(*model, *source, count, c.batch_size, [&](std::uint64_t done) { bar.update(done); },
                         static_cast<int>(c.task.padded_sample_length() - 1));
  bar.finish();

  const std::string label = data_label(c);
  print_table(std::cout, result, label);
  if (outputs.json) write_and_commit(*outputs.json, result_json(c, source->describe(), result).dump(2) + "\n");
  if (outputs.heatmap) write_and_commit(*outputs.heatmap, io::heatmap_svg(heatmap_of(result, label)));
}

void register_eval(CLI::App& app) {
  auto* command = app.add_subcommand("eval", "Accuracy of a checkpoint on joint recall, overall and per (n_context, "
                                             "n_key) cell");
  command->option_defaults()->always_capture_default();
  // CLI11 prints a footer as it is: the line breaks are ours.
  command->footer(
      "Prints the accuracy (per sequence, the fraction of its queries answered right; then the mean over\n"
      "sequences) and a table of it per cell: rows n_context, columns n_key. Without --data the split is\n"
      "generated from the joint-recall flags, which must be those the model was trained with (the paper's\n"
      "by default).");
  auto c = std::make_shared<EvalCommand>();
  command->add_option("--checkpoint", c->checkpoint, "Checkpoint folder (config.json + model.safetensors), e.g. "
                                                     "RUN/best")->required();
  auto* data_option = command->add_option(
      "--data", c->data_path, "Evaluate a `hax gen` binary file instead of generating a split from the joint-recall "
                              "flags");
  command->add_option("--split", c->split, "Which generated split (not with --data)")
      ->check(CLI::IsMember({"test", "valid", "validation"}))
      ->excludes(data_option);
  command->add_option("--count", c->count, "Evaluate the first this many samples (0: all)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--batch-size", c->batch_size, "Sequences per forward pass")->check(CLI::PositiveNumber);
  command->add_option("--threads", c->threads, "Threads (0: all cores)")->check(CLI::NonNegativeNumber);
  command->add_option("--json", c->json_path, "Also write the results as JSON (accuracies as fractions, and per cell)");
  command->add_option("--heatmap", c->heatmap_path, "Also draw the per-cell accuracy as an SVG heatmap (.svg)");
  add_joint_recall_options(*command, c->task);
  command->callback([c] { run_eval(*c); });
}

}  // namespace

void register_eval_commands(CLI::App& app) { register_eval(app); }

}  // namespace hax::cli
