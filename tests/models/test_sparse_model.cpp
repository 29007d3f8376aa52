// The Mamba model with its sparse-attention branch (reference.md §3.2-3.11), checked without an oracle: gradients
// against finite differences, parameter counts and names, the checkpoint round trip of the fixed LSH projections,
// and the properties that `causal` must have (shared/spec/semantics.md): causality, padding invariance,
// determinism. The exact comparison with PyTorch is in test_mamba_oracle.cpp; streaming in its own file.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "../support/expect_error.h"
#include "../support/model_fixtures.h"
#include "../support/test_support.h"
#include "hax/engine/rng.h"
#include "hax/models/model.h"
#include "hax/models/model_params.h"
#include "hax/ops/sparse/sparse_keys.h"
#include "hax/training/checkpoint.h"

namespace hax::models {
namespace {

using ops::sparse::Semantics;

using testing::arch_identifier;

ModelConfig sparse_config(const std::string& arch, Semantics semantics = Semantics::causal) {
  return testing::tiny_sparse_config(arch, semantics);
}

Model perturbed_model(const ModelConfig& c) {
  Model model(c);
  testing::perturb_parameters(model, 3);
  return model;
}

using testing::random_batch;

const ForwardOptions kTraining{true, 77};

struct Objective {
  double ce = 0, gate = 0;
  double total() const { return ce + kGateLossWeight * gate; }
};

Objective objective(Model& model, const TokenBatch& tb, const ForwardOptions& options = kTraining) {
  Arena arena(model.arena_floats(tb.batch, tb.batch.rows(), tb.padded_length));
  const BatchResult r = model.forward(tb, arena, options);
  return {r.loss, r.gate_loss};
}

std::vector<float> analytic_gradients(Model& model, const TokenBatch& tb) {
  Arena arena(model.arena_floats(tb.batch, tb.batch.rows(), tb.padded_length));
  model.params().zero_grad();
  model.forward(tb, arena, kTraining);
  model.backward(tb, arena);
  return {model.params().grads().begin(), model.params().grads().end()};
}

using testing::check_finite_differences;

// Patterns whose key lists depend on positions only: the objective is smooth in every parameter, so finite
// differences see exactly what backward computes.
class PositionalArchGradients : public ::testing::TestWithParam<std::tuple<std::string, Semantics>> {};

TEST_P(PositionalArchGradients, MatchFiniteDifferences) {
  const auto& [arch, semantics] = GetParam();
  Model model = perturbed_model(sparse_config(arch, semantics));
  TokenBatch tb = random_batch(model.config(), {9, 1, 21}, 5);
  tb.padded_length = 25;  // `paper` counts padding in its statistics; `causal` ignores it
  const std::vector<float> grads = analytic_gradients(model, tb);
  const int checked = check_finite_differences(
      model, grads, [&] { return objective(model, tb).total(); }, [](const std::string&) { return true; });
  EXPECT_GT(checked, 60);
}

INSTANTIATE_TEST_SUITE_P(Archs, PositionalArchGradients,
                         ::testing::Combine(::testing::Values("full", "sliding_window+sink", "sliding_window+dilated",
                                                             "dilated"),
                                            ::testing::Values(Semantics::causal, Semantics::paper)),
                         [](const auto& info) {
                           return arch_identifier(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) == Semantics::paper ? "_paper" : "_causal");
                         });

// The key scorer learns from the gate loss alone (its inputs and the key selection are not differentiable): its
// gradient is kGateLossWeight times the gate loss's.
TEST(SparseModel, ScorerGradientIsTheGateLossGradient) {
  for (Semantics semantics : {Semantics::causal, Semantics::paper}) {
    Model model = perturbed_model(sparse_config("sign_bin_lsh+key_selection", semantics));
    TokenBatch tb = random_batch(model.config(), {13, 3, 30}, 8);
    tb.padded_length = 32;
    const std::vector<float> grads = analytic_gradients(model, tb);
    const int checked = check_finite_differences(
        model, grads, [&] { return kGateLossWeight * objective(model, tb).gate; },
        [](const std::string& name) { return name.find("dx_proj") != std::string::npos; });
    EXPECT_GT(checked, 20);
  }
}

TEST(SparseModel, GateLossOnlyInTrainingWithKeySelection) {
  Model hax = perturbed_model(sparse_config("sign_bin_lsh+key_selection"));
  const TokenBatch tb = random_batch(hax.config(), {12, 20}, 2);
  EXPECT_GT(objective(hax, tb).gate, 0.0);
  EXPECT_EQ(objective(hax, tb, {false, 77}).gate, 0.0);
  Model lsh = perturbed_model(sparse_config("sign_bin_lsh"));
  EXPECT_EQ(objective(lsh, tb).gate, 0.0);
  // Candidates: budget-many distinct real positions per sequence (fewer only when the sequence is shorter).
  objective(hax, tb);
  for (int l = 0; l < 2; ++l)
    for (int q = 0; q < 2; ++q) {
      std::vector<std::int32_t> c = hax.gate_candidates(l)[q];
      EXPECT_EQ(c.size(), 4u);
      std::sort(c.begin(), c.end());
      EXPECT_EQ(std::unique(c.begin(), c.end()), c.end());
      for (std::int32_t s : c) EXPECT_LT(s, tb.batch.length(q));
    }
}

// reference.md §6 / paper Table: Mamba with a fixed pattern 82,368 parameters, with key selection 86,658. The LSH
// projection is a buffer, not a parameter.
TEST(SparseModel, ParameterCountsMatchThePaper) {
  ModelConfig c = ModelConfig::load(cat(HAX_SOURCE_DIR, "/configs/mamba.json"));
  const std::pair<const char*, std::size_t> expected[] = {{"sliding_window", 82368},
                                                          {"sign_bin_lsh", 82368},
                                                          {"key_selection", 86658},
                                                          {"sign_bin_lsh+key_selection", 86658}};
  for (const auto& [arch, count] : expected) {
    c.sparse_arch = arch;
    EXPECT_EQ(Model(c).params().num_parameters(), count) << arch;
  }
  c.sparse_arch = "sign_bin_lsh+key_selection";
  Model model(c);
  EXPECT_EQ(shape_string(model.params().info("layers.0.mixer.xx_proj.weight").shape), "(32, 128)");
  EXPECT_EQ(shape_string(model.params().info("layers.1.mixer.E").shape), "(128,)");
  EXPECT_EQ(shape_string(model.params().info("layers.0.mixer.dx_proj_1.weight").shape), "(32, 32)");
  EXPECT_EQ(shape_string(model.params().info("layers.0.mixer.dx_proj_3.weight").shape), "(1, 32)");
  EXPECT_EQ(shape_string(model.buffers().info("layers.1.mixer.lsh_projection").shape), "(16, 8)");
  for (float e : model.params().param("layers.0.mixer.E")) EXPECT_EQ(e, 1.0f);  // reference.md §3.11: E = 1
}

TEST(SparseModel, CheckpointKeepsTheLshProjections) {
  const testing::ScratchDir dir;
  Model model = perturbed_model(sparse_config("sign_bin_lsh+key_selection"));
  training::save_model(dir / "ckpt", model);
  const auto loaded = training::load_model(dir / "ckpt");
  const auto a = model.buffers().params(), b = loaded->buffers().params();
  ASSERT_EQ(a.size(), b.size());
  EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin()));
  const TokenBatch tb = random_batch(model.config(), {17}, 4);
  EXPECT_EQ(objective(model, tb, {}).ce, objective(*loaded, tb, {}).ce);
}

