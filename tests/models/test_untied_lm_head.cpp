// The untied output layer (config "hax_untied_lm_head", a Hugging Face checkpoint with tie_word_embeddings false):
// lm_head.weight is a parameter of its own, used by the parallel forward, the backward and streaming inference; the
// tied default is unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "../support/model_fixtures.h"
#include "hax/models/model.h"
#include "hax/models/model_params.h"

namespace hax::models {
namespace {

using testing::random_batch;

ModelConfig untied(ModelConfig c) {
  c.untied_lm_head = true;
  return c;
}

double loss_of(Model& model, const TokenBatch& tb) {
  Arena arena(model.arena_floats(tb.batch, tb.batch.rows()));
  return model.forward(tb, arena).loss;
}

TEST(UntiedLmHead, TiedByDefaultAndOnlyTheSwitchAddsTheTensor) {
  const ModelConfig tied = testing::tiny_mamba_config();
  EXPECT_FALSE(Model(tied).params().contains(kLmHeadName));
  EXPECT_FALSE(tied.to_json().contains("hax_untied_lm_head"));
  const Model model(untied(tied));
  ASSERT_TRUE(model.params().contains(kLmHeadName));
  EXPECT_EQ(model.params().info(kLmHeadName).shape,
            (std::vector<std::int64_t>{tied.vocab_size, tied.hidden_size}));
  const ModelConfig back = ModelConfig::from_json(model.config().to_json(), "test");
  EXPECT_TRUE(back.untied_lm_head);
  // Appended last: every other tensor keeps its initialization.
  const Model plain(tied);
  for (const auto& t : plain.params().tensors()) {
    const auto a = plain.params().param(t.name), b = model.params().param(t.name);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin())) << t.name;
  }
}

TEST(UntiedLmHead, EqualToTheEmbeddingGivesTheTiedLogitsAndOtherwiseItsOwn) {
  for (const std::string base : {"mamba", "mamba2"}) {
    const ModelConfig c = testing::tiny_config(base);
    Model tied(c), separate(untied(c));
    const auto E = tied.params().param(kEmbeddingsName);
    std::copy(tied.params().params().begin(), tied.params().params().end(), separate.params().params().begin());
    std::copy(E.begin(), E.end(), separate.params().param(kLmHeadName).begin());
    const auto tokens = testing::random_tokens(12, c.vocab_size, 3);
    EXPECT_EQ(testing::parallel_logits(tied, tokens), testing::parallel_logits(separate, tokens)) << base;
    separate.params().param(kLmHeadName)[5] += 1.0f;  // row 0, column 5: the logit of token 0 moves
    const auto moved = testing::parallel_logits(separate, tokens), same = testing::parallel_logits(tied, tokens);
    EXPECT_NE(moved[0], same[0]) << base;
    EXPECT_EQ(moved[1], same[1]) << base;
  }
}

TEST(UntiedLmHead, GradientsMatchFiniteDifferences) {
  Model model(untied(testing::tiny_mamba_config()));
  testing::perturb_parameters(model);
  const TokenBatch tb = random_batch(model.config(), {7, 11}, 5);
  const std::vector<float> grads = testing::batch_gradients(model, tb);
  // The output layer's gradient lands in lm_head.weight; the embedding's is its lookup's alone.
  const int checked = testing::check_finite_differences(
      model, grads, [&] { return loss_of(model, tb); },
      [](const std::string& name) { return name == kLmHeadName || name == kEmbeddingsName; }, 12);
  EXPECT_GE(checked, 24);
  const auto dW = model.params().grad(kLmHeadName);
  EXPECT_GT(std::count_if(dW.begin(), dW.end(), [](float g) { return g != 0.0f; }), 0);
}

TEST(UntiedLmHead, StreamingMatchesTheParallelForward) {
  for (const std::string base : {"mamba", "mamba2"}) {
    Model model(untied(testing::tiny_config(base)));
    testing::perturb_parameters(model);
    const auto tokens = testing::random_tokens(10, model.config().vocab_size, 9);
    const auto parallel = testing::parallel_logits(model, tokens);
    ModelState state = model.start_state();
    std::vector<float> streamed = model.prefill(state, std::span(tokens).first(6));
    for (std::size_t t = 6; t < tokens.size(); ++t) {
      const auto next = model.decode(state, tokens[t]);
      streamed.insert(streamed.end(), next.begin(), next.end());
    }
    ASSERT_EQ(streamed.size(), parallel.size());
    for (std::size_t i = 0; i < parallel.size(); ++i)
      ASSERT_NEAR(streamed[i], parallel[i], 1e-4f * (1.0f + std::abs(parallel[i]))) << base << " at " << i;
  }
}

}  // namespace
}  // namespace hax::models
