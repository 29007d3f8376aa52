// Checkpoint folders, as Hugging Face lays them out: config.json + model.safetensors, tensor names and shapes as in
// the reference PyTorch models. A training checkpoint adds optimizer.safetensors (AdamW's exp_avg / exp_avg_sq per
// tensor) and trainer_state.json. A folder is written beside its destination and renamed into place, so a crash
// never leaves a half-written checkpoint where a good one was.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>

#include <nlohmann/json.hpp>

#include "hax/models/model.h"
#include "hax/training/adamw.h"
#include "hax/training/trainer.h"

namespace hax::training {

// Writes a folder through `write(tmp)` into a sibling temp folder, then swaps it into place. Between the two
// renames the previous version survives as DIR.old, which load_model() falls back to. (JSON files: io/whole_file.h.)
void write_folder(const std::filesystem::path& dir, const std::function<void(const std::filesystem::path& tmp)>& write);

void save_model(const std::filesystem::path& dir, const models::Model& model);
std::unique_ptr<models::Model> load_model(const std::filesystem::path& dir);

void save_training_checkpoint(const std::filesystem::path& dir, const models::Model& model, AdamW& optimizer,
                              const TrainerState& state);
// Loads a training checkpoint: the model, and the optimizer moments and state into `optimizer` / `state`.
std::unique_ptr<models::Model> load_training_checkpoint(const std::filesystem::path& dir,
                                                             std::unique_ptr<AdamW>& optimizer,
                                                             const AdamWConfig& adamw, TrainerState& state);

// trainer_state.json's "lr_schedule" object.
nlohmann::json schedule_json(const LrSchedule& schedule);

}  // namespace hax::training
