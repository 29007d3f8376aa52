// The three base models (config.json "model_type": mamba, mamba2, samba): parameter names, shapes, counts and
// initialization as the reference (reference.md §4.2, §4.5, §5.3, §6), and whole-model gradients against finite
// differences. The exact comparison with PyTorch is in test_mamba_oracle.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "../support/expect_error.h"
#include "../support/model_fixtures.h"
#include "hax/models/config.h"
#include "hax/models/model.h"
#include "hax/models/model_params.h"

namespace hax::models {
namespace {

using ops::sparse::Semantics;

ModelConfig load_config(const char* name) { return ModelConfig::load(cat(HAX_SOURCE_DIR, "/configs/", name)); }

std::size_t count_of(ModelConfig c, const std::string& arch = "") {
  c.sparse_arch = arch;
  ParamStore s;
  declare_parameters(s, c);
  return s.num_parameters();
}

TEST(ModelTypes, ParameterCountsMatchTheReferenceTable) {
  const ModelConfig m2 = load_config("mamba2.json");
  EXPECT_EQ(count_of(m2), 67184u);
  for (const char* arch : {"sliding_window", "dilated", "sliding_window+dilated", "sliding_window+sink",
                           "sign_bin_lsh", "full"})
    EXPECT_EQ(count_of(m2, arch), 83824u) << arch;
  EXPECT_EQ(count_of(m2, "key_selection"), 100594u);
  EXPECT_EQ(count_of(m2, "sign_bin_lsh+key_selection"), 100594u);
  EXPECT_EQ(count_of(load_config("mamba2_double_size.json")), 231984u);
  EXPECT_EQ(count_of(load_config("samba.json")), 131360u);
}

TEST(ModelTypes, NamesAndShapesFollowTheReferenceModels) {
  ParamStore m2;
  declare_parameters(m2, load_config("mamba2.json"));
  EXPECT_EQ(shape_string(m2.info("layers.0.mixer.in_proj.weight").shape), "(328, 64)");
  EXPECT_EQ(shape_string(m2.info("layers.0.mixer.conv1d.weight").shape), "(192, 1, 4)");
  EXPECT_EQ(shape_string(m2.info("layers.1.mixer.dt_bias").shape), "(8,)");
  EXPECT_EQ(shape_string(m2.info("layers.1.mixer.A_log").shape), "(8,)");
  EXPECT_EQ(shape_string(m2.info("layers.1.mixer.norm.weight").shape), "(128,)");
  ParamStore samba;
  const ModelConfig sc = load_config("samba.json");
  declare_parameters(samba, sc);
  EXPECT_EQ(sc.mlp_intermediate_size(), 256);
  EXPECT_TRUE(samba.contains("layers.0.mixer.x_proj.weight"));
  EXPECT_TRUE(samba.contains("layers.1.mixer.q_proj.weight"));
  EXPECT_FALSE(samba.contains("layers.1.mixer.x_proj.weight"));
  EXPECT_EQ(shape_string(samba.info("layers.3.mlp.down_proj.weight").shape), "(32, 256)");
  EXPECT_TRUE(samba.contains("layers.2.mixer_norm.weight"));
  EXPECT_TRUE(samba.contains("layers.2.mlp_norm.weight"));
}

TEST(ModelTypes, Mamba2InitializationFollowsTheReference) {
  const ModelConfig c = load_config("mamba2_double_size.json");
  ParamStore s;
  declare_parameters(s, c);
  s.allocate();
  init_parameters(s, c);
  auto a_log = s.param("layers.0.mixer.A_log");
  for (int h = 0; h < 8; ++h) EXPECT_FLOAT_EQ(a_log[h], std::log(h + 1.0f));
  for (float d : s.param("layers.1.mixer.D")) EXPECT_EQ(d, 1.0f);
  for (float w : s.param("layers.1.mixer.norm.weight")) EXPECT_EQ(w, 1.0f);
  // out_proj: U(+-1/sqrt(I)) / sqrt(layers) = +-0.04419 for I = 256, two layers.
  float most = 0;
  for (float w : s.param("layers.0.mixer.out_proj.weight")) most = std::max(most, std::abs(w));
  EXPECT_LE(most, 0.0441942f);
  EXPECT_GT(most, 0.043f);
  // The conv is initialized as a Linear: Normal(0, 0.1), zero bias.
  double sq = 0;
  auto conv = s.param("layers.0.mixer.conv1d.weight");
  for (float w : conv) sq += w * w;
  EXPECT_NEAR(std::sqrt(sq / conv.size()), 0.1, 0.01);
  for (float b : s.param("layers.0.mixer.conv1d.bias")) EXPECT_EQ(b, 0.0f);
  for (float b : s.param("layers.0.mixer.dt_bias")) {
    const double dt = std::log1p(std::exp(double(b)));
    EXPECT_GE(dt, 1e-3 * 0.999);
    EXPECT_LE(dt, 0.1 * 1.001);
  }
}

TEST(ModelTypes, ConfigsRoundTripAndRejectWhatIsNotImplemented) {
  for (const char* name : {"mamba2.json", "mamba2_double_size.json", "samba.json"}) {
    const ModelConfig c = load_config(name);
    EXPECT_EQ(ModelConfig::from_json(c.to_json(), "roundtrip").to_json(), c.to_json()) << name;
  }
  const ModelConfig samba = load_config("samba.json");
  EXPECT_EQ(samba.attn_layers, (std::vector<int>{1, 3}));
  EXPECT_EQ(samba.attn_window, 64);
  nlohmann::json j = samba.to_json();
  j["attn"]["num_kv_heads"] = 2;
  EXPECT_THROW(ModelConfig::from_json(j, "gqa"), Error);
  j = samba.to_json();
  j["sparse_arch"] = "sliding_window";
  EXPECT_THROW(ModelConfig::from_json(j, "samba+sparse"), Error);
  j = load_config("mamba2.json").to_json();
  j["head_dim"] = 15;
  EXPECT_THROW(ModelConfig::from_json(j, "mamba2 heads"), Error);
}

// Every key of a config is known: a typo is an error pointing at the key meant, and a reference key that hax does
// not read is accepted only at a value whose meaning hax computes.
TEST(ModelTypes, UnknownConfigKeysAndUnimplementedValuesAreErrors) {
  for (const char* name : {"mamba.json", "mamba_double_size.json", "mamba2.json", "mamba2_double_size.json",
                           "samba.json"})
    EXPECT_NO_THROW(ModelConfig::load(cat(HAX_SHARED_DIR, "/spec/configs/", name))) << "the paper's " << name;
  nlohmann::json j = testing::tiny_sparse_config("sign_bin_lsh", Semantics::paper).to_json();
  j["hax_semantic"] = "paper";
  testing::expect_error_naming([&] { ModelConfig::from_json(j, "cfg.json"); },
                               {"cfg.json", "\"hax_semantic\"", "did you mean 'hax_semantics'"});
  j.erase("hax_semantic");
  j["rms_norm"] = false;
  testing::expect_error_naming([&] { ModelConfig::from_json(j, "cfg.json"); }, {"\"rms_norm\" is false", "true"});
  j["rms_norm"] = true;
  j["hidden_act"] = "gelu";
  testing::expect_error_naming([&] { ModelConfig::from_json(j, "cfg.json"); }, {"hidden_act", "gelu", "silu"});
  j["hidden_act"] = "silu";
  j["residual_in_fp32"] = false;
  EXPECT_NO_THROW(ModelConfig::from_json(j, "cfg.json"));
  nlohmann::json samba = load_config("samba.json").to_json();
  samba["attn"]["window"] = 64;
  testing::expect_error_naming([&] { ModelConfig::from_json(samba, "samba.json"); },
                               {"attn.window", "did you mean 'window_size'"});
}

// Whole-model gradients (CE + 0.1 gate loss) against central differences, for each base with positional patterns
// (smooth in every parameter) in both semantics.
class ModelGradients : public ::testing::TestWithParam<std::tuple<std::string, std::string, Semantics>> {};

double objective(Model& model, const TokenBatch& tb) {
  Arena arena(model.arena_floats(tb.batch, tb.batch.rows(), tb.padded_length));
  const BatchResult r = model.forward(tb, arena, {true, 77});
  return r.loss + kGateLossWeight * r.gate_loss;
}

TEST_P(ModelGradients, MatchFiniteDifferences) {
  const auto& [base, arch, semantics] = GetParam();
  Model model(testing::tiny_config(base, arch, semantics));
  testing::perturb_parameters(model, 3);
  TokenBatch tb = testing::random_batch(model.config(), {9, 1, 21}, 5);
  tb.padded_length = 25;
  Arena arena(model.arena_floats(tb.batch, tb.batch.rows(), tb.padded_length));
  model.params().zero_grad();
  model.forward(tb, arena, {true, 77});
  model.backward(tb, arena);
  const std::vector<float> grads(model.params().grads().begin(), model.params().grads().end());
  const int checked = testing::check_finite_differences(
      model, grads, [&] { return objective(model, tb); }, [](const std::string&) { return true; });
  EXPECT_GT(checked, 40);
}

INSTANTIATE_TEST_SUITE_P(
    Bases, ModelGradients,
    ::testing::Values(std::tuple{"mamba2", "", Semantics::causal}, std::tuple{"mamba2", "full", Semantics::causal},
                      std::tuple{"mamba2", "sliding_window+dilated", Semantics::causal},
                      std::tuple{"mamba2", "sliding_window+dilated", Semantics::paper},
                      std::tuple{"mamba2", "dilated", Semantics::paper}, std::tuple{"samba", "", Semantics::causal}),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + testing::arch_identifier(std::get<1>(info.param)) +
             (std::get<2>(info.param) == Semantics::paper ? "_paper" : "_causal");
    });

}  // namespace
}  // namespace hax::models
