#include "hax/training/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/engine/aligned_buffer.h"
#include "hax/engine/rng.h"
#include "hax/training/batch.h"
#include "hax/training/checkpoint.h"
#include "hax/training/evaluate.h"
#include "hax/training/schedule.h"

namespace hax::training {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kTrainingNoise = 0x747261696e;  // "train": the stream of the training steps' draws

double mean_accuracy(const std::vector<double>& per_sequence) {
  double sum = 0;
  int n = 0;
  for (double a : per_sequence)
    if (!std::isnan(a)) sum += a, ++n;
  return n ? sum / n : 0.0;
}

// Keeps the metrics lines up to `step`: a resumed run rewrites what came after its checkpoint, so the log reads as
// if the run had never stopped.
void truncate_metrics(const fs::path& path, std::int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::vector<std::string> kept;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", std::int64_t{0}) <= step) kept.push_back(line);
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  for (const auto& line : kept) out << line << '\n';
}

class MetricsLog {
 public:
  explicit MetricsLog(const fs::path& path) : out_(path, std::ios::app) {
    check(out_.good(), "cannot open metrics log '", path.string(), "' for writing");
  }
  void write(const nlohmann::json& record) {
    out_ << record.dump() << '\n';
    out_.flush();
  }

 private:
  std::ofstream out_;
};

std::vector<data::Sample> next_batch(SampleSource& source, std::uint64_t position, int batch_size) {
  std::vector<data::Sample> samples(batch_size);
  for (int i = 0; i < batch_size; ++i) source.read_stream(position + i, samples[i]);
  return samples;
}

// The activations of the largest update there can be (every sample at the longest length), checked against the
// memory available before the first update: a config too large for the machine stops here, with one line that adds
// up what it needs, rather than in the OOM killer mid-run. Parameters, gradients and moments are already allocated
// (each checked on its own), so only the activations must still fit.
void check_training_memory(const models::Model& model, int batch_size, std::uint32_t longest, int padded_length) {
  // Rows are int in a batch (as in PyTorch's varlen kernels).
  check(std::uint64_t(batch_size) * std::max<std::uint64_t>(longest, padded_length) <=
            std::uint64_t(std::numeric_limits<int>::max()),
        "a batch of ", batch_size, " x ", std::max<std::uint64_t>(longest, padded_length),
        " tokens is more than 2^31 - 1 rows: lower --batch-size");
  layers::PackedBatch worst;
  for (int i = 0; i < batch_size; ++i) worst.add_sequence(static_cast<int>(longest));
  const std::size_t floats = model.arena_floats(worst, worst.rows(), padded_length);
  const std::size_t activations = (floats + floats / 8) * sizeof(float);  // reserve_arena's headroom included
  const std::size_t parameters = model.params().params().size() * sizeof(float);
  const std::size_t available = available_memory_bytes();
  check(available == 0 || activations <= available, "training this model at batch ", batch_size, " x ", longest,
        " tokens needs ", format_bytes(4 * parameters + activations), ": parameters, gradients and AdamW moments ",
        format_bytes(4 * parameters), " (allocated) and activations up to ", format_bytes(activations),
        ", but this machine has ", format_bytes(available), " more available (memory + swap): lower --batch-size or "
        "the task's lengths, or use a smaller config");
}

void check_options(const TrainOptions& o) {
  check(o.batch_size > 0, "--batch-size must be > 0, got ", o.batch_size);
  check(o.steps >= 0, "--steps must be >= 0, got ", o.steps);
  check(o.lr >= 0 && std::isfinite(o.lr), "--lr must be a finite number >= 0, got ", o.lr);
  check(o.min_lr >= 0 && o.min_lr <= o.lr, "--min-lr must be in [0, --lr = ", o.lr, "], got ", o.min_lr);
  check(o.warmup_steps >= 0, "--warmup must be >= 0, got ", o.warmup_steps);
  check(o.zero_steps >= 0, "--zero-steps must be >= 0, got ", o.zero_steps);
  check(o.decay_steps >= 0, "the decay's length must be >= 0, got ", o.decay_steps);
  check(o.clip_grad >= 0 && std::isfinite(o.clip_grad), "--clip-grad must be a finite number >= 0 (0: off), got ",
        o.clip_grad);
  check(!o.out_dir.empty(), "an output folder is required");
}

fs::path make_out_dir(const TrainOptions& o) {
  const fs::path out(o.out_dir);
  std::error_code ec;
  fs::create_directories(out, ec);
  check(!ec, "cannot create output folder '", out.string(), "': ", ec.message());
  return out;
}

void check_fresh_out_dir(const fs::path& out) {
  check(!fs::exists(out / "last"), "'", out.string(), "' already holds a run (last/): pass --resume to continue it",
        " or choose another --out");
}

// Whether validation `v` beats the best so far (strictly, as the reference), by the options' measure.
bool improves(const EvalResult& v, const TrainerState& state, BestBy by) {
  if (by == BestBy::loss) return state.best_valid_loss < 0 || v.loss < state.best_valid_loss;
  return v.accuracy > state.best_valid_accuracy;
}

// The loop shared by a fresh run, a resumed one and one started from given weights.
void run(std::unique_ptr<models::Model> model, std::unique_ptr<AdamW> optimizer, TrainerState state,
         const fs::path& out, const TrainOptions& o, SampleSource& train_data, SampleSource* valid_data,
         const std::function<void(const TrainProgress&)>& on_step) {
  check_training_memory(*model, o.batch_size, train_data.longest(), o.padded_length);
  MetricsLog log(out / "metrics.jsonl");
  const LrSchedule schedule = o.schedule();
  if (state.schedule && *state.schedule != schedule)
    log.write({{"event", "schedule_changed"}, {"step", state.step}, {"from", schedule_json(*state.schedule)},
               {"to", schedule_json(schedule)}});
  state.schedule = schedule;
  const bool has_gate_loss = model->config().has_key_selection();
  Arena arena;
  auto window_start = std::chrono::steady_clock::now();
  std::uint64_t window_tokens = 0;
  double valid_loss = std::numeric_limits<double>::quiet_NaN();

  while (state.step < o.steps) {
    const std::vector<data::Sample> samples = next_batch(train_data, state.data_position, o.batch_size);
    models::TokenBatch tb = pack_samples(samples);
    tb.padded_length = o.padded_length;
    const int scored = static_cast<int>(std::count(tb.scored.begin(), tb.scored.end(), 1));
    reserve_arena(arena, model->arena_floats(tb.batch, scored, tb.padded_length));
    model->params().zero_grad();
    // The step's draws (gate-loss candidates, resampled LSH projections) come from the step number, so a resumed
    // run draws exactly what the uninterrupted one would have.
    const models::ForwardOptions options{
        true, Rng(model->config().seed).fork(kTrainingNoise).fork(state.step).next_u64()};
    const models::BatchResult r = model->forward(tb, arena, options);
    std::string nonfinite;
    if (!std::isfinite(r.loss) || !std::isfinite(r.gate_loss)) {
      nonfinite = cat("non-finite training loss (", r.loss, ", gate loss ", r.gate_loss, ")");
    } else {
      model->backward(tb, arena);
      if (const auto bad = first_nonfinite(model->params(), model->params().grads()))
        nonfinite = cat("non-finite gradient (", bad->value, " in '", bad->tensor, "' at flat index ", bad->index, ")");
    }
    const std::string where = cat(" at update ", state.step + 1, ", training samples ", state.data_position, "..",
                                  state.data_position + o.batch_size - 1);
    check(nonfinite.empty() || o.skip_nonfinite, nonfinite, where, ": stopping; the checkpoints in '", out.string(),
          "' are from before this update (--skip-nonfinite skips such updates instead)");
    const double lr = schedule.lr(state.step + 1);
    double grad_norm = 0;
    if (nonfinite.empty()) {
      if (o.clip_grad > 0) grad_norm = clip_grad_norm(model->params().grads(), o.clip_grad);
      optimizer->step(model->params().params(), model->params().grads(), lr);
    } else {
      log.write({{"event", "skipped"}, {"step", state.step + 1}, {"reason", nonfinite + where}});
    }
    ++state.step;
    state.data_position += o.batch_size;
    window_tokens += tb.batch.rows();

    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
    TrainProgress progress{state.step, o.steps, r.loss, mean_accuracy(r.sequence_accuracy),
                           seconds > 0 ? window_tokens / seconds : 0.0, lr, valid_loss};
    if (o.log_every > 0 && state.step % o.log_every == 0) {
      nlohmann::json entry{{"event", "train"}, {"step", state.step}, {"loss", r.loss}, {"accuracy", progress.accuracy},
                           {"lr", lr}, {"tokens_per_second", progress.tokens_per_second}};
      if (has_gate_loss) entry["gate_loss"] = r.gate_loss;
      if (o.clip_grad > 0) entry["grad_norm"] = grad_norm;
      log.write(entry);
      window_start = std::chrono::steady_clock::now();
      window_tokens = 0;
    }
    if (on_step) on_step(progress);

    const bool checkpoint_now = state.step == o.steps || (o.eval_every > 0 && state.step % o.eval_every == 0);
    if (!checkpoint_now) continue;
    if (valid_data && o.eval_every > 0) {
      const EvalResult v = evaluate(*model, *valid_data, o.valid_samples, o.batch_size, {}, o.padded_length);
      valid_loss = v.loss;
      log.write({{"event", "valid"}, {"step", state.step}, {"loss", v.loss}, {"perplexity", std::exp(v.loss)},
                 {"accuracy", v.accuracy}, {"sequences", v.sequences}, {"tokens", v.tokens}});
      if (improves(v, state, o.best_by)) {
        state.best_valid_accuracy = v.accuracy;
        state.best_valid_loss = v.loss;
        state.best_step = state.step;
        save_model(out / "best", *model);
      }
    }
    save_training_checkpoint(out / "last", *model, *optimizer, state);
  }
}

}  // namespace