std::vector<float> logits_of(Model& model, const TokenBatch& tb, const ForwardOptions& options = {}) {
  Arena arena(model.arena_floats(tb.batch, 0, tb.padded_length));
  std::vector<float> out(std::size_t(tb.batch.rows()) * model.config().vocab_size);
  model.logits(out.data(), tb.inputs, tb.batch, arena, options, tb.padded_length);
  return out;
}

class CausalProperties : public ::testing::TestWithParam<testing::BaseArch> {};

ModelConfig property_config(const testing::BaseArch& case_) { return testing::tiny_config(case_.first, case_.second); }

// Property 1: changing a token after position t changes no output at positions <= t.
TEST_P(CausalProperties, LaterTokensDoNotChangeEarlierOutputs) {
  Model model = perturbed_model(property_config(GetParam()));
  const int V = model.config().vocab_size, T = 40, changed_at = 23;
  const TokenBatch a = random_batch(model.config(), {T}, 6);
  TokenBatch b = a;
  for (int t = changed_at; t < T; ++t) b.inputs[t] = (b.inputs[t] + 1 + t) % V;
  const std::vector<float> la = logits_of(model, a), lb = logits_of(model, b);
  for (int i = 0; i < changed_at * V; ++i) ASSERT_EQ(la[i], lb[i]) << "row " << i / V;
  EXPECT_NE(std::vector<float>(la.begin() + changed_at * V, la.end()),
            std::vector<float>(lb.begin() + changed_at * V, lb.end()));
}

