// Continuing a prompt by streaming inference: the prompt is prefilled in chunks, then each new token is chosen from
// the logits of the one before (greedy, or drawn from the softmax at a temperature over the top k) and decoded.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "hax/engine/rng.h"
#include "hax/inference/state_file.h"
#include "hax/models/model.h"

namespace hax::inference {

struct SamplingOptions {
  double temperature = 0;  // 0: greedy (the most likely token; the lowest id on a tie)
  int top_k = 0;           // > 0: draw among the k most likely tokens only (0: all)
};

// hax::Error for a negative or non-finite temperature or a negative top_k.
void validate(const SamplingOptions& options);

// The next token after `logits` (V).
std::int32_t choose_token(std::span<const float> logits, const SamplingOptions& options, Rng& rng);

// The `max_new` tokens after `prompt` (at least one token); `on_token` sees each as it is chosen. The draws come from
// Rng(seed), so a seed repeats its continuation. hax::Error for a model that cannot stream.
std::vector<std::int32_t> generate(models::Model& model, std::span<const std::int32_t> prompt, int max_new,
                                   const SamplingOptions& options, std::uint64_t seed, int chunk = 4096,
                                   const std::function<void(std::int32_t)>& on_token = {});

// The same continuing `stream` (start_stream() for a new sequence): `prompt` is appended to it (it may be empty
// when the stream has consumed tokens: the first new token is then drawn from its next_logits), the draws come
// from the stream's generator when it has one (saved by an earlier generate) and from Rng(seed) otherwise.
// Afterwards the stream has consumed the prompt and every new token (the last one too, which costs one more
// decoding step) and holds the logits of the next token and the generator: saved and loaded, it continues with
// the tokens, logits and draws of a run that never stopped.
std::vector<std::int32_t> generate_stream(models::Model& model, SavedStream& stream,
                                          std::span<const std::int32_t> prompt, int max_new,
                                          const SamplingOptions& options, std::uint64_t seed, int chunk = 4096,
                                          const std::function<void(std::int32_t)>& on_token = {});

// The log-likelihood (natural log) of `tokens` continuing `from` (a stream that has consumed a prompt, with its
// next_logits), teacher-forced: the sum over the tokens of log softmax(logits)[token]. `from` is left as it was (the
// state is copied), so several continuations of one prompt share its prefill.
double continuation_log_likelihood(models::Model& model, const SavedStream& from,
                                   std::span<const std::int32_t> tokens);

}  // namespace hax::inference
