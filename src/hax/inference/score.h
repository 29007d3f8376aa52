// Scoring token sequences by streaming inference: the negative log-likelihood of every token after a sequence's
// first, from the logits of the tokens before it, computed chunk by chunk from an empty state (Model::prefill), so
// the logits of a whole input are never held: memory is one chunk's logits plus the model's state.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/data/tokens_file.h"
#include "hax/inference/state_file.h"
#include "hax/models/model.h"

namespace hax::inference {

struct ScoreOptions {
  int chunk = 4096;       // tokens per prefill step
  int bucket_width = 0;   // > 0: also the NLL per bucket of positions [0, w), [w, 2w), ... (0: no buckets)
};

// NLL sums in nats. Token t of a sequence (0-based, t >= 1) counts in bucket t / bucket_width.
struct ScoreResult {
  double nll_sum = 0;
  std::uint64_t tokens = 0;  // tokens scored: each sequence's length - 1
  std::vector<double> bucket_nll_sum;
  std::vector<std::uint64_t> bucket_tokens;

  double mean_nll() const { return tokens ? nll_sum / static_cast<double>(tokens) : 0.0; }
  double bucket_mean_nll(std::size_t b) const {
    return bucket_tokens[b] ? bucket_nll_sum[b] / static_cast<double>(bucket_tokens[b]) : 0.0;
  }
  double perplexity() const;
};

// Each sequence from an empty state (hax::Error for a model that cannot stream: `paper` semantics with a sparse
// arch). `on_tokens(n)` is called after each chunk with the tokens it consumed, for progress.
ScoreResult score_sequences(models::Model& model, const std::vector<data::TokenSequence>& sequences,
                            const ScoreOptions& options, const std::function<void(std::uint64_t)>& on_tokens = {});

// One sequence continuing `stream` (start_stream() for a new one), which afterwards holds the state after
// `tokens` (what --save-state writes). Each token is scored by the logits of the one before it: the first by the
// stream's next_logits when it has consumed tokens already (so scoring A, then B from A's stream, scores every
// token of A + B but A's first, the same as scoring A + B). Bucket positions count from the stream's start.
ScoreResult score_stream(models::Model& model, SavedStream& stream, std::span<const std::int32_t> tokens,
                         const ScoreOptions& options, const std::function<void(std::uint64_t)>& on_tokens = {});

// The per-bucket figures as JSON (what `hax score --json` and `hax lm eval` write): one object per bucket with its
// first and last position, tokens and mean NLL (null for an empty bucket).
nlohmann::json by_position_json(const ScoreResult& result, int bucket_width);

// -log softmax(logits)[target], in double.
double token_nll(std::span<const float> logits, std::int32_t target);

}  // namespace hax::inference
