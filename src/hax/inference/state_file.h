// Saved streaming state (`hax score` / `hax generate` --save-state, --load-state): everything a sequence carries
// from its past, so that continuing from the file gives the bits of a run that never stopped.
//
// Format (little-endian), version 1:
//   "HAXSTATE" | u32 version | u32 0 | u64 header bytes | header (JSON) | body (binary)
// The header holds the model's config ("config", as config.json writes it), a hash of its weights and buffers
// ("weights_hash", io/hash.h), "position", "vocab_size", "blocks", "has_rng", "body_bytes" and a hash of the body
// ("body_hash"). The body: the next token's logits (V floats, none before the first token), the generator's state
// when "has_rng", then per block: conv tail, scan state h (f32 arrays), window K and V (f32 arrays), the attention
// position (i32), and for a sparse branch: the key stream (position, LSH rings and their insert counters, the
// top-w heap in its layout), the key-value cache (widths; the positions held, ascending, each with its holds and
// K and V rows), the running sums (f64 arrays). An array is a u64 count and its elements.
// Reading checks everything against the model before anything is used: a hax::Error of one line naming the file
// and the reason for another model, config or weights, a truncated or altered file, or a bad magic or version.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/engine/rng.h"
#include "hax/models/model_state.h"

namespace hax::models {
class Model;
}

namespace hax::inference {

// A sequence part way through streaming inference.
struct SavedStream {
  models::ModelState state;           // after every token consumed so far (state.position of them)
  std::vector<float> next_logits;     // (V) the logits of the last token consumed: the next token's distribution
  std::optional<Rng::State> rng;      // `hax generate`'s sampler, when it saved the stream
};

// What the saved state of a model must be: its identity and the shapes of its state. state_shape() makes it from
// a model; the fuzz target (fuzz/readers.h) makes one by hand, so that reading needs no model.
struct StateShape {
  nlohmann::json config;          // the model's config.json
  std::uint64_t weights_hash = 0;  // weights_hash()
  models::ModelState start;       // the state of an empty sequence: every fixed-size array at its size
  std::vector<char> attention;    // per block: sliding-window attention (min(position, window - 1) rows kept)
  int vocab_size = 0, hidden_size = 0, attn_window = 0;
};

// hax::Error for a model that cannot stream (`paper` semantics with a sparse arch).
StateShape state_shape(const models::Model& model);
// The hash of a model's weights and buffers that a state file records.
std::uint64_t weights_hash(const models::Model& model);
// The stream of an empty sequence: hax::Error for a model that cannot stream.
SavedStream start_stream(const models::Model& model);

// Writes atomically (io/atomic_file.h).
void save_state_file(const std::string& path, const StateShape& shape, const SavedStream& stream);
void save_state_file(const std::string& path, const models::Model& model, const SavedStream& stream);
// hax::Error (one line: the path and the reason) for a file that is not a state of this model.
SavedStream load_state_file(const std::string& path, const StateShape& shape);
SavedStream load_state_file(const std::string& path, const models::Model& model);

}  // namespace hax::inference
