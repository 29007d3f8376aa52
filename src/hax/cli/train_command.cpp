// hax train: trains a model config on joint recall (generated on the fly or read from `hax gen` files) with the
// paper's hyperparameters as defaults. (hax eval lives in eval_command.cpp.)
#include <cstdio>
#include <iostream>
#include <memory>

#include "hax/cli/commands.h"
#include "hax/cli/model_options.h"
#include "hax/cli/progress.h"
#include "hax/cli/task_options.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/training/trainer.h"

namespace hax::cli {
namespace {

struct TrainCommand {
  std::string config_path = "configs/mamba.json";
  std::string train_data, valid_data;
  std::int64_t seed = -1;  // -1: the config's
  int threads = 0;
  bool resume = false;
  SparseOverrides sparse;
  data::JointRecallConfig task;
  training::TrainOptions options;
};

std::unique_ptr<training::SampleSource> source(const std::string& path, const data::JointRecallConfig& task,
                                               data::Split split) {
  return path.empty() ? training::joint_recall_source(task, split) : training::open_dataset(path);
}

void run_train(const TrainCommand& c) {
  set_num_threads(c.threads);
  models::ModelConfig config;
  if (!c.resume) {
    config = models::ModelConfig::load(c.config_path);
    if (c.seed >= 0) config.seed = static_cast<std::uint64_t>(c.seed);
    c.sparse.apply(config, c.config_path);
  } else {
    check(!c.sparse.any(), "--sparse-arch and the other model flags cannot change a run being resumed (--resume)");
  }
  training::TrainOptions options = c.options;
  options.padded_length = static_cast<int>(c.task.padded_sample_length() - 1);
  auto train_data = source(c.train_data, c.task, data::Split::train);
  auto valid_data = source(c.valid_data, c.task, data::Split::valid);
  std::cerr << "hax train: " << (c.resume ? "resuming " + c.options.out_dir : c.config_path) << "\n  train: "
            << train_data->describe() << "\n  valid: " << valid_data->describe() << "\n  threads: " << num_threads()
            << "\n";
  Progress bar("train", static_cast<std::uint64_t>(c.options.steps), "steps");
  training::train(config, options, *train_data, valid_data.get(), c.resume, [&](const training::TrainProgress& p) {
    char fields[160];
    std::snprintf(fields, sizeof fields, "loss %.4f acc %.3f lr %.2e %.0f tok/s", p.loss, p.accuracy, p.lr,
                  p.tokens_per_second);
    bar.update(static_cast<std::uint64_t>(p.step), fields);
  });
  bar.finish();
  std::cerr << "hax train: done; checkpoints in " << c.options.out_dir << "/best and /last, metrics in "
            << c.options.out_dir << "/metrics.jsonl\n";
}

void register_train(CLI::App& app) {
  auto* command = app.add_subcommand("train", "Train a model on joint recall (the paper's hyperparameters by "
                                              "default)");
  command->option_defaults()->always_capture_default();
  auto c = std::make_shared<TrainCommand>();
  training::TrainOptions& o = c->options;
  command->add_option("--config", c->config_path, "Hugging Face-style model config (config.json)");
  command->add_option("--out,-o", o.out_dir, "Run folder: metrics.jsonl, best/, last/")->required();
  command->add_flag("--resume", c->resume, "Continue the run in --out from its last/ checkpoint");
  command->add_option("--train-data", c->train_data, "Training set from `hax gen` (default: generate on the fly)");
  command->add_option("--valid-data", c->valid_data, "Validation set from `hax gen` (default: generate on the fly)");
  command->add_option("--steps", o.steps, "Optimizer updates in all")->check(CLI::NonNegativeNumber);
  command->add_option("--batch-size", o.batch_size, "Sequences per update")->check(CLI::PositiveNumber);
  command->add_option("--lr", o.lr, "Peak learning rate")->check(CLI::NonNegativeNumber);
  command->add_option("--warmup", o.warmup_steps, "Linear warm-up updates")->check(CLI::NonNegativeNumber);
  command->add_option("--weight-decay", o.adamw.weight_decay, "AdamW decoupled weight decay");
  command->add_option("--beta1", o.adamw.beta1, "AdamW beta1");
  command->add_option("--beta2", o.adamw.beta2, "AdamW beta2");
  command->add_option("--eps", o.adamw.eps, "AdamW epsilon");
  command->add_option("--eval-every", o.eval_every, "Validate and checkpoint every this many updates (0: at the "
                                                   "end only)")->check(CLI::NonNegativeNumber);
  command->add_option("--valid-samples", o.valid_samples, "Validation samples per evaluation (0: all)");
  command->add_flag("--skip-nonfinite", o.skip_nonfinite,
                    "Skip an update whose loss or gradient is NaN or infinite (logged) instead of stopping");
  command->add_option("--log-every", o.log_every, "Write a metrics line every this many updates")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--seed", c->seed, "Initialization seed (default: the config's hax_seed, else 1)");
  add_sparse_options(*command, c->sparse);
  command->add_option("--threads", c->threads, "Threads (0: all cores)")->check(CLI::NonNegativeNumber);
  add_joint_recall_options(*command, c->task);
  command->callback([c] { run_train(*c); });
}

}  // namespace

void register_train_commands(CLI::App& app) { register_train(app); }

}  // namespace hax::cli
