#include "hax/data/joint_recall.h"

#include <limits>
#include <span>

#include "hax/engine/error.h"

namespace hax::data {
namespace {

constexpr std::uint64_t kMaxPadLen = std::numeric_limits<std::int32_t>::max();

std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t product;
  return __builtin_mul_overflow(a, b, &product) ? std::numeric_limits<std::uint64_t>::max() : product;
}

std::uint64_t saturating_pow(std::uint64_t base, std::uint64_t exponent) {
  std::uint64_t result = 1;
  for (std::uint64_t i = 0; i < exponent && result != std::numeric_limits<std::uint64_t>::max() && base > 1; ++i)
    result = saturating_mul(result, base);
  return result;
}

std::uint64_t saturating_factorial(std::uint64_t n) {
  std::uint64_t result = 1;
  for (std::uint64_t k = 2; k <= n && result != std::numeric_limits<std::uint64_t>::max(); ++k)
    result = saturating_mul(result, k);
  return result;
}

// How many different samples a cell can produce: values^(g1*g2) tables times the permutations of both halves,
// (g1! * g2!^g1)^2. Saturates at 2^64 - 1.
std::uint64_t distinct_samples(std::uint64_t g1, std::uint64_t g2, std::uint64_t values) {
  const std::uint64_t one_half = saturating_mul(saturating_factorial(g1), saturating_pow(saturating_factorial(g2), g1));
  return saturating_mul(saturating_pow(values, g1 * g2), saturating_mul(one_half, one_half));
}

}  // namespace

void JointRecallConfig::validate() const {
  NumpyRandomState::checked_seed(seed);
  check_knob("--min-contexts", min_contexts, 1, kMaxVocab - 1);
  check_knob("--max-contexts", max_contexts, min_contexts, kMaxVocab - 1);
  check_knob("--min-keys", min_keys, 1, kMaxVocab - 1);
  check_knob("--max-keys", max_keys, min_keys, kMaxVocab - 1);
  check_knob("--values", values, 1, kMaxVocab);
  check_knob("--vocab", vocab, 1, kMaxVocab);
  const std::int64_t highest = kJointRecallTokenBias + values + max_keys + max_contexts - 1;
  check(highest < vocab, "token ids reach ", highest, " (", kJointRecallTokenBias, " + --values ", values,
        " + --max-keys ", max_keys, " + --max-contexts ", max_contexts, " - 1), which does not fit --vocab ", vocab,
        ": lower --max-contexts, --max-keys or --values, or raise --vocab");
  const std::uint64_t padded =
      static_cast<std::uint64_t>(2 * max_contexts) * static_cast<std::uint64_t>(2 * max_keys + 1) + 2;
  check(padded <= kMaxPadLen, "--max-contexts ", max_contexts, " with --max-keys ", max_keys, " makes samples of ",
        padded, " tokens, more than the ", kMaxPadLen, " supported");
  check_knob("--train-per-cell", train_per_cell, 0, std::numeric_limits<std::int32_t>::max());
  check_knob("--eval-per-cell", eval_per_cell, 0, std::numeric_limits<std::int32_t>::max());
  // Dedup redraws a repeated sample until it is new; a cell with fewer distinct samples than it must hold would
  // loop forever. The smallest cell has the fewest.
  const auto wanted = static_cast<std::uint64_t>(train_per_cell + 2 * eval_per_cell);
  const std::uint64_t available = distinct_samples(min_contexts, min_keys, values);
  check(wanted <= available, "each cell needs ", wanted, " distinct samples (--train-per-cell + 2 * --eval-per-cell)",
        " but cell (", min_contexts, ", ", min_keys, ") with --values ", values, " has only ", available);
}

std::uint64_t JointRecallConfig::cells() const {
  return static_cast<std::uint64_t>(max_contexts - min_contexts + 1) *
         static_cast<std::uint64_t>(max_keys - min_keys + 1);
}

std::uint64_t JointRecallConfig::split_size(Split split) const {
  const auto per_cell = static_cast<std::uint64_t>(split == Split::train ? train_per_cell : eval_per_cell);
  return cells() * per_cell;
}

