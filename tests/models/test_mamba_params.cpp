#include <gtest/gtest.h>

#include <cmath>

#include "hax/engine/error.h"
#include "hax/models/config.h"
#include "hax/models/model_params.h"

namespace hax::models {
namespace {

ModelConfig load_config(const char* name) { return ModelConfig::load(cat(HAX_SOURCE_DIR, "/configs/", name)); }

ParamStore build(const ModelConfig& c) {
  ParamStore s;
  declare_parameters(s, c);
  s.allocate();
  init_parameters(s, c);
  return s;
}

TEST(MambaParams, CountsMatchTheReferenceTable) {
  // reference.md §6: Mamba base 73,920 parameters, the double-size baseline 246,144.
  EXPECT_EQ(build(load_config("mamba.json")).num_parameters(), 73920u);
  EXPECT_EQ(build(load_config("mamba_double_size.json")).num_parameters(), 246144u);
}

TEST(MambaParams, NamesAndShapesFollowTheReferenceModel) {
  ParamStore s = build(load_config("mamba.json"));
  EXPECT_EQ(shape_string(s.info("layers.0.mixer.in_proj.weight").shape), "(256, 64)");
  EXPECT_EQ(shape_string(s.info("layers.0.mixer.conv1d.weight").shape), "(128, 1, 4)");
  EXPECT_EQ(shape_string(s.info("layers.1.mixer.x_proj.weight").shape), "(40, 128)");
  EXPECT_EQ(shape_string(s.info("embeddings.weight").shape), "(100, 64)");
  EXPECT_TRUE(s.contains("norm_f.weight"));
  EXPECT_TRUE(s.contains("layers.1.norm.weight"));
}

TEST(MambaParams, InitializationFollowsTheReferenceDistributions) {
  ModelConfig c = load_config("mamba_double_size.json");
  ParamStore s = build(c);
  auto a_log = s.param("layers.0.mixer.A_log");
  EXPECT_FLOAT_EQ(a_log[0], 0.0f);
  EXPECT_FLOAT_EQ(a_log[15], std::log(16.0f));
  EXPECT_FLOAT_EQ(a_log[16], 0.0f);
  for (float d : s.param("layers.1.mixer.D")) EXPECT_EQ(d, 1.0f);
  for (float w : s.param("norm_f.weight")) EXPECT_EQ(w, 1.0f);
  for (float w : s.param("layers.0.mixer.conv1d.weight")) EXPECT_LE(std::abs(w), 0.5f);
  for (float b : s.param("layers.0.mixer.dt_proj.bias")) {
    const double dt = std::log1p(std::exp(static_cast<double>(b)));
    EXPECT_GE(dt, 1e-3 * 0.999);
    EXPECT_LE(dt, 0.1 * 1.001);
  }
  double sum = 0, sq = 0;
  auto in_proj = s.param("layers.0.mixer.in_proj.weight");
  for (float w : in_proj) sum += w, sq += w * w;
  EXPECT_NEAR(sum / in_proj.size(), 0.0, 0.005);
  EXPECT_NEAR(std::sqrt(sq / in_proj.size()), 0.1, 0.005);
}

TEST(MambaParams, SameSeedSameWeightsOtherSeedOtherWeights) {
  ModelConfig c = load_config("mamba.json");
  ParamStore a = build(c), b = build(c);
  EXPECT_TRUE(std::equal(a.params().begin(), a.params().end(), b.params().begin()));
  c.seed = 2;
  ParamStore d = build(c);
  EXPECT_FALSE(std::equal(a.params().begin(), a.params().end(), d.params().begin()));
}

TEST(ModelConfig, BadConfigsNameTheKey) {
  try {
    ModelConfig::from_json(nlohmann::json{{"hidden_size", "wide"}}, "cfg.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden_size"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ModelConfig::from_json(nlohmann::json{{"model_type", "gpt2"}}, "cfg.json"), Error);
  EXPECT_THROW(ModelConfig::from_json(nlohmann::json{{"num_hidden_layers", 0}}, "cfg.json"), Error);
  EXPECT_THROW(ModelConfig::load("/nonexistent/config.json"), Error);
}

TEST(ModelConfig, RoundTripsThroughJson) {
  ModelConfig c = load_config("mamba_double_size.json");
  ModelConfig back = ModelConfig::from_json(c.to_json(), "roundtrip");
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(c.intermediate_size, 256);
}

}  // namespace
}  // namespace hax::models
