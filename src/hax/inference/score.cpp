#include "hax/inference/score.h"

#include <algorithm>
#include <cmath>

#include "hax/engine/error.h"
#include "hax/inference/logit_stream.h"

namespace hax::inference {
namespace {

void add(ScoreResult& r, const ScoreOptions& o, std::size_t position, double nll) {
  r.nll_sum += nll;
  ++r.tokens;
  if (o.bucket_width <= 0) return;
  const std::size_t bucket = position / static_cast<std::size_t>(o.bucket_width);
  if (r.bucket_nll_sum.size() <= bucket) {
    r.bucket_nll_sum.resize(bucket + 1, 0.0);
    r.bucket_tokens.resize(bucket + 1, 0);
  }
  r.bucket_nll_sum[bucket] += nll;
  ++r.bucket_tokens[bucket];
}

}  // namespace

double ScoreResult::perplexity() const { return std::exp(mean_nll()); }

nlohmann::json by_position_json(const ScoreResult& r, int bucket_width) {
  nlohmann::json buckets = nlohmann::json::array();
  for (std::size_t b = 0; b < r.bucket_tokens.size(); ++b) {
    const std::uint64_t n = r.bucket_tokens[b];
    buckets.push_back({{"first_position", b * bucket_width},
                       {"last_position", (b + 1) * bucket_width - 1},
                       {"tokens", n},
                       {"mean_nll", n ? nlohmann::json(r.bucket_mean_nll(b)) : nullptr}});
  }
  return buckets;
}

double token_nll(std::span<const float> logits, std::int32_t target) {
  const float most = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (const float x : logits) sum += std::exp(static_cast<double>(x) - most);
  return std::log(sum) + most - logits[static_cast<std::size_t>(target)];
}

namespace {

void check_options(const ScoreOptions& o) {
  check(o.chunk > 0, "--chunk must be > 0, got ", o.chunk);
  check(o.bucket_width >= 0, "--by-position must be >= 0, got ", o.bucket_width);
}

void score_into(ScoreResult& result, models::Model& model, SavedStream& saved, std::span<const std::int32_t> sequence,
                const ScoreOptions& o, const std::function<void(std::uint64_t)>& on_tokens) {
  const std::size_t V = static_cast<std::size_t>(model.config().vocab_size);
  const std::size_t first = static_cast<std::size_t>(saved.state.position);  // the sequence's position of sequence[0]
  if (!sequence.empty() && !saved.next_logits.empty()) add(result, o, first, token_nll(saved.next_logits, sequence[0]));
  LogitStream stream(model, std::move(saved.state));
  std::span<const float> logits;
  for (std::size_t at = 0; at < sequence.size(); at += static_cast<std::size_t>(o.chunk)) {
    const std::size_t T = std::min(sequence.size() - at, static_cast<std::size_t>(o.chunk));
    logits = stream.feed(sequence.subspan(at, T));
    // Row i predicts token at + i + 1; the chunk's last row predicts the next chunk's first token.
    for (std::size_t i = 0; i < T && at + i + 1 < sequence.size(); ++i) {
      const std::size_t next = at + i + 1;
      add(result, o, first + next, token_nll({logits.data() + i * V, V}, sequence[next]));
    }
    if (on_tokens) on_tokens(T);
  }
  if (!sequence.empty()) saved.next_logits.assign(logits.end() - static_cast<std::ptrdiff_t>(V), logits.end());
  saved.state = stream.take_state();
}

}  // namespace

ScoreResult score_sequences(models::Model& model, const std::vector<data::TokenSequence>& sequences,
                            const ScoreOptions& o, const std::function<void(std::uint64_t)>& on_tokens) {
  check_options(o);
  ScoreResult result;
  for (const data::TokenSequence& sequence : sequences) {
    SavedStream stream = start_stream(model);
    score_into(result, model, stream, sequence, o, on_tokens);
  }
  return result;
}

ScoreResult score_stream(models::Model& model, SavedStream& stream, std::span<const std::int32_t> tokens,
                         const ScoreOptions& o, const std::function<void(std::uint64_t)>& on_tokens) {
  check_options(o);
  ScoreResult result;
  score_into(result, model, stream, tokens, o, on_tokens);
  return result;
}

}  // namespace hax::inference
