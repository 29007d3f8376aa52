// The model side of saved states (inference/state_file.h): a model's identity and state shapes.
#include "hax/engine/error.h"
#include "hax/inference/state_file.h"
#include "hax/io/hash.h"
#include "hax/layers/attention.h"
#include "hax/layers/mixer.h"
#include "hax/models/model.h"

namespace hax::inference {

std::uint64_t weights_hash(const models::Model& model) {
  io::Hasher64 h(0x4841585354415445ull);
  for (const ParamStore* store : {&model.params(), &model.buffers()}) {
    for (const TensorInfo& t : store->tensors()) {
      h.update(t.name.data(), t.name.size());
      const std::span<const float> values = store->param(t.name);
      h.update(values.data(), values.size_bytes());
    }
  }
  return h.digest();
}

SavedStream start_stream(const models::Model& model) { return {model.start_state(), {}, {}}; }

StateShape state_shape(const models::Model& model) {
  const models::ModelConfig& c = model.config();
  StateShape shape{c.to_json(), weights_hash(model), model.start_state(), {}, c.vocab_size, c.hidden_size,
                   c.attn_window};
  for (const models::Block& block : model.blocks())
    shape.attention.push_back(dynamic_cast<const layers::MixerOf<layers::Attention>*>(block.mixer.get()) != nullptr);
  return shape;
}

void save_state_file(const std::string& path, const models::Model& model, const SavedStream& stream) {
  save_state_file(path, state_shape(model), stream);
}

SavedStream load_state_file(const std::string& path, const models::Model& model) {
  StateShape shape;
  try {
    shape = state_shape(model);
  } catch (const Error& e) {
    fail("state file '", path, "': ", e.what());  // a model that cannot stream
  }
  return load_state_file(path, shape);
}

}  // namespace hax::inference
