// hax gen joint-recall | mqar: writes a split (or a slice of one) of a synthetic task to a text or binary file,
// or as text to stdout. Output files appear only when complete (io::AtomicFile).
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

#include "hax/cli/commands.h"
#include "hax/cli/progress.h"
#include "hax/cli/task_options.h"
#include "hax/data/joint_recall.h"
#include "hax/data/mqar.h"
#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"
#include "hax/data/dataset_binary.h"
#include "hax/data/dataset_text.h"

namespace hax::cli {
namespace {

// The flags every generator shares: which samples, and where they go.
struct OutputOptions {
  std::string path;
  std::string format;  // "text", "bin", or empty: text for a .txt path or stdout, binary otherwise
  std::string split = "train";
  std::int64_t offset = 0;
  std::int64_t count = -1;  // -1: the rest of the split
};

struct SampleRange {
  data::Split split;
  std::uint64_t offset;
  std::uint64_t count;
};

void add_output_options(CLI::App& command, OutputOptions& options) {
  command.add_option("--out,-o", options.path, "Output path: .txt for text, other names binary, - text on stdout")
      ->required();
  command.add_option("--format", options.format, "Output format (default: from the --out extension)")
      ->check(CLI::IsMember({"text", "bin"}));
  command.add_option("--split", options.split, "Which split")
      ->check(CLI::IsMember({"train", "valid", "validation", "test"}));
  command.add_option("--offset", options.offset, "First sample of the split to write");
  command.add_option("--count", options.count, "Number of samples (default: the rest of the split)");
}

SampleRange resolve_range(const OutputOptions& options, const std::function<std::uint64_t(data::Split)>& split_size) {
  const data::Split split = data::parse_split(options.split);
  const std::uint64_t size = split_size(split);
  check(options.offset >= 0, "--offset ", options.offset, " must not be negative");
  check(options.count >= -1, "--count ", options.count, " must not be negative");
  const auto offset = static_cast<std::uint64_t>(options.offset);
  check(offset <= size, "--offset ", offset, " is past the end of the ", options.split, " split (", size, " samples)");
  const std::uint64_t count = options.count < 0 ? size - offset : static_cast<std::uint64_t>(options.count);
  check(count <= size - offset, "--offset ", offset, " + --count ", count, " runs past the end of the ", options.split,
        " split (", size, " samples)");
  return {split, offset, count};
}

nlohmann::json range_json(const SampleRange& range) {
  return {{"split", data::split_name(range.split)}, {"offset", range.offset}, {"count", range.count}};
}

class SampleOutput {
 public:
  virtual ~SampleOutput() = default;
  virtual void add(const data::Sample& sample) = 0;
  virtual void finish() = 0;
};

class TextOutput final : public SampleOutput {
 public:
  // `path` "-" is stdout; anything else an atomic file.
  TextOutput(const std::string& path, const data::DatasetInfo& info)
      : file_(path == "-" ? nullptr : std::make_unique<io::AtomicFile>(path)),
        stream_(file_ ? file_->stream() : std::cout),
        writer_(stream_, info.pad_len, info.pad_id) {}

  void add(const data::Sample& sample) override { writer_.add(sample); }
  void finish() override {
    if (file_) {
      file_->commit();
    } else {
      stream_.flush();
      check(stream_.good(), "cannot write to stdout");
    }
  }

 private:
  std::unique_ptr<io::AtomicFile> file_;
  std::ostream& stream_;
  data::TextDatasetWriter writer_;
};

class BinaryOutput final : public SampleOutput {
 public:
  BinaryOutput(const std::string& path, const data::DatasetInfo& info) : writer_(path, info) {}
  void add(const data::Sample& sample) override { writer_.add(sample); }
  void finish() override { writer_.finish(); }

