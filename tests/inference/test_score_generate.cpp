// hax score and hax generate in the library: streaming NLL against the parallel forward's logits, greedy decoding
// against the argmax of the parallel forward, and sampling against the distribution it draws from.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "../support/model_fixtures.h"
#include "hax/engine/arena.h"
#include "hax/engine/error.h"
#include "hax/inference/generate.h"
#include "hax/inference/logit_stream.h"
#include "hax/inference/score.h"

namespace hax::inference {
namespace {

using models::Model;

// HAX (so the sparse branch streams too), perturbed so that every path carries signal.
std::unique_ptr<Model> hax_model() {
  auto model = std::make_unique<Model>(testing::tiny_config("mamba", "sign_bin_lsh+key_selection"));
  testing::perturb_parameters(*model);
  return model;
}

TEST(Score, StreamingNllEqualsTheParallelForwardsAtEveryChunkSizeAndBucket) {
  auto model = hax_model();
  const int V = model->config().vocab_size;
  const std::vector<data::TokenSequence> sequences = {testing::random_tokens(50, V, 1), testing::random_tokens(1, V, 2),
                                                      testing::random_tokens(23, V, 3)};
  // Expected: from the parallel logits of each whole sequence.
  double total = 0;
  std::map<std::size_t, double> by_bucket;
  for (const auto& s : sequences) {
    const std::vector<float> logits = testing::parallel_logits(*model, s);
    for (std::size_t t = 1; t < s.size(); ++t) {
      const double nll = token_nll({logits.data() + (t - 1) * V, std::size_t(V)}, s[t]);
      total += nll;
      by_bucket[t / 16] += nll;
    }
  }
  for (const int chunk : {1, 7, 64}) {
    const ScoreResult r = score_sequences(*model, sequences, {chunk, 16});
    EXPECT_EQ(r.tokens, 49u + 0u + 22u);
    EXPECT_NEAR(r.nll_sum, total, 1e-4 * total) << "chunk " << chunk;
    EXPECT_NEAR(r.perplexity(), std::exp(total / 71), 1e-4 * std::exp(total / 71));
    ASSERT_EQ(r.bucket_nll_sum.size(), 4u);  // positions up to 49
    EXPECT_EQ(r.bucket_tokens[0], 15u + 15u);
    for (std::size_t b = 0; b < 4; ++b) EXPECT_NEAR(r.bucket_nll_sum[b], by_bucket[b], 1e-4 * total) << b;
  }
}

TEST(Score, TokenNllIsMinusLogSoftmaxEvenForLargeLogits) {
  const std::vector<float> logits = {1000.f, 1000.f, 0.f};
  EXPECT_NEAR(token_nll(logits, 0), std::log(2.0), 1e-9);
  EXPECT_NEAR(token_nll(logits, 2), 1000 + std::log(2.0), 1e-6);
}

TEST(Score, PaperSemanticsCannotStreamAndSaysSo) {
  Model model(testing::tiny_config("mamba", "sign_bin_lsh+key_selection", ops::sparse::Semantics::paper));
  EXPECT_THROW(score_sequences(model, {{1, 2, 3}}, {}), Error);
}

TEST(Generate, GreedyFollowsTheArgmaxOfTheParallelForward) {
  auto model = hax_model();
  const int V = model->config().vocab_size;
  const std::vector<std::int32_t> prompt = testing::random_tokens(19, V, 4);
  const std::vector<std::int32_t> got = generate(*model, prompt, 12, {}, 1, 5);
  ASSERT_EQ(got.size(), 12u);
  std::vector<std::int32_t> sequence = prompt;
  for (const std::int32_t token : got) {
    const std::vector<float> logits = testing::parallel_logits(*model, sequence);
    const float* last = logits.data() + (sequence.size() - 1) * V;
    EXPECT_EQ(token, std::max_element(last, last + V) - last);
    sequence.push_back(token);
  }
  EXPECT_TRUE(generate(*model, prompt, 0, {}, 1).empty());
}

// A prompt's chunks compute the output layer for their last token only (generate's prompt path): those logits are
// the last row of a full feed's, and the state after it is the same.
TEST(Generate, LastOnlyFeedGivesTheLastRowOfAFullFeed) {
  auto model = hax_model();
  const std::size_t V = std::size_t(model->config().vocab_size);
  const std::vector<std::int32_t> tokens = testing::random_tokens(30, int(V), 8);
  LogitStream full(*model), last(*model);
  for (const auto& [at, count] : {std::pair{0, 13}, std::pair{13, 17}}) {
    const auto part = std::span<const std::int32_t>(tokens).subspan(at, count);
    const std::span<const float> every = full.feed(part);
    const std::vector<float> expected(every.end() - std::ptrdiff_t(V), every.end());
    const std::span<const float> got = last.feed(part, true);
    ASSERT_EQ(got.size(), V);
    for (std::size_t v = 0; v < V; ++v) EXPECT_NEAR(got[v], expected[v], 1e-5f * (1 + std::abs(expected[v])));
  }
  EXPECT_EQ(last.state().position, 30);
  const std::int32_t next = 3;  // and the states continue alike
  const std::span<const float> from_full = full.feed({&next, 1});
  const std::vector<float> expected(from_full.begin(), from_full.end());
  const std::span<const float> from_last = last.feed({&next, 1});
  for (std::size_t v = 0; v < V; ++v) EXPECT_EQ(from_last[v], expected[v]);
}

// The likelihood of a continuation from a prompt's stream is the sum of the parallel forward's log-softmax at its
// tokens, and scoring leaves the stream as it was: two candidates from one prefill, then the greedy continuation.
TEST(Generate, ContinuationLikelihoodIsTheParallelForwardsLogSoftmaxSum) {
  auto model = hax_model();
  const int V = model->config().vocab_size;
  const std::vector<std::int32_t> prompt = testing::random_tokens(21, V, 5), answer = testing::random_tokens(6, V, 6),
                                  foil = testing::random_tokens(6, V, 7);
  SavedStream stream = start_stream(*model);
  generate_stream(*model, stream, prompt, 0, {}, 1, 8);
  for (const auto* candidate : {&answer, &foil, &answer}) {
    std::vector<std::int32_t> sequence = prompt;
    sequence.insert(sequence.end(), candidate->begin(), candidate->end());
    const std::vector<float> logits = testing::parallel_logits(*model, sequence);
    double expected = 0;
    for (std::size_t i = 0; i < candidate->size(); ++i)
      expected -= token_nll({logits.data() + (prompt.size() - 1 + i) * V, std::size_t(V)}, (*candidate)[i]);
    EXPECT_NEAR(continuation_log_likelihood(*model, stream, *candidate), expected, 1e-4 * std::abs(expected));
  }
  EXPECT_EQ(stream.state.position, 21);
  EXPECT_EQ(generate_stream(*model, stream, {}, 9, {}, 1, 8), generate(*model, prompt, 9, {}, 1, 8));
  EXPECT_THROW(continuation_log_likelihood(*model, start_stream(*model), answer), Error);  // no prompt consumed
}

TEST(Generate, ASeedRepeatsItsDrawsAndTopOneIsGreedy) {
  auto model = hax_model();
  const std::vector<std::int32_t> prompt = testing::random_tokens(9, model->config().vocab_size, 5);
  const SamplingOptions hot{1.5, 0};
  EXPECT_EQ(generate(*model, prompt, 10, hot, 7), generate(*model, prompt, 10, hot, 7));
  EXPECT_NE(generate(*model, prompt, 10, hot, 7), generate(*model, prompt, 10, hot, 8));
  EXPECT_EQ(generate(*model, prompt, 10, {2.0, 1}, 7), generate(*model, prompt, 10, {}, 7));
}

TEST(Generate, DrawsFollowTheSoftmaxAtTheTemperatureOverTheTopK) {
  const std::vector<float> logits = {0.f, 1.f, 2.f, -1.f};
  Rng rng(3);
  const int draws = 40000;
  for (const SamplingOptions o : {SamplingOptions{1.0, 0}, SamplingOptions{0.5, 0}, SamplingOptions{1.0, 2}}) {
    std::vector<double> expected(4, 0.0);
    for (int i = 0; i < 4; ++i)
      if (o.top_k == 0 || logits[i] >= 1.f) expected[i] = std::exp(logits[i] / o.temperature);
    double sum = 0;
    for (double e : expected) sum += e;
    std::vector<int> counts(4, 0);
    for (int n = 0; n < draws; ++n) ++counts[choose_token(logits, o, rng)];
    for (int i = 0; i < 4; ++i) {
      const double p = expected[i] / sum;
      // Five standard deviations of a binomial count.
      EXPECT_NEAR(counts[i], p * draws, 5 * std::sqrt(draws * p * (1 - p)) + 1) << "T " << o.temperature << " k "
                                                                              << o.top_k << " id " << i;
    }
  }
}

TEST(Generate, BadOptionsAreErrorsNamingTheFlag) {
  auto model = hax_model();
  for (const SamplingOptions o : {SamplingOptions{-1.0, 0}, SamplingOptions{NAN, 0}, SamplingOptions{1.0, -2}}) {
    try {
      generate(*model, {{1, 2}}, 3, o, 1);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_TRUE(message.find("--temperature") != std::string::npos || message.find("--top-k") != std::string::npos)
          << message;
    }
  }
  EXPECT_THROW(generate(*model, {}, 3, {}, 1), Error);
}

}  // namespace
}  // namespace hax::inference
