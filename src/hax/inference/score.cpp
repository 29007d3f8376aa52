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

double token_nll(std::span<const float> logits, std::int32_t target) {
  const float most = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (const float x : logits) sum += std::exp(static_cast<double>(x) - most);
  return std::log(sum) + most - logits[static_cast<std::size_t>(target)];
}

ScoreResult score_sequences(models::Model& model, const std::vector<data::TokenSequence>& sequences,
                            const ScoreOptions& o, const std::function<void(std::uint64_t)>& on_tokens) {
  check(o.chunk > 0, "--chunk must be > 0, got ", o.chunk);
  check(o.bucket_width >= 0, "--by-position must be >= 0, got ", o.bucket_width);
  const std::size_t V = static_cast<std::size_t>(model.config().vocab_size);
  ScoreResult result;
  for (const data::TokenSequence& sequence : sequences) {
    LogitStream stream(model);
    for (std::size_t at = 0; at < sequence.size(); at += static_cast<std::size_t>(o.chunk)) {
      const std::size_t T = std::min(sequence.size() - at, static_cast<std::size_t>(o.chunk));
      const std::span<const float> logits = stream.feed({sequence.data() + at, T});
      // Row i predicts token at + i + 1; the chunk's last row predicts the next chunk's first token.
      for (std::size_t i = 0; i < T && at + i + 1 < sequence.size(); ++i) {
        const std::size_t next = at + i + 1;
        add(result, o, next, token_nll({logits.data() + i * V, V}, sequence[next]));
      }
      if (on_tokens) on_tokens(T);
    }
  }
  return result;
}

}  // namespace hax::inference