 private:
  data::BinaryDatasetWriter writer_;
};

std::unique_ptr<SampleOutput> open_output(const OutputOptions& options, const data::DatasetInfo& info) {
  const bool to_stdout = options.path == "-";
  const bool text_name = to_stdout || options.path.ends_with(".txt");
  const std::string format = options.format.empty() ? (text_name ? "text" : "bin") : options.format;
  check(!(to_stdout && format == "bin"), "--format bin needs a file for --out: stdout gets text only");
  if (format == "text") return std::make_unique<TextOutput>(options.path, info);
  return std::make_unique<BinaryOutput>(options.path, info);
}

void write_samples(const std::string& label, std::uint64_t count, SampleOutput& output,
                   const std::function<void(std::uint64_t, data::Sample&)>& generate) {
  Progress progress(label, count, "samples");
  data::Sample sample;
  for (std::uint64_t i = 0; i < count; ++i) {
    generate(i, sample);
    output.add(sample);
    progress.update(i + 1);
  }
  output.finish();
  progress.finish();
}

// ---- joint recall -------------------------------------------------------------------------------------------

nlohmann::json params_json(const data::JointRecallConfig& c, const SampleRange& range) {
  nlohmann::json params = range_json(range);
  params.update({{"seed", c.seed},
                 {"min_contexts", c.min_contexts},
                 {"max_contexts", c.max_contexts},
                 {"min_keys", c.min_keys},
                 {"max_keys", c.max_keys},
                 {"values", c.values},
                 {"vocab", c.vocab},
                 {"train_per_cell", c.train_per_cell},
                 {"eval_per_cell", c.eval_per_cell}});
  return params;
}

void run_joint_recall(const data::JointRecallConfig& config, const OutputOptions& options) {
  config.validate();
  const SampleRange range = resolve_range(options, [&](data::Split s) { return config.split_size(s); });
  const data::DatasetInfo info{"joint-recall", params_json(config, range), config.pad_len(), data::kJointRecallPad,
                             static_cast<std::uint32_t>(config.vocab)};
  const auto output = open_output(options, info);  // before the skip, so a bad path fails at once
  data::JointRecallGenerator generator(config, range.split, range.offset);
  write_samples("joint-recall", range.count, *output, [&](std::uint64_t, data::Sample& s) { generator.next(s); });
}

void register_joint_recall(CLI::App& gen) {
  auto* command =
      gen.add_subcommand("joint-recall", "The paper's multi-query joint-recall data (seed 1: its dataset, exactly)");
  command->option_defaults()->always_capture_default();
  auto config = std::make_shared<data::JointRecallConfig>();
  auto options = std::make_shared<OutputOptions>();
  add_joint_recall_options(*command, *config, /*data_prefix=*/false);
  add_output_options(*command, *options);
  command->callback([config, options] { run_joint_recall(*config, *options); });
}

// ---- MQAR ---------------------------------------------------------------------------------------------------

nlohmann::json params_json(const data::MqarConfig& c, const SampleRange& range) {
  nlohmann::json params = range_json(range);
  params.update({{"seed", c.seed},
                 {"seq_len", c.seq_len},
                 {"kv_pairs", c.kv_pairs},
                 {"vocab", c.vocab},
                 {"power_a", c.power_a},
                 {"train_size", c.train_size},
                 {"eval_size", c.eval_size}});
  return params;
}

void run_mqar(const data::MqarConfig& config, const OutputOptions& options) {
  const data::MqarGenerator generator(config);
  const SampleRange range = resolve_range(options, [&](data::Split s) { return config.split_size(s); });
  const data::DatasetInfo info{"mqar", params_json(config, range), config.pad_len(), data::kMqarPad,
                             static_cast<std::uint32_t>(config.vocab)};
  const auto output = open_output(options, info);
  write_samples("mqar", range.count, *output,
                [&](std::uint64_t i, data::Sample& s) { generator.generate(range.split, range.offset + i, s); });
}

void register_mqar(CLI::App& gen) {
  auto* command = gen.add_subcommand("mqar", "Multi-query associative recall (Zoology-style)");
  command->option_defaults()->always_capture_default();
  auto config = std::make_shared<data::MqarConfig>();
  auto options = std::make_shared<OutputOptions>();
  command->add_option("--seed", config->seed, "Seed (each split and sample gets its own stream from it)");
  command->add_option("--seq-len", config->seq_len, "Sequence length (at least 4 * --kv-pairs)");
  command->add_option("--kv-pairs", config->kv_pairs, "Key-value pairs per sample, each queried once");
  command->add_option("--vocab", config->vocab, "Vocabulary size: keys from the lower half, values the upper");
  command->add_option("--power-a", config->power_a, "Power-law exponent of the query positions (small = early)");
  command->add_option("--train-size", config->train_size, "Samples in the train split");
  command->add_option("--eval-size", config->eval_size, "Samples in the valid and test splits, each");
  add_output_options(*command, *options);
  command->callback([config, options] { run_mqar(*config, *options); });
}

}  // namespace

void register_gen_commands(CLI::App& app) {
  auto* gen = app.add_subcommand("gen", "Generate synthetic task datasets");
  gen->require_subcommand(1);
  register_joint_recall(*gen);
  register_mqar(*gen);
}

}  // namespace hax::cli