// Property 2: a sequence padded to two lengths, or batched beside a longer one, gives the same real outputs.
TEST_P(CausalProperties, PaddingAndBatchmatesChangeNothing) {
  Model model = perturbed_model(property_config(GetParam()));
  const int V = model.config().vocab_size;
  const TokenBatch both = random_batch(model.config(), {19, 37}, 7);
  TokenBatch alone;
  alone.batch.add_sequence(19);
  alone.inputs.assign(both.inputs.begin(), both.inputs.begin() + 19);
  TokenBatch padded = alone;
  padded.padded_length = 64;
  const std::vector<float> l_both = logits_of(model, both), l_alone = logits_of(model, alone),
                           l_padded = logits_of(model, padded);
  // Padding is never materialized under `causal`: bit for bit. A batchmate changes the GEMMs' row blocking, so
  // only the last bits may move.
  for (int i = 0; i < 19 * V; ++i) {
    ASSERT_EQ(l_alone[i], l_padded[i]) << "row " << i / V;
    ASSERT_NEAR(l_alone[i], l_both[i], 1e-5f * std::max(1.0f, std::abs(l_alone[i]))) << "row " << i / V;
  }
}

// Property 4: evaluation and training forwards repeat exactly (same seed, same thread count).
TEST_P(CausalProperties, RunsRepeatExactly) {
  Model model = perturbed_model(property_config(GetParam()));
  const TokenBatch tb = random_batch(model.config(), {25, 8, 31}, 9);
  EXPECT_EQ(logits_of(model, tb), logits_of(model, tb));
  const std::vector<float> g1 = analytic_gradients(model, tb), g2 = analytic_gradients(model, tb);
  EXPECT_EQ(g1, g2);
  Model twin = perturbed_model(property_config(GetParam()));
  EXPECT_EQ(logits_of(model, tb), logits_of(twin, tb));
}

INSTANTIATE_TEST_SUITE_P(Models, CausalProperties, ::testing::ValuesIn(testing::all_base_archs()),
                         [](const auto& info) { return testing::base_arch_identifier(info.param); });

// Under `paper` the reference's whole-sequence statistics make padding matter: the same sequence padded to two
// lengths gets different LSH buckets, so the outputs differ (the quirk that `causal` removes).
TEST(SparseModel, PaperSemanticsCountsPadding) {
  Model model = perturbed_model(sparse_config("sign_bin_lsh", Semantics::paper));
  TokenBatch short_pad = random_batch(model.config(), {30}, 12), long_pad = short_pad;
  short_pad.padded_length = 30;
  long_pad.padded_length = 200;
  EXPECT_NE(logits_of(model, short_pad), logits_of(model, long_pad));
}

TEST(SparseModel, LshResamplingFollowsTheConfig) {
  ModelConfig c = sparse_config("sign_bin_lsh");
  const TokenBatch tb = random_batch(c, {40}, 13);
  Model fixed = perturbed_model(c);
  EXPECT_EQ(logits_of(fixed, tb, {false, 1}), logits_of(fixed, tb, {false, 2}));
  c.lsh_resample = "every_forward";
  Model fresh = perturbed_model(c);
  EXPECT_NE(logits_of(fresh, tb, {false, 1}), logits_of(fresh, tb, {false, 2}));
  EXPECT_EQ(logits_of(fresh, tb, {false, 1}), logits_of(fresh, tb, {false, 1}));
}

