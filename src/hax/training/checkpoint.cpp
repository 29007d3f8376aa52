#include "hax/training/checkpoint.h"

#include <nlohmann/json.hpp>

#include "hax/io/json_file.h"
#include "hax/io/safetensors.h"

namespace hax::training {
namespace {

namespace fs = std::filesystem;

// Writes a folder through `write(tmp)` into a sibling temp folder, then swaps it into place. Between the two
// renames the previous version survives as DIR.old, which load() falls back to.
template <class WriteFn>
void write_folder(const fs::path& dir, WriteFn&& write) {
  const fs::path tmp = fs::path(dir).concat(".tmp"), old = fs::path(dir).concat(".old");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  check(!ec, "cannot create checkpoint folder '", tmp.string(), "': ", ec.message());
  write(tmp);
  fs::remove_all(old, ec);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old, ec);
}

fs::path existing_folder(const fs::path& dir) {
  if (fs::is_directory(dir)) return dir;
  const fs::path old = fs::path(dir).concat(".old");
  check(fs::is_directory(old), "no checkpoint folder '", dir.string(), "'");
  return old;
}

void write_model_files(const fs::path& dir, const models::Model& model) {
  io::write_json_file(dir / "config.json", model.config().to_json());
  io::save_params(dir / "model.safetensors", {&model.params(), &model.buffers()},
                  {{"format", "pt"}, {"producer", "hax"}});
}

std::unique_ptr<models::Model> read_model_files(const fs::path& dir) {
  const fs::path config_path = dir / "config.json";
  const auto config = models::ModelConfig::from_json(io::read_json_file(config_path), config_path.string());
  auto model = std::make_unique<models::Model>(config, [&](ParamStore& params, ParamStore& buffers) {
    io::load_params_mapped(dir / "model.safetensors", {&params, &buffers});
  });
  for (const ParamStore* store : {&model->params(), &model->buffers()})
    if (const auto bad = first_nonfinite(*store, store->params()))
      fail((dir / "model.safetensors").string(), ": tensor '", bad->tensor, "' holds ", bad->value, " at flat index ",
           bad->index, ": a checkpoint with non-finite weights would only produce NaN");
  return model;
}

}  // namespace

void save_model(const fs::path& dir, const models::Model& model) {
  write_folder(dir, [&](const fs::path& tmp) { write_model_files(tmp, model); });
}

std::unique_ptr<models::Model> load_model(const fs::path& dir) { return read_model_files(existing_folder(dir)); }

void save_training_checkpoint(const fs::path& dir, const models::Model& model, AdamW& optimizer,
                              const TrainerState& state) {
  write_folder(dir, [&](const fs::path& tmp) {
    write_model_files(tmp, model);
    std::vector<io::TensorView> moments = io::layout_views(model.params(), optimizer.exp_avg(), "exp_avg.");
    for (auto& v : io::layout_views(model.params(), optimizer.exp_avg_sq(), "exp_avg_sq.")) moments.push_back(v);
    io::save_safetensors(tmp / "optimizer.safetensors", moments);
    const AdamWConfig& a = optimizer.config();
    io::write_json_file(tmp / "trainer_state.json",
               {{"step", state.step},
                {"data_position", state.data_position},
                {"best_valid_accuracy", state.best_valid_accuracy},
                {"best_step", state.best_step},
                {"optimizer", {{"name", "AdamW"}, {"step", optimizer.step_count()}, {"beta1", a.beta1},
                               {"beta2", a.beta2}, {"eps", a.eps}, {"weight_decay", a.weight_decay}}}});
  });
}

std::unique_ptr<models::Model> load_training_checkpoint(const fs::path& dir, std::unique_ptr<AdamW>& optimizer,
                                                             const AdamWConfig& adamw, TrainerState& state) {
  const fs::path from = existing_folder(dir);
  auto model = read_model_files(from);
  const fs::path state_path = from / "trainer_state.json";
  const nlohmann::json j = io::read_json_file(state_path);
  try {
    state.step = j.at("step").get<std::int64_t>();
    state.data_position = j.at("data_position").get<std::uint64_t>();
    state.best_valid_accuracy = j.at("best_valid_accuracy").get<double>();
    state.best_step = j.at("best_step").get<std::int64_t>();
    optimizer = std::make_unique<AdamW>(model->params().params().size(), adamw);
    optimizer->set_step_count(j.at("optimizer").at("step").get<std::int64_t>());
  } catch (const nlohmann::json::exception& e) {
    fail("'", state_path.string(), "' is not a hax trainer state: ", e.what());
  }
  const io::SafetensorsFile moments(from / "optimizer.safetensors");
  io::read_layout(moments, model->params(), optimizer->exp_avg(), "exp_avg.");
  io::read_layout(moments, model->params(), optimizer->exp_avg_sq(), "exp_avg_sq.");
  return model;
}

}  // namespace hax::training
