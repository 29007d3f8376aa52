// A sequence fed to a model by streaming inference, one chunk at a time, with one arena and one logits buffer for
// the whole sequence: after the first chunks, feeding a token allocates nothing.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "hax/engine/arena.h"
#include "hax/models/model.h"

namespace hax::inference {

class LogitStream {
 public:
  // From an empty state: hax::Error for a model that cannot stream (`paper` semantics with a sparse arch).
  explicit LogitStream(models::Model& model) : model_(model), state_(model.start_state()) {}
  // Continuing a sequence from its state (a saved one: inference/state_file.h).
  LogitStream(models::Model& model, models::ModelState state) : model_(model), state_(std::move(state)) {}

  const models::ModelState& state() const { return state_; }
  models::ModelState take_state() { return std::move(state_); }

  // The logits (T, V) of the next T tokens of the sequence (with last_only, those of the last token: (1, V));
  // valid until the next feed.
  std::span<const float> feed(std::span<const std::int32_t> tokens, bool last_only = false) {
    const std::size_t need = model_.prefill_arena_floats(state_, static_cast<int>(tokens.size()));
    if (arena_.capacity() < need) arena_ = Arena(need);
    const std::size_t rows = last_only && !tokens.empty() ? 1 : tokens.size();
    logits_.resize(rows * static_cast<std::size_t>(model_.config().vocab_size));
    model_.prefill(logits_.data(), state_, tokens, arena_, last_only);
    return logits_;
  }

 private:
  models::Model& model_;
  models::ModelState state_;
  Arena arena_;
  std::vector<float> logits_;
};

}  // namespace hax::inference