// Each ingredient of `paper` that an ablation can turn off changes the training objective on its own (the oracle
// checks what it changes to: test_oracle.cpp). The uniform fallback needs queries with no key, which key selection
// never leaves (a query always ranks among its own prefix), so it is checked on LSH alone. The gate targets' padding
// adds the same 0.5 per padded query to every real candidate, which changes no ranking; it matters only through the
// padded positions ranked when a sequence is shorter than the budget, as the 2-token one here.
class PaperIngredient : public ::testing::TestWithParam<std::string> {};

std::string ingredient_arch(const std::string& ingredient) {
  return ingredient == "uniform_fallback" ? "sign_bin_lsh" : "sign_bin_lsh+key_selection";
}

TEST_P(PaperIngredient, TurningItOffChangesTheObjective) {
  ModelConfig c = sparse_config(ingredient_arch(GetParam()), Semantics::paper);
  TokenBatch tb = random_batch(c, {30, 2, 19}, 21);
  tb.padded_length = 40;
  Model full = perturbed_model(c);
  c.paper_without = {GetParam()};
  Model ablated = perturbed_model(c);
  ASSERT_EQ(std::vector<float>(full.params().params().begin(), full.params().params().end()),
            std::vector<float>(ablated.params().params().begin(), ablated.params().params().end()));
  EXPECT_NE(objective(full, tb).total(), objective(ablated, tb).total());
}

INSTANTIATE_TEST_SUITE_P(Ingredients, PaperIngredient, ::testing::ValuesIn(ops::sparse::PaperIngredients::names()));

TEST(SparseModel, PaperWithoutEveryIngredientEqualsCausalOnOneUnpaddedSequence) {
  // One sequence at its own length has no padding: with every ingredient off, `paper` computes what `causal` does.
  ModelConfig c = sparse_config("sign_bin_lsh+key_selection", Semantics::paper);
  c.paper_without = ops::sparse::PaperIngredients::names();
  const TokenBatch tb = random_batch(c, {37}, 22);
  Model ablated = perturbed_model(c);
  c.semantics = Semantics::causal;
  c.paper_without.clear();
  Model causal = perturbed_model(c);
  const Objective a = objective(ablated, tb), b = objective(causal, tb);
  EXPECT_NEAR(a.ce, b.ce, 1e-6 * std::abs(b.ce));
  EXPECT_NEAR(a.gate, b.gate, 1e-6 * std::abs(b.gate) + 1e-9);
}

// A pattern set with the sliding window always holds the query's own key: no row is empty, and it has no LSH or
// key-selection statistics, so nothing that differs between the semantics applies and training gives the same bits
// under both (what the joint-recall pilot's SW runs showed over 10k updates). This is why the results page can
// say that the `causal` rows of these patterns repeat the `paper` ones. Dilated alone is the counter-example: its
// first queries have no key (uniform over all positions under `paper`, zero under `causal`).
// SparseArch::semantics_invariant() is what lets an experiment measure such an arch once for both semantics
// (training/experiment.h, "same_under_both_semantics"), so it must hold exactly: same objective and gradients bit
// for bit under `paper` and `causal` on a padded batch where it says so, and a difference where it does not.
TEST(SparseModel, SemanticsInvariantArchsComputeTheSameBitsUnderBothSemantics) {
  for (const char* arch : {"sliding_window", "sliding_window+sink", "sliding_window+dilated", "sink", "full",
                           "sink+dilated", "dilated", "sign_bin_lsh", "argmax_lsh", "key_selection",
                           "sliding_window+key_selection", "sliding_window+sign_bin_lsh"}) {
    SCOPED_TRACE(arch);
    std::vector<float> gradients[2];
    Objective objectives[2];
    for (Semantics semantics : {Semantics::paper, Semantics::causal}) {
      ModelConfig c = sparse_config(arch, semantics);
      TokenBatch tb = random_batch(c, {37, 21, 30}, 23);
      tb.padded_length = 40;  // `paper` lays the branch out at the padded length
      Model model = perturbed_model(c);
      const int i = semantics == Semantics::paper ? 0 : 1;
      objectives[i] = objective(model, tb);
      gradients[i] = analytic_gradients(model, tb);
    }
    const bool same = objectives[0].ce == objectives[1].ce && objectives[0].gate == objectives[1].gate &&
                      gradients[0] == gradients[1];
    EXPECT_EQ(same, hax::ops::sparse::parse_sparse_arch(arch).semantics_invariant())
        << objectives[0].ce << " vs " << objectives[1].ce;
  }
}