Cell JointRecallConfig::cell_at(std::uint64_t index) const {
  const std::uint64_t cell = index % cells();
  const auto key_range = static_cast<std::uint64_t>(max_keys - min_keys + 1);
  return {static_cast<std::uint32_t>(min_contexts + static_cast<std::int64_t>(cell / key_range)),
          static_cast<std::uint32_t>(min_keys + static_cast<std::int64_t>(cell % key_range))};
}

std::uint32_t JointRecallConfig::pad_len() const {
  return static_cast<std::uint32_t>((2 * max_contexts) * (2 * max_keys + 1) + 2);
}

std::int32_t JointRecallConfig::highest_token() const {
  return context_token(static_cast<std::uint32_t>(max_contexts - 1));
}

JointRecallGenerator::JointRecallGenerator(const JointRecallConfig& config, Split split, std::uint64_t offset)
    : config_((config.validate(), config)), rng_(config.seed), split_(split) {
  const std::uint64_t size = config_.split_size(split);
  check(offset <= size, "--offset ", offset, " is past the end of the ", split_name(split), " split (", size,
        " samples)");
  for (Split earlier : kSplits) {
    if (earlier == split) break;
    skip_split_prefix(config_.split_size(earlier));
  }
  skip_split_prefix(offset);
  index_ = offset;
}

void JointRecallGenerator::skip_split_prefix(std::uint64_t count) {
  for (std::uint64_t i = 0; i < count; ++i) draw_unseen(config_.cell_at(i));
}

void JointRecallGenerator::draw_unseen(Cell cell) {
  do draw(cell);
  while (!seen_.insert(io::hash128(draws_.data(), draws_.size() * sizeof(draws_[0]))));
}

void JointRecallGenerator::draw(Cell cell) {
  const std::uint32_t g1 = cell.n_context, g2 = cell.n_key;
  draws_.resize(2 + g1 * g2 + 2 * g1 * (1 + g2));
  std::uint16_t* next = draws_.data();
  *next++ = static_cast<std::uint16_t>(g1);
  *next++ = static_cast<std::uint16_t>(g2);
  for (std::uint32_t k = 0; k < g1 * g2; ++k) *next++ = static_cast<std::uint16_t>(rng_.randint(0, config_.values));
  for (int half = 0; half < 2; ++half) {
    rng_.permutation(std::span(next, g1));
    next += g1;
    for (std::uint32_t a = 0; a < g1; ++a, next += g2) rng_.permutation(std::span(next, g2));
  }
}

void JointRecallGenerator::next(Sample& out) {
  check(index_ < config_.split_size(split_), "the ", split_name(split_), " split has only ", config_.split_size(split_),
        " samples");
  draw_unseen(config_.cell_at(index_++));
  build(out);
}

void JointRecallGenerator::build(Sample& out) const {
  const std::uint32_t g1 = draws_[0], g2 = draws_[1];
  const std::uint16_t* table = draws_.data() + 2;
  const std::uint16_t* next = table + g1 * g2;
  const std::size_t length = 2 + 2 * static_cast<std::size_t>(g1) * (1 + 2 * g2);
  out.cell = {g1, g2};
  out.tokens.resize(length);
  out.mask.assign(length, 0);
  std::size_t t = 0;
  // One half: the contexts in drawn order, each followed by its keys in that context's drawn order and their values.
  // In the second half the model is asked for each value, so the key before it carries the mask.
  auto emit_half = [&](std::uint8_t scored) {
    const std::uint16_t* contexts = next;
    next += g1;
    for (std::uint32_t a = 0; a < g1; ++a, next += g2) {
      const std::uint32_t context = contexts[a];
      out.tokens[t++] = config_.context_token(context);
      for (std::uint32_t b = 0; b < g2; ++b) {
        const std::uint32_t key = next[b];
        out.mask[t] = scored;
        out.tokens[t++] = config_.key_token(key);
        out.tokens[t++] = config_.value_token(table[context * g2 + key]);
      }
    }
  };
  out.tokens[t++] = kJointRecallBos;
  emit_half(0);
  out.tokens[t++] = kJointRecallSep;
  emit_half(1);
}

std::vector<Sample> generate_joint_recall(const JointRecallConfig& config, Split split, std::uint64_t offset,
                                          std::uint64_t count) {
  JointRecallGenerator generator(config, split, offset);
  std::vector<Sample> samples(count);
  for (Sample& sample : samples) generator.next(sample);
  return samples;
}

}  // namespace hax::data
