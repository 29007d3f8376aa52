// Multi-query associative recall (MQAR), in the style of Zoology's generator, adapted to our "score the next token"
// format. A sample is
//   k_1 v_1 k_2 v_2 ... k_n v_n | query region
// with n distinct keys from [1, vocab/2) and n distinct values from [vocab/2, vocab). The query region is a row of
// two-token slots; n of them, chosen without replacement with Zoology's power-law weights (slot s weighs
// s^(power_a - 1), so early slots are favoured), hold the queries "k_i v_i" in the order the slots were drawn,
// and the key carries the mask (its next token, the value, is scored). Every other position holds a random filler
// in [1, vocab) (a filler may repeat a key or value: a distractor). Token 0 is the pad id and never appears.
//
// Each sample has its own RNG, forked from (seed, split, index), so any sample is generated in O(1) without
// drawing the ones before it, and the splits are independent streams.
#pragma once

#include <cstdint>
#include <vector>

#include "hax/data/sample.h"

namespace hax::data {

inline constexpr std::int32_t kMqarPad = 0;

// Every knob of the generator; the fields mirror the CLI flags, and validation errors name those flags.
struct MqarConfig {
  std::int64_t seed = 1;
  std::int64_t seq_len = 256;
  std::int64_t kv_pairs = 16;
  std::int64_t vocab = 8192;
  double power_a = 0.01;
  std::int64_t train_size = 100000;
  std::int64_t eval_size = 3000;  // valid and test each

  void validate() const;
  std::uint64_t split_size(Split split) const;
  std::uint32_t pad_len() const { return static_cast<std::uint32_t>(seq_len); }
  std::int32_t first_value() const { return static_cast<std::int32_t>(vocab / 2); }
};

class MqarGenerator {
 public:
  explicit MqarGenerator(const MqarConfig& config);

  // Sample `index` of `split` (any index below the split's size, in any order).
  void generate(Split split, std::uint64_t index, Sample& out) const;

 private:
  MqarConfig config_;
  std::vector<double> slot_weights_;  // the power law over query slots
};

}  // namespace hax::data