TEST(SparseModel, PaperWithoutIsCheckedAndRoundTrips) {
  ModelConfig c = sparse_config("sign_bin_lsh+key_selection", Semantics::paper);
  c.paper_without = {"lsh_statistics", "gate_padding"};
  const ModelConfig back = ModelConfig::from_json(c.to_json(), "test");
  EXPECT_EQ(back.paper_without, c.paper_without);
  EXPECT_FALSE(back.paper_ingredients().lsh_statistics);
  EXPECT_TRUE(back.paper_ingredients().ks_normalization);
  auto j = c.to_json();
  j["hax_paper_without"] = {"lsh_stats"};
  testing::expect_error_naming([&] { ModelConfig::from_json(j, "cfg.json"); }, {"cfg.json", "lsh_stats", "lsh_statistics"});
  j["hax_paper_without"] = "lsh_statistics";
  testing::expect_error_naming([&] { ModelConfig::from_json(j, "cfg.json"); }, {"hax_paper_without", "list of strings"});
  j["hax_paper_without"] = {"lsh_statistics"};
  j["hax_semantics"] = "causal";
  testing::expect_error_naming([&] { ModelConfig::from_json(j, "cfg.json"); }, {"hax_paper_without", "causal"});
}

// The running statistics (causal options): each changes what the model computes, round-trips through the config,
// and is refused with an unknown value or under `paper`.
TEST(SparseModel, RunningStatisticsAreCausalOptionsThatChangeTheModel) {
  for (const char* key : {"hax_lsh_statistics", "hax_ks_normalization"}) {
    const bool lsh = std::string(key) == "hax_lsh_statistics";
    ModelConfig c = sparse_config(lsh ? "sign_bin_lsh" : "key_selection");
    const TokenBatch tb = random_batch(c, {40}, 23);
    Model plain = perturbed_model(c);
    (lsh ? c.lsh_statistics : c.ks_normalization) = "running";
    Model running = perturbed_model(c);
    EXPECT_NE(logits_of(plain, tb), logits_of(running, tb)) << key;
    const ModelConfig back = ModelConfig::from_json(c.to_json(), "test");
    EXPECT_EQ(lsh ? back.lsh_statistics : back.ks_normalization, "running") << key;
    auto j = c.to_json();
    j[key] = "prefix";
    testing::expect_error_naming([&] { ModelConfig::from_json(j, "cfg.json"); }, {"cfg.json", key, "prefix", "running"});
    j[key] = "running";
    j["hax_semantics"] = "paper";
    testing::expect_error_naming([&] { ModelConfig::from_json(j, "cfg.json"); }, {key, "causal", "--paper-without"});
  }
}

TEST(SparseModel, ConfigRoundTripsAndRejectsBadFields) {
  ModelConfig c = sparse_config("sign_bin_lsh+key_selection", Semantics::paper);
  const ModelConfig back = ModelConfig::from_json(c.to_json(), "test");
  EXPECT_EQ(back.sparse_arch, c.sparse_arch);
  EXPECT_EQ(back.sparse_keys, 8);
  EXPECT_EQ(back.num_hash, 3);
  EXPECT_EQ(back.data_max_length, 32);
  EXPECT_EQ(back.semantics, Semantics::paper);
  EXPECT_EQ(back.lsh_resample_mode(), "never");
  auto j = c.to_json();
  j["sparse_arch"] = "sliding_window+lsh";
  EXPECT_THROW(
      {
        try {
          ModelConfig::from_json(j, "cfg.json");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
          EXPECT_NE(std::string(e.what()).find("lsh"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  j = c.to_json();
  j["hax_semantics"] = "acausal";
  EXPECT_THROW(ModelConfig::from_json(j, "cfg.json"), Error);
}

}  // namespace
}  // namespace hax::models