void train(const models::ModelConfig& config, const TrainOptions& o, SampleSource& train_data,
           SampleSource* valid_data, bool resume, const std::function<void(const TrainProgress&)>& on_step) {
  check_options(o);
  const fs::path out = make_out_dir(o);
  TrainerState state;
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<models::Model> model;
  if (resume) {
    model = load_training_checkpoint(out / "last", optimizer, o.adamw, state);
    truncate_metrics(out / "metrics.jsonl", state.step);
  } else {
    check_fresh_out_dir(out);
    model = std::make_unique<models::Model>(config);
    optimizer = std::make_unique<AdamW>(model->params().params().size(), o.adamw);
  }
  run(std::move(model), std::move(optimizer), state, out, o, train_data, valid_data, on_step);
}

void train_from(std::unique_ptr<models::Model> initial, const TrainOptions& o, SampleSource& train_data,
                SampleSource* valid_data, const std::function<void(const TrainProgress&)>& on_step) {
  check(initial != nullptr, "train_from: no initial model");
  check_options(o);
  const fs::path out = make_out_dir(o);
  check_fresh_out_dir(out);
  auto optimizer = std::make_unique<AdamW>(initial->params().params().size(), o.adamw);
  run(std::move(initial), std::move(optimizer), TrainerState{}, out, o, train_data, valid_data, on_step);
}

}  // namespace hax::training
