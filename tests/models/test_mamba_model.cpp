// Model-level checks that need no oracle: gradients against finite differences (fp32, so loose but meaningful),
// padding-free packing, and causality. The exact comparison with PyTorch is in test_mamba_oracle.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "../support/model_fixtures.h"
#include "hax/engine/rng.h"
#include "hax/models/model.h"

namespace hax::models {
namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 23;
  c.hidden_size = 10;
  c.intermediate_size = 14;
  c.state_size = 5;
  c.time_step_rank = 3;
  c.conv_kernel = 4;
  c.num_hidden_layers = 2;
  c.seed = 11;
  return c;
}

using testing::random_batch;

double loss_of(Model& model, const TokenBatch& tb) {
  Arena arena(model.arena_floats(tb.batch, tb.batch.rows()));
  return model.forward(tb, arena).loss;
}

TEST(Model, GradientsMatchFiniteDifferences) {
  Model model(tiny_config());
  // Move A_log, D and the biases off their initial constants so every path carries gradient.
  Rng rng(3);
  for (const auto& t : model.params().tensors())
    for (float& v : model.params().param(t.name)) v += 0.05f * static_cast<float>(rng.normal());
  const TokenBatch tb = random_batch(model.config(), {9, 1, 17}, 5);
  const std::vector<float> grads = testing::batch_gradients(model, tb);
  const int checked = testing::check_finite_differences(
      model, grads, [&] { return loss_of(model, tb); }, [](const std::string&) { return true; }, 4);
  EXPECT_GT(checked, 50);
}

TEST(Model, SequencesInABatchDoNotInteract) {
  Model model(tiny_config());
  const TokenBatch both = random_batch(model.config(), {12, 7}, 9);
  TokenBatch first;
  first.batch.add_sequence(12);
  first.inputs.assign(both.inputs.begin(), both.inputs.begin() + 12);
  std::vector<float> all(19 * 23), alone(12 * 23);
  Arena arena(model.arena_floats(both.batch, 19));
  model.logits(all.data(), both.inputs, both.batch, arena);
  model.logits(alone.data(), first.inputs, first.batch, arena);
  for (std::size_t i = 0; i < alone.size(); ++i) ASSERT_FLOAT_EQ(all[i], alone[i]) << i;
}

TEST(Model, OutputsAreCausal) {
  Model model(tiny_config());
  TokenBatch a = random_batch(model.config(), {15}, 2), b = a;
  b.inputs[10] = (b.inputs[10] + 1) % 23;
  std::vector<float> la(15 * 23), lb(15 * 23);
  Arena arena(model.arena_floats(a.batch, 15));
  model.logits(la.data(), a.inputs, a.batch, arena);
  model.logits(lb.data(), b.inputs, b.batch, arena);
  for (int i = 0; i < 10 * 23; ++i) ASSERT_EQ(la[i], lb[i]) << i;
  bool changed = false;
  for (int i = 10 * 23; i < 15 * 23; ++i) changed |= la[i] != lb[i];
  EXPECT_TRUE(changed);
}

}  // namespace
}  // namespace hax::models
