// hax lm train: a language model on a prepared corpus (`hax lm prepare`): fixed-length windows of the training
// split in a shuffled order, the paper's schedule (zero steps, linear warm-up, cosine to a minimum), held-out loss and
// perplexity on the first windows of the held-out split, and exact resume. --init-from starts from a trained
// checkpoint (continual pre-training), adding a sparse branch the paper's way (training/init_from.h).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "hax/cli/commands.h"
#include "hax/cli/model_options.h"
#include "hax/cli/progress.h"
#include "hax/data/lm_corpus.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/models/model_params.h"
#include "hax/training/checkpoint.h"
#include "hax/training/init_from.h"
#include "hax/training/lm_source.h"
#include "hax/training/trainer.h"

namespace hax::cli {
namespace {

namespace fs = std::filesystem;

struct LmTrainCommand {
  std::string corpus, config_path, init_from;
  bool vocab_from_corpus = false;
  int context = 512;
  std::int64_t seed = -1;  // -1: the config's (or the checkpoint's)
  std::uint64_t data_seed = 1;
  std::uint64_t eval_windows = 64;
  int threads = 0;
  bool resume = false;
  SparseOverrides sparse;
  training::TrainOptions options;
};

void check_vocab(const models::ModelConfig& config, const data::LmCorpus& corpus, const std::string& model) {
  check(config.vocab_size == corpus.vocab_size(), model, " has vocab_size ", config.vocab_size, " but the corpus '",
        corpus.dir().string(), "' has ", corpus.vocab_size(), " token ids",
        model.starts_with("config") ? " (--vocab-from-corpus takes the corpus's)" : "");
}

// The config of a fresh run (--config): the file's, with --seed, the sparse flags and, with --vocab-from-corpus, the
// corpus's vocabulary.
models::ModelConfig fresh_config(const LmTrainCommand& c, const data::LmCorpus& corpus) {
  models::ModelConfig config = models::ModelConfig::load(c.config_path);
  if (c.seed >= 0) config.seed = static_cast<std::uint64_t>(c.seed);
  if (c.vocab_from_corpus) config.vocab_size = corpus.vocab_size();
  c.sparse.apply(config, c.config_path);
  check_vocab(config, corpus, "config '" + c.config_path + "'");
  return config;
}

// The config --init-from continues into: the checkpoint's, with --seed and the sparse flags applied.
models::ModelConfig continued_config(const LmTrainCommand& c, models::ModelConfig loaded) {
  if (c.seed >= 0) loaded.seed = static_cast<std::uint64_t>(c.seed);
  c.sparse.apply(loaded, c.init_from + "/config.json");
  return loaded;
}

// --init-from: the checkpoint's model with the sparse flags (and --seed) applied, initialized from its weights.
std::unique_ptr<models::Model> continued_model(const LmTrainCommand& c, const data::LmCorpus& corpus) {
  const auto loaded = training::load_model(c.init_from);
  const models::ModelConfig target = continued_config(c, loaded->config());
  check_vocab(target, corpus, "checkpoint '" + c.init_from + "'");
  return training::init_from(*loaded, target, c.init_from);
}

void describe_model(const models::ModelConfig& config) {
  ParamStore layout;  // declared only, never allocated: the count costs nothing
  models::declare_parameters(layout, config);
  const std::size_t parameters = layout.num_parameters();
  std::cerr << "  model: " << config.model_type << " D " << config.hidden_size << " x " << config.num_hidden_layers
            << " layers, vocab " << config.vocab_size << ", "
            << (config.has_sparse() ? "sparse " + config.sparse_arch : std::string("no sparse branch")) << ", "
            << parameters << " parameters\n";
}

// --resume with the model flags of the run's first command (so that one command line starts and resumes a run): they
// must describe the model the run already has; any difference is refused, naming the first differing key.
void check_resumed_model(const LmTrainCommand& c, const data::LmCorpus& corpus, const fs::path& last_config) {
  if (c.config_path.empty() && c.init_from.empty()) {
    check(!c.sparse.any() && c.seed < 0, "--resume without --config or --init-from continues the run in --out with "
                                         "its own model: --seed and the sparse flags cannot change it");
    return;
  }
  if (!fs::exists(last_config)) return;  // the trainer says there is nothing to resume
  const models::ModelConfig intended =
      !c.config_path.empty() ? fresh_config(c, corpus)
                             : continued_config(c, models::ModelConfig::load(c.init_from + "/config.json"));
  const nlohmann::json want = intended.to_json();
  const nlohmann::json have = models::ModelConfig::load(last_config.string()).to_json();
  for (const auto& [key, value] : want.items())
    check(have.contains(key) && have[key] == value, "--resume: the model flags give ", key, " = ", value.dump(),
          " but the run in --out has ", have.contains(key) ? have[key].dump() : std::string("no ") + key, " ('",
          last_config.string(), "'); a resumed run keeps its model");
  for (const auto& [key, value] : have.items())
    check(want.contains(key), "--resume: the run in --out has ", key, " = ", value.dump(),
          " which the model flags do not give ('", last_config.string(), "'); a resumed run keeps its model");
}

void run_lm_train(const LmTrainCommand& c) {
  set_num_threads(c.threads);
  check(c.resume || !c.config_path.empty() || !c.init_from.empty(),
        "lm train needs --config FILE (a new model) or --init-from CHECKPOINT (continue a trained one)");
  const data::LmCorpus corpus = data::LmCorpus::open(c.corpus);
  training::TrainOptions options = c.options;
  options.decay_steps = options.steps;  // the cosine reaches --min-lr at the last update
  options.valid_samples = c.eval_windows;
  options.best_by = training::BestBy::loss;
  auto train_data = training::lm_window_source(
      corpus.tokens(data::Split::train), {c.context, true, c.data_seed, 0}, "training split of " + c.corpus);
  auto valid_data = training::lm_window_source(corpus.tokens(data::Split::valid), {c.context, false, 0, c.eval_windows},
                                               "held-out split of " + c.corpus);
  // The model (or its config) before anything is printed: a mismatch is then the command's only output line.
  std::unique_ptr<models::Model> continued;
  models::ModelConfig config;
  if (c.resume) {
    const fs::path last_config = fs::path(options.out_dir) / "last" / "config.json";
    if (fs::exists(last_config))
      check_vocab(models::ModelConfig::load(last_config.string()), corpus, "the run's model '" +
                  last_config.string() + "'");
    check_resumed_model(c, corpus, last_config);
  } else if (!c.init_from.empty()) {
    continued = continued_model(c, corpus);
    config = continued->config();
  } else {
    config = fresh_config(c, corpus);
  }
  std::cerr << "hax lm train: " << (c.resume ? "resuming " + options.out_dir
                                             : !c.init_from.empty() ? "from " + c.init_from : c.config_path)
            << "\n  train: " << train_data->describe() << "\n  valid: " << valid_data->describe()
            << "\n  threads: " << num_threads() << "\n";
  if (!c.resume) describe_model(config);

  Progress bar("lm train", static_cast<std::uint64_t>(options.steps), "steps");
  const auto on_step = [&](const training::TrainProgress& p) {
    char valid[48] = "", fields[200];
    if (!std::isnan(p.valid_loss)) std::snprintf(valid, sizeof valid, " held-out ppl %.1f", std::exp(p.valid_loss));
    std::snprintf(fields, sizeof fields, "loss %.4f ppl %.1f%s lr %.2e %.0f tok/s", p.loss, std::exp(p.loss), valid,
                  p.lr, p.tokens_per_second);
    bar.update(static_cast<std::uint64_t>(p.step), fields);
  };
  if (continued)
    training::train_from(std::move(continued), options, *train_data, valid_data.get(), on_step);
  else
    training::train(config, options, *train_data, valid_data.get(), c.resume, on_step);
  bar.finish();
  std::cerr << "hax lm train: done; checkpoints in " << options.out_dir << "/best (lowest held-out loss) and /last, "
            << "metrics in " << options.out_dir << "/metrics.jsonl\n";
}

}  // namespace

void register_lm_train(CLI::App& lm) {
  auto* command = lm.add_subcommand("train", "Train a language model on a prepared corpus (hax lm prepare), from "
                                             "scratch or from a checkpoint (continual pre-training)");
  command->option_defaults()->always_capture_default();
  auto c = std::make_shared<LmTrainCommand>();
  training::TrainOptions& o = c->options;
  o.batch_size = 8;
  o.steps = 2000;
  o.lr = 3e-4;
  o.min_lr = 1e-5;
  o.warmup_steps = 100;
  o.eval_every = 200;
  o.clip_grad = 1.0;
  command->add_option("--corpus", c->corpus, "Corpus folder from `hax lm prepare`")->required();
  command->add_option("--out,-o", o.out_dir, "Run folder: metrics.jsonl, best/, last/")->required();
  auto* config = command->add_option("--config", c->config_path, "Model config (config.json) of a new model");
  auto* init = command->add_option("--init-from", c->init_from,
                                   "Checkpoint folder to continue from (fresh optimizer, step 0); with --sparse-arch "
                                   "on a plain Mamba, K and Q start from x_proj's B and C rows and E = 1");
  config->excludes(init);
  command->add_flag("--vocab-from-corpus", c->vocab_from_corpus,
                    "Take --config's vocab_size from the corpus (otherwise the two must agree)");
  command->add_flag("--resume", c->resume, "Continue the run in --out from its last/ checkpoint (pass the same "
                                           "training flags; model flags, if given, must match the run's model)");
  command->add_option("--context", c->context, "Tokens per training window (each scores its next tokens)")
      ->check(CLI::PositiveNumber);
  command->add_option("--batch-size", o.batch_size, "Windows per update")->check(CLI::PositiveNumber);
  command->add_option("--steps", o.steps, "Optimizer updates in all; the cosine ends at the last")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--lr", o.lr, "Peak learning rate")->check(CLI::NonNegativeNumber);
  command->add_option("--min-lr", o.min_lr, "Learning rate at the last update (cosine decay)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--zero-steps", o.zero_steps, "Updates at lr 0 before the warm-up (the paper: 200)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--warmup", o.warmup_steps, "Linear warm-up updates (the paper: 800)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--clip-grad", o.clip_grad, "Clip the gradients' global L2 norm to this (0: off)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--weight-decay", o.adamw.weight_decay, "AdamW decoupled weight decay");
  command->add_option("--eval-every", o.eval_every, "Held-out loss and a checkpoint every this many updates and at "
                                                   "the end (0: no held-out loss; a checkpoint at the end)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--eval-windows", c->eval_windows, "Held-out windows per evaluation: the first this many of "
                                                        "the held-out split (0: all)");
  command->add_option("--log-every", o.log_every, "Write a metrics line every this many updates")
      ->check(CLI::NonNegativeNumber);
  command->add_flag("--skip-nonfinite", o.skip_nonfinite,
                    "Skip an update whose loss or gradient is NaN or infinite (logged) instead of stopping");
  command->add_option("--seed", c->seed, "Initialization seed (default: the config's hax_seed, else 1)");
  command->add_option("--data-seed", c->data_seed, "Seed of the training windows' order (one shuffle per epoch)");
  add_sparse_options(*command, c->sparse);
  command->add_option("--threads", c->threads, "Threads (0: all cores)")->check(CLI::NonNegativeNumber);
  command->callback([c] { run_lm_train(*c); });
}

}  // namespace hax::cli
