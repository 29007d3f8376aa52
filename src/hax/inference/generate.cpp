#include "hax/inference/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "hax/engine/error.h"
#include "hax/inference/logit_stream.h"
#include "hax/inference/score.h"

namespace hax::inference {

void validate(const SamplingOptions& o) {
  check(std::isfinite(o.temperature) && o.temperature >= 0, "--temperature must be a finite number >= 0, got ",
        o.temperature);
  check(o.top_k >= 0, "--top-k must be >= 0, got ", o.top_k);
}

std::int32_t choose_token(std::span<const float> logits, const SamplingOptions& o, Rng& rng) {
  const auto most_likely = std::max_element(logits.begin(), logits.end());  // the first of equal maxima
  if (o.temperature == 0) return static_cast<std::int32_t>(most_likely - logits.begin());
  // Candidates: every id, or the k with the highest logits (ties to the lower id). The draw below is over a set, so
  // its order does not matter: nth_element is enough, and without --top-k nothing is sorted at all.
  std::vector<std::int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  const std::size_t k = o.top_k > 0 ? std::min<std::size_t>(o.top_k, ids.size()) : ids.size();
  if (k < ids.size()) {
    const auto ranks_higher = [&](std::int32_t a, std::int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    };
    std::nth_element(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k - 1), ids.end(), ranks_higher);
  }
  std::vector<double> weights(k);
  for (std::size_t i = 0; i < k; ++i)
    weights[i] = std::exp((static_cast<double>(logits[ids[i]]) - *most_likely) / o.temperature);
  double u = rng.uniform_double() * std::accumulate(weights.begin(), weights.end(), 0.0);
  for (std::size_t i = 0; i < k; ++i) {
    if (u < weights[i]) return ids[i];
    u -= weights[i];
  }
  return ids[k - 1];  // u landed on the total by rounding
}

namespace {

std::vector<std::int32_t> run(models::Model& model, SavedStream& saved, std::span<const std::int32_t> prompt,
                              int max_new, const SamplingOptions& o, std::uint64_t seed, int chunk,
                              const std::function<void(std::int32_t)>& on_token, bool feed_last) {
  validate(o);
  check(!prompt.empty() || !saved.next_logits.empty(), "the prompt must hold at least one token");
  check(max_new >= 0, "--max-new must be >= 0, got ", max_new);
  check(chunk > 0, "--chunk must be > 0, got ", chunk);
  const std::size_t V = static_cast<std::size_t>(model.config().vocab_size);
  LogitStream stream(model, std::move(saved.state));
  std::span<const float> logits = saved.next_logits;
  // Only the prompt's last token's logits are used: the output layer runs for it alone.
  for (std::size_t at = 0; at < prompt.size(); at += static_cast<std::size_t>(chunk))
    logits = stream.feed(prompt.subspan(at, std::min(prompt.size() - at, static_cast<std::size_t>(chunk))), true);
  Rng rng = saved.rng ? Rng(*saved.rng) : Rng(seed);
  std::vector<std::int32_t> tokens;
  for (int i = 0; i < max_new; ++i) {
    // The last row of what was fed last is the next token's distribution.
    const std::int32_t token = choose_token(logits.last(V), o, rng);
    tokens.push_back(token);
    if (on_token) on_token(token);
    if (i + 1 < max_new || feed_last) logits = stream.feed({&token, 1});
  }
  if (feed_last) {
    std::vector<float> next(logits.end() - static_cast<std::ptrdiff_t>(V), logits.end());
    saved.next_logits = std::move(next);
    saved.rng = rng.state();
  }
  saved.state = stream.take_state();
  return tokens;
}

}  // namespace

std::vector<std::int32_t> generate(models::Model& model, std::span<const std::int32_t> prompt, int max_new,
                                   const SamplingOptions& o, std::uint64_t seed, int chunk,
                                   const std::function<void(std::int32_t)>& on_token) {
  SavedStream stream = start_stream(model);
  return run(model, stream, prompt, max_new, o, seed, chunk, on_token, false);
}

double continuation_log_likelihood(models::Model& model, const SavedStream& from,
                                   std::span<const std::int32_t> tokens) {
  check(!from.next_logits.empty(), "a continuation's likelihood needs a stream that has consumed its prompt");
  const std::size_t V = static_cast<std::size_t>(model.config().vocab_size);
  LogitStream stream(model, models::ModelState(from.state));
  std::span<const float> logits = from.next_logits;
  double sum = 0;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::span<const float> row = logits.last(V);
    check(tokens[i] >= 0 && static_cast<std::size_t>(tokens[i]) < V, "token ", tokens[i], " is outside the vocabulary");
    sum -= token_nll(row, tokens[i]);
    if (i + 1 < tokens.size()) logits = stream.feed(tokens.subspan(i, 1));
  }
  return sum;
}

std::vector<std::int32_t> generate_stream(models::Model& model, SavedStream& stream,
                                          std::span<const std::int32_t> prompt, int max_new,
                                          const SamplingOptions& o, std::uint64_t seed, int chunk,
                                          const std::function<void(std::int32_t)>& on_token) {
  return run(model, stream, prompt, max_new, o, seed, chunk, on_token, true);
}

}  // namespace hax::inference
