#include "hax/data/mqar.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "hax/engine/error.h"
#include "hax/engine/rng.h"

namespace hax::data {
namespace {

// `count` distinct integers from [0, n) in random order: a Fisher-Yates shuffle of the first `count` positions of
// an implicit identity array, storing only the positions it moved.
std::vector<std::uint64_t> sample_without_replacement(Rng& rng, std::uint64_t n, std::size_t count) {
  std::unordered_map<std::uint64_t, std::uint64_t> moved;
  auto at = [&](std::uint64_t i) {
    const auto found = moved.find(i);
    return found == moved.end() ? i : found->second;
  };
  std::vector<std::uint64_t> picked(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t j = i + rng.below(n - i);
    picked[i] = at(j);
    moved[j] = at(i);
  }
  return picked;
}

// `count` distinct slots, drawn one after another with probability proportional to their weights among those left
// (numpy's choice(replace=False, p=...)). Done in one pass by the exponential-keys method: slot s gets the key
// log(u_s) / w_s, and the slots with the largest keys, in decreasing order, have exactly that distribution.
std::vector<std::uint32_t> weighted_sample_without_replacement(Rng& rng, const std::vector<double>& weights,
                                                               std::size_t count) {
  std::vector<std::pair<double, std::uint32_t>> keyed(weights.size());
  for (std::size_t s = 0; s < weights.size(); ++s) {
    double u;
    do u = rng.uniform_double();
    while (u <= 0.0);
    keyed[s] = {std::log(u) / weights[s], static_cast<std::uint32_t>(s)};
  }
  std::partial_sort(keyed.begin(), keyed.begin() + static_cast<std::ptrdiff_t>(count), keyed.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::uint32_t> slots(count);
  for (std::size_t i = 0; i < count; ++i) slots[i] = keyed[i].second;
  return slots;
}

}  // namespace

void MqarConfig::validate() const {
  check_knob("--seed", seed, 0, std::numeric_limits<std::int64_t>::max());
  check_knob("--vocab", vocab, 4, kMaxVocab);
  check_knob("--kv-pairs", kv_pairs, 1, vocab / 2 - 1);
  check_knob("--seq-len", seq_len, 4 * kv_pairs, std::numeric_limits<std::int32_t>::max());
  check(std::isfinite(power_a) && power_a > 0.0, "--power-a ", power_a, " must be a positive number");
  check_knob("--train-size", train_size, 0, std::numeric_limits<std::int64_t>::max());
  check_knob("--eval-size", eval_size, 0, std::numeric_limits<std::int64_t>::max());
}

std::uint64_t MqarConfig::split_size(Split split) const {
  return static_cast<std::uint64_t>(split == Split::train ? train_size : eval_size);
}

MqarGenerator::MqarGenerator(const MqarConfig& config) : config_((config.validate(), config)) {
  const auto slots = static_cast<std::size_t>((config_.seq_len - 2 * config_.kv_pairs) / 2);
  slot_weights_.resize(slots);
  for (std::size_t s = 0; s < slots; ++s)
    slot_weights_[s] = std::pow(static_cast<double>(s + 1), config_.power_a - 1.0);
}

void MqarGenerator::generate(Split split, std::uint64_t index, Sample& out) const {
  check(index < config_.split_size(split), "MQAR sample ", index, " is past the end of the ", split_name(split),
        " split (", config_.split_size(split), " samples)");
  Rng rng = Rng(static_cast<std::uint64_t>(config_.seed)).fork(static_cast<std::uint64_t>(split)).fork(index);
  const auto pairs = static_cast<std::size_t>(config_.kv_pairs);
  const auto first_value = static_cast<std::uint64_t>(config_.first_value());
  const auto keys = sample_without_replacement(rng, first_value - 1, pairs);  // keys from [1, vocab/2)
  const auto values = sample_without_replacement(rng, static_cast<std::uint64_t>(config_.vocab) - first_value, pairs);
  const auto slots = weighted_sample_without_replacement(rng, slot_weights_, pairs);
  const auto seq_len = static_cast<std::size_t>(config_.seq_len);
  out.cell = {1, static_cast<std::uint32_t>(pairs)};
  out.tokens.assign(seq_len, kMqarPad);
  out.mask.assign(seq_len, 0);
  const auto key_token = [&](std::size_t i) { return static_cast<std::int32_t>(1 + keys[i]); };
  const auto value_token = [&](std::size_t i) { return static_cast<std::int32_t>(first_value + values[i]); };
  for (std::size_t i = 0; i < pairs; ++i) {
    out.tokens[2 * i] = key_token(i);
    out.tokens[2 * i + 1] = value_token(i);
    const std::size_t query = 2 * pairs + 2 * slots[i];
    out.tokens[query] = key_token(i);
    out.tokens[query + 1] = value_token(i);
    out.mask[query] = 1;
  }
  for (std::int32_t& token : out.tokens)
    if (token == kMqarPad)
      token = static_cast<std::int32_t>(1 + rng.below(static_cast<std::uint64_t>(config_.vocab) - 1));
}

}  // namespace hax::data
