// The training loop of the reference (reference §2.2-2.4) on CPU: batches in data order (no shuffling), AdamW with
// the linear warm-up, validation every `eval_every` updates, the best checkpoint kept by validation accuracy, and a
// resumable "last" checkpoint holding the optimizer state and the data position.
//
// Output folder layout:
//   OUT/metrics.jsonl      one JSON object a line: {"event":"train",...} and {"event":"valid",...}
//   OUT/best/              config.json + model.safetensors of the best validation accuracy so far
//   OUT/last/              the same, plus optimizer.safetensors and trainer_state.json (resume from here)
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "hax/models/config.h"
#include "hax/training/adamw.h"
#include "hax/training/sample_source.h"

namespace hax::training {

struct TrainOptions {
  std::string out_dir;
  int batch_size = 64;
  std::int64_t steps = 400000;  // optimizer updates in all (the paper's)
  double lr = 2e-3;
  std::int64_t warmup_steps = 5000;
  AdamWConfig adamw;
  std::int64_t eval_every = 500;     // validate (and save last/) every this many updates; 0: never
  std::uint64_t valid_samples = 0;   // 0: the whole validation source
  std::int64_t log_every = 10;       // metrics.jsonl line every this many updates
  int padded_length = 0;             // `paper` semantics: model rows the reference pads to (0: the batch's longest)
  // A non-finite loss or gradient stops training (naming the update and the first tensor affected); with this set
  // the update is skipped instead (logged as event "skipped"), and training goes on with the next batch.
  bool skip_nonfinite = false;
};

struct TrainerState {
  std::int64_t step = 0;             // completed updates
  std::uint64_t data_position = 0;   // training samples consumed (the next batch starts here, modulo the source)
  double best_valid_accuracy = -1;   // -1: no validation yet
  std::int64_t best_step = 0;
};

// Progress reports for a progress bar: updates done, and the latest figures.
struct TrainProgress {
  std::int64_t step = 0, total = 0;
  double loss = 0, accuracy = 0, tokens_per_second = 0, lr = 0;
};

// Trains a fresh model of `config`, or resumes OUT/last when `resume` is set (then `config` is ignored and the
// checkpoint's is used). Throws hax::Error on bad input or a non-finite loss; checkpoints already written stay.
void train(const models::ModelConfig& config, const TrainOptions& options, SampleSource& train_data,
           SampleSource* valid_data, bool resume, const std::function<void(const TrainProgress&)>& on_step = {});

}  // namespace hax::training
