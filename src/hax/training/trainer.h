// The training loop of the reference (reference §2.2-2.4) on CPU: batches in the source's stream order, AdamW with
// a learning-rate schedule (training/schedule.h), optional gradient clipping, validation every `eval_every` updates,
// the best checkpoint kept by validation accuracy (joint recall) or loss (language models), and a resumable "last"
// checkpoint holding the optimizer state, the schedule and the data position.
//
// Output folder layout:
//   OUT/metrics.jsonl      one JSON object a line: {"event":"train",...} and {"event":"valid",...} (loss,
//                          perplexity = exp(mean token NLL), accuracy)
//   OUT/best/              config.json + model.safetensors of the best validation score so far
//   OUT/last/              the same, plus optimizer.safetensors and trainer_state.json (resume from here)
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "hax/models/config.h"
#include "hax/models/model.h"
#include "hax/training/adamw.h"
#include "hax/training/sample_source.h"
#include "hax/training/schedule.h"

namespace hax::training {

// What picks the best/ checkpoint: the highest validation accuracy (joint recall, as the reference) or the lowest
// validation loss (language models: the loss is the perplexity's logarithm).
enum class BestBy { accuracy, loss };

struct TrainOptions {
  std::string out_dir;
  int batch_size = 64;
  std::int64_t steps = 400000;  // optimizer updates in all (the paper's)
  double lr = 2e-3;             // the schedule's peak (LrSchedule::base_lr)
  std::int64_t warmup_steps = 5000;
  std::int64_t zero_steps = 0;   // updates at lr 0 before the warm-up
  std::int64_t decay_steps = 0;  // cosine decay to min_lr at this update (0: constant after the warm-up)
  double min_lr = 0;
  double clip_grad = 0;          // clip the gradients' global L2 norm to this (0: no clipping)
  BestBy best_by = BestBy::accuracy;
  AdamWConfig adamw;
  std::int64_t eval_every = 500;     // validate (and save last/) every this many updates; 0: never
  std::uint64_t valid_samples = 0;   // 0: the whole validation source
  std::int64_t log_every = 10;       // metrics.jsonl line every this many updates
  int padded_length = 0;             // `paper` semantics: model rows the reference pads to (0: the batch's longest)
  // A non-finite loss or gradient stops training (naming the update and the first tensor affected); with this set
  // the update is skipped instead (logged as event "skipped"), and training goes on with the next batch.
  bool skip_nonfinite = false;

  LrSchedule schedule() const { return {lr, warmup_steps, zero_steps, decay_steps, min_lr}; }
};

struct TrainerState {
  std::int64_t step = 0;             // completed updates
  std::uint64_t data_position = 0;   // training samples consumed (the next batch starts here, modulo the source)
  // The best/ checkpoint's validation accuracy and loss (-1: no validation yet).
  double best_valid_accuracy = -1;
  double best_valid_loss = -1;
  std::int64_t best_step = 0;
  std::optional<LrSchedule> schedule;  // the schedule the run was trained with (absent in older checkpoints)
};

// Progress reports for a progress bar: updates done, and the latest figures.
struct TrainProgress {
  std::int64_t step = 0, total = 0;
  double loss = 0, accuracy = 0, tokens_per_second = 0, lr = 0;
  double valid_loss = std::numeric_limits<double>::quiet_NaN();  // the latest validation's (NaN: none yet)
};

// Trains a fresh model of `config`, or resumes OUT/last when `resume` is set (then `config` is ignored and the
// checkpoint's is used). Throws hax::Error on bad input or a non-finite loss; checkpoints already written stay.
// On resume the options' schedule is used; when it differs from the one the checkpoint recorded, metrics.jsonl gets
// an {"event":"schedule_changed"} line (the run is then no longer the uninterrupted one).
void train(const models::ModelConfig& config, const TrainOptions& options, SampleSource& train_data,
           SampleSource* valid_data, bool resume, const std::function<void(const TrainProgress&)>& on_step = {});

// Starts a fresh run (step 0, new AdamW moments) from the weights of `initial` rather than a new initialization:
// continual pre-training (`hax lm train --init-from`). Resume such a run with train(..., resume = true).
void train_from(std::unique_ptr<models::Model> initial, const TrainOptions& options, SampleSource& train_data,
                SampleSource* valid_data, const std::function<void(const TrainProgress&)>& on_step = {});

}  // namespace hax::training
