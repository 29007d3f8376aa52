// The paper's multi-query joint-recall data (reference.md §1), byte-identical to its seed-1 stream.
//
// One numpy RandomState stream is drawn through all three splits in order (train, valid, test); each split
// enumerates `per_cell` rounds of every (n_context, n_key) cell, n_context-major. A sample that repeats an
// earlier one (in any split) is drawn again, exactly as the reference's dedup loop does.
#pragma once

#include <cstdint>
#include <vector>

#include "hax/data/numpy_random.h"
#include "hax/data/sample.h"
#include "hax/io/hash.h"

namespace hax::data {

// Token ids (reference §1.2): values, keys and contexts follow `kTokenBias` in that order.
inline constexpr std::int32_t kJointRecallBos = 1;
inline constexpr std::int32_t kJointRecallPad = 3;
inline constexpr std::int32_t kJointRecallSep = 4;
inline constexpr std::int32_t kJointRecallTokenBias = 10;

// Every knob of the generator. The fields mirror the CLI flags, and validation errors name those flags.
struct JointRecallConfig {
  std::int64_t seed = 1;
  std::int64_t min_contexts = 5;
  std::int64_t max_contexts = 16;
  std::int64_t min_keys = 5;
  std::int64_t max_keys = 16;
  std::int64_t values = 16;
  std::int64_t vocab = 100;
  std::int64_t train_per_cell = 10000;
  std::int64_t eval_per_cell = 100;  // valid and test each

  void validate() const;
  // The length the reference pads every sample to: (2 max_contexts)(2 max_keys + 1) + 2 (1058 by default).
  std::int64_t padded_sample_length() const { return 2 * max_contexts * (2 * max_keys + 1) + 2; }

  std::uint64_t cells() const;
  std::uint64_t split_size(Split split) const;
  // The cell of sample `index` of a split: rounds of all cells, n_context-major.
  Cell cell_at(std::uint64_t index) const;
  // Padded length: (2 * max_contexts) * (2 * max_keys + 1) + 2, the length of a (max, max) sample.
  std::uint32_t pad_len() const;
  std::int32_t highest_token() const;
  std::int32_t value_token(std::uint32_t value) const {
    return kJointRecallTokenBias + static_cast<std::int32_t>(value);
  }
  std::int32_t key_token(std::uint32_t key) const { return value_token(static_cast<std::uint32_t>(values) + key); }
  std::int32_t context_token(std::uint32_t context) const {
    return key_token(static_cast<std::uint32_t>(max_keys) + context);
  }
};

class JointRecallGenerator {
 public:
  // Positions the stream at sample `offset` of `split`: everything before it is drawn (the stream is sequential
  // and dedup needs every earlier sample) but never built into tokens.
  JointRecallGenerator(const JointRecallConfig& config, Split split, std::uint64_t offset = 0);

  // Builds the next sample of the split; asking past the split's end is a hax::Error.
  void next(Sample& out);
  std::uint64_t remaining() const { return config_.split_size(split_) - index_; }

 private:
  void skip_split_prefix(std::uint64_t count);
  void draw_unseen(Cell cell);
  void draw(Cell cell);
  void build(Sample& out) const;

  JointRecallConfig config_;
  NumpyRandomState rng_;
  io::Hash128Set seen_;
  // The draws behind the current sample: [n_context, n_key, value table (row-major), then for each half the
  // context permutation followed by one key permutation per visited context]. The sample is a one-to-one function
  // of this record, so dedup hashes it instead of the much longer token text.
  std::vector<std::uint16_t> draws_;
  Split split_;
  std::uint64_t index_ = 0;
};

// Convenience for tests and tools: samples [offset, offset + count) of a split.
std::vector<Sample> generate_joint_recall(const JointRecallConfig& config, Split split, std::uint64_t offset,
                                          std::uint64_t count);

}  // namespace hax::data
