// One training/evaluation sequence as the generators produce it and the dataset formats store it.
#pragma once

#include <compare>
#include <cstdint>
#include <string_view>
#include <vector>

#include "hax/engine/error.h"

namespace hax::data {

// Where a sample sits in a task's grid of difficulties, so accuracy can be reported per cell:
// joint recall (n_context, n_key) = (g1, g2); MQAR (1, kv_pairs).
struct Cell {
  std::uint32_t n_context = 0;
  std::uint32_t n_key = 0;
  friend auto operator<=>(const Cell&, const Cell&) = default;
};

struct Sample {
  std::vector<std::int32_t> tokens;  // unpadded
  std::vector<std::uint8_t> mask;    // one per token: 1 = the NEXT token is scored (predicted from this prefix)
  Cell cell;
};

// Token ids are stored in at most two bytes, so a vocabulary has at most this many ids.
inline constexpr std::int64_t kMaxVocab = 65536;

// The shape every writer requires: one mask bit per token, at most pad_len tokens. `context` names the output.
inline void check_sample_shape(const Sample& sample, std::uint64_t pad_len, std::string_view context) {
  check(sample.tokens.size() <= pad_len, context, ": a sample of ", sample.tokens.size(),
        " tokens is longer than pad_len ", pad_len);
  check(sample.mask.size() == sample.tokens.size(), context, ": a sample has ", sample.tokens.size(), " tokens but ",
        sample.mask.size(), " mask bits");
}

// The generators' knob validation: the message names the CLI flag the knob comes from.
inline void check_knob(std::string_view flag, std::int64_t value, std::int64_t lo, std::int64_t hi) {
  check(value >= lo && value <= hi, flag, " ", value, " is out of range [", lo, ", ", hi, "]");
}

// Splits are drawn in this order when a task draws them from one stream.
enum class Split : std::uint8_t { train, valid, test };

inline constexpr Split kSplits[] = {Split::train, Split::valid, Split::test};

inline std::string_view split_name(Split split) {
  switch (split) {
    case Split::train:
      return "train";
    case Split::valid:
      return "valid";
    case Split::test:
      return "test";
  }
  return "?";
}

inline Split parse_split(std::string_view name) {
  if (name == "train") return Split::train;
  if (name == "valid" || name == "validation") return Split::valid;
  if (name == "test") return Split::test;
  fail("unknown split '", name, "' (expected train, valid or test)");
}

}  // namespace hax::data
