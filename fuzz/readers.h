// Every reader of a user file, driven the way hax drives it, for the fuzz targets (fuzz/targets/) and for the
// replay test of the suite (tests/io/test_fuzz_replay.cpp), which runs each target's seed corpus and regression
// inputs through the same code in the Release and sanitizer builds. The property checked is the one the README
// promises for bad input: a reader either succeeds or throws hax::Error naming the file and the problem; anything
// else that escapes (another exception type, a crash, a sanitizer report, a hang, a huge allocation) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "hax/data/dataset_binary.h"
#include "hax/data/dataset_text.h"
#include "hax/data/tokens_file.h"
#include "hax/engine/error.h"
#include "hax/inference/state_file.h"
#include "hax/io/npy.h"
#include "hax/io/safetensors.h"
#include "hax/models/config.h"
#include "hax/training/experiment.h"

namespace hax::fuzz {

// Runs `read`; a hax::Error is the reader refusing bad input, which is what it should do.
template <class Read>
void expect_success_or_error(Read&& read) {
  try {
    read();
  } catch (const hax::Error&) {
  }
}

// Opening checks the header; then every tensor is read on its own, so that one tensor of an unreadable dtype does
// not hide the reading of the others.
inline void read_safetensors(const std::string& path) {
  const io::SafetensorsFile file(path);
  for (const std::string& name : file.names()) expect_success_or_error([&] { (void)file.read(name); });
}

// config.json of a checkpoint or a --config file, and what is derived from it.
inline void read_model_config(const std::string& path) {
  const models::ModelConfig config = models::ModelConfig::load(path);
  if (config.has_sparse()) (void)config.parsed_sparse_arch();
  (void)config.paper_ingredients();
}

// Opening validates the whole file; then every sample is read, unpadded as training reads it, and padded to
// pad_len (what `hax data cat` writes) where pad_len is small enough to hold: a valid header may claim any pad_len
// up to 2^31 - 1, and padding to it is the caller's allocation, not the reader's.
inline void read_binary_dataset(const std::string& path) {
  const data::BinaryDataset dataset(path);
  const bool pad = dataset.pad_len() <= (1u << 20);
  std::vector<std::int32_t> tokens(pad ? dataset.pad_len() : 0);
  std::vector<std::uint8_t> mask(pad ? dataset.pad_len() : 0);
  for (std::uint64_t i = 0; i < dataset.size(); ++i) {
    if (pad) dataset.read_padded(i, tokens.data(), mask.data());
    (void)dataset.sample(i);
    (void)dataset.cell(i);
  }
}

// The reference's text format, with the pad id of the paper's joint-recall task.
inline void read_text_dataset(const std::string& path) { (void)data::read_text_dataset(path, 0); }

// The tokens file of `hax logits`, against the vocabulary of the paper's configs.
inline void read_tokens_file(const std::string& path) { (void)data::read_token_sequences(path, 100); }

// The header, then the values in the dtype it names (float32 unless it says int32, so other dtypes are refused).
inline void read_npy(const std::string& path) {
  if (io::read_npy_header(path).descr == "<i4")
    (void)io::load_npy<std::int32_t>(path);
  else
    (void)io::load_npy<float>(path);
}

// `hax sweep`'s experiment file: parsed, expanded into runs, each run's command lines built (as --dry-run does).
inline void read_experiment(const std::string& path) {
  const training::Experiment experiment = training::load_experiment(path);
  for (const training::RunSpec& run : training::expand_runs(experiment)) {
    (void)run.id();
    if (const auto twin = training::measured_by(experiment, run)) (void)twin->id();
    for (const bool resume : {false, true})
      (void)training::command_line("hax", training::train_arguments(experiment, run, "out", resume));
    (void)training::command_line("hax", training::eval_arguments(experiment, "out"));
  }
}

// A saved streaming state (`hax score` / `hax generate` --save-state) of the one-block HAX model described here by
// hand, so that reading needs no model: Mamba with 8 channels, state 2, conv kernel 2, vocabulary 24, and
// sign_bin_lsh+key_selection with 4 keys (2 per pattern) and 4 buckets. The header must carry this config and
// weights hash; tests/inference/test_state_file.cpp writes the seed from a real model of this shape.
inline const inference::StateShape& fuzz_state_shape() {
  static const inference::StateShape shape = [] {
    layers::MixerState block;
    block.conv_tail.assign(8, 0.0f);
    block.h.assign(16, 0.0f);
    block.sparse = layers::SparseState{
        ops::sparse::SparseKeyStream(ops::sparse::parse_sparse_arch("sign_bin_lsh+key_selection", 4), 4),
        ops::sparse::KeyValueCache(2, 8), std::vector<double>(4, 0.0), {}, {}, {}, {}};
    inference::StateShape s;
    s.config = {{"fuzz", "state_file"}};
    s.weights_hash = 0x5eed;
    s.start.blocks.push_back(std::move(block));
    s.attention = {0};
    s.vocab_size = 24;
    s.hidden_size = 4;
    return s;
  }();
  return shape;
}

inline void read_state_file(const std::string& path) { (void)inference::load_state_file(path, fuzz_state_shape()); }

// Most changes to a binary dataset fail its checksum, so that fuzzing the file as it is never gets past it. This
// target's inputs are sealed first: the header's file size and checksum are set to match the bytes (inputs shorter
// than the header are left alone), so what is fuzzed is the validation behind the checksum.
inline void seal_binary_dataset(std::string& bytes) {
  if (bytes.size() < sizeof(data::BinaryDatasetHeader)) return;
  const std::uint64_t size = bytes.size();
  std::memcpy(bytes.data() + offsetof(data::BinaryDatasetHeader, file_size), &size, sizeof size);
  const std::uint64_t checksum =
      data::binary_dataset_checksum(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  std::memcpy(bytes.data() + offsetof(data::BinaryDatasetHeader, checksum), &checksum, sizeof checksum);
}

struct Target {
  const char* name;  // fuzz/targets/<name>.cpp, fuzz/corpus/<name>/, fuzz/regressions/<name>/
  void (*read)(const std::string& path);
  void (*prepare)(std::string& bytes) = nullptr;  // applied to each input before it is written to the file read
};

inline constexpr Target kTargets[] = {
    {"safetensors", read_safetensors},
    {"model_config", read_model_config},
    {"binary_dataset", read_binary_dataset},
    {"binary_dataset_sealed", read_binary_dataset, seal_binary_dataset},
    {"text_dataset", read_text_dataset},
    {"tokens_file", read_tokens_file},
    {"npy", read_npy},
    {"experiment", read_experiment},
    {"state_file", read_state_file},
};

inline const Target& target_named(const std::string& name) {
  for (const Target& t : kTargets)
    if (name == t.name) return t;
  throw std::logic_error("no fuzz target " + name);
}

}  // namespace hax::fuzz
