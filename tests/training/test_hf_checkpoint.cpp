// Hugging Face checkpoints (training/hf_checkpoint.h): hax -> Hugging Face -> hax gives the same config, tensors and
// logits; the written folder has transformers' names and keys; mamba_ssm's layout and sharded checkpoints load; and
// each kind of bad folder is refused with an error naming the file and the problem. (The comparison with an
// independent PyTorch implementation reading the same files is tests/python/test_hf_convert.py.)
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "../support/expect_error.h"
#include "../support/model_fixtures.h"
#include "../support/test_support.h"
#include "hax/io/safetensors.h"
#include "hax/models/model_params.h"
#include "hax/training/checkpoint.h"
#include "hax/training/hf_checkpoint.h"

namespace hax::training {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::expect_error_naming;
using testing::ScratchDir;

models::ModelConfig plain_config(const std::string& base, bool untied = false) {
  models::ModelConfig c = testing::tiny_config(base);
  c.n_groups = 1;  // transformers' Mamba2 normalizes per group; hax converts one group only
  c.untied_lm_head = untied;
  return c;
}

// A perturbed model of `config` written as a Hugging Face folder.
fs::path write_hf(const ScratchDir& dir, const models::ModelConfig& config, const std::string& name = "hf") {
  models::Model model(config);
  testing::perturb_parameters(model);
  save_hf_model(dir / name, model);
  return dir / name;
}

json read_json(const fs::path& path) { return json::parse(testing::read_file(path)); }

void edit_config(const fs::path& dir, const std::function<void(json&)>& edit) {
  json j = read_json(dir / "config.json");
  edit(j);
  testing::write_file(dir / "config.json", j.dump(2));
}

void edit_tensors(const fs::path& dir, const std::function<void(std::vector<io::TensorData>&)>& edit) {
  std::vector<io::TensorData> tensors = io::SafetensorsFile(dir / "model.safetensors").read_all();
  edit(tensors);
  io::save_safetensors(dir / "model.safetensors", tensors);
}

void expect_same_model(models::Model& a, models::Model& b) {
  EXPECT_EQ(a.config().to_json(), b.config().to_json());
  ASSERT_EQ(a.params().tensors().size(), b.params().tensors().size());
  for (const auto& t : a.params().tensors()) {
    const auto x = a.params().param(t.name), y = b.params().param(t.name);
    EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << t.name;
  }
  const auto tokens = testing::random_tokens(9, a.config().vocab_size, 4);
  EXPECT_EQ(testing::parallel_logits(a, tokens), testing::parallel_logits(b, tokens));
}

TEST(HfCheckpoint, RoundTripKeepsConfigTensorsAndLogits) {
  for (const std::string base : {"mamba", "mamba2"})
    for (bool untied : {false, true}) {
      SCOPED_TRACE(base + (untied ? " untied" : " tied"));
      const ScratchDir dir;
      models::Model model(plain_config(base, untied));
      testing::perturb_parameters(model);
      save_hf_model(dir / "hf", model);
      auto back = load_hf_model(dir / "hf");
      expect_same_model(model, *back);
      // ... and through a hax checkpoint folder, as `hax convert` goes.
      save_model(dir / "hax", *back);
      expect_same_model(model, *load_model(dir / "hax"));
    }
}

TEST(HfCheckpoint, WritesTransformersNamesAndKeys) {
  const ScratchDir dir;
  const fs::path hf = write_hf(dir, plain_config("mamba"));
  const json j = read_json(hf / "config.json");
  EXPECT_EQ(j.at("architectures"), json::array({"MambaForCausalLM"}));
  EXPECT_EQ(j.at("model_type"), "mamba");
  EXPECT_EQ(j.at("tie_word_embeddings"), true);
  EXPECT_EQ(j.at("intermediate_size"), plain_config("mamba").intermediate_size);
  const io::SafetensorsFile file(hf / "model.safetensors");
  EXPECT_TRUE(file.contains("backbone.embeddings.weight"));
  EXPECT_TRUE(file.contains("backbone.layers.1.mixer.x_proj.weight"));
  EXPECT_TRUE(file.contains("backbone.norm_f.weight"));
  EXPECT_FALSE(file.contains("lm_head.weight"));  // tied: transformers drops the duplicate too
  EXPECT_EQ(file.metadata().at("format"), "pt");
  for (const std::string& name : file.names()) EXPECT_EQ(file.dtype(name), "F32") << name;

  const fs::path hf2 = write_hf(dir, plain_config("mamba2", true), "hf2");
  const json j2 = read_json(hf2 / "config.json");
  EXPECT_EQ(j2.at("architectures"), json::array({"Mamba2ForCausalLM"}));
  EXPECT_EQ(j2.at("tie_word_embeddings"), false);
  EXPECT_TRUE(io::SafetensorsFile(hf2 / "model.safetensors").contains("lm_head.weight"));
}

TEST(HfCheckpoint, LmHeadEqualToTheEmbeddingIsTied) {
  const ScratchDir dir;
  const fs::path hf = write_hf(dir, plain_config("mamba"));
  edit_tensors(hf, [](auto& tensors) {
    io::TensorData head = tensors.front();  // backbone.embeddings.weight, written first
    ASSERT_EQ(head.name, "backbone.embeddings.weight");
    head.name = "lm_head.weight";
    tensors.push_back(head);
  });
  EXPECT_FALSE(load_hf_model(hf)->config().untied_lm_head);
  edit_config(hf, [](json& j) { j["tie_word_embeddings"] = false; });  // equal, so still tied (and faster)
  EXPECT_FALSE(load_hf_model(hf)->config().untied_lm_head);
}

TEST(HfCheckpoint, PythonInfinityInTheDtClampIsNoClamp) {
  const ScratchDir dir;
  const fs::path hf = write_hf(dir, plain_config("mamba2"));
  std::string text = testing::read_file(hf / "config.json");
  text.insert(text.find('{') + 1, "\n  \"time_step_limit\": [0.0, Infinity],");
  testing::write_file(hf / "config.json", text);
  EXPECT_TRUE(load_hf_model(hf)->config().is_mamba2());
  text.replace(text.find("Infinity"), 8, "1.0");
  testing::write_file(hf / "config.json", text);
  expect_error_naming([&] { load_hf_model(hf); }, {"config.json", "time_step_limit", "does not clamp dt"});
}

TEST(HfCheckpoint, ReadsShardedCheckpoints) {
  const ScratchDir dir;
  models::Model model(plain_config("mamba"));
  testing::perturb_parameters(model);
  save_hf_model(dir / "hf", model);
  const fs::path hf = dir / "hf";
  std::vector<io::TensorData> tensors = io::SafetensorsFile(hf / "model.safetensors").read_all();
  fs::remove(hf / "model.safetensors");
  const std::size_t half = tensors.size() / 2;
  json map;
  for (std::size_t i = 0; i < tensors.size(); ++i)
    map[tensors[i].name] = i < half ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  io::save_safetensors(hf / "model-00001-of-00002.safetensors", {tensors.begin(), tensors.begin() + half});
  io::save_safetensors(hf / "model-00002-of-00002.safetensors", {tensors.begin() + half, tensors.end()});
  testing::write_file(hf / "model.safetensors.index.json", json{{"metadata", json::object()}, {"weight_map", map}}.dump());
  expect_same_model(model, *load_hf_model(hf));

  fs::remove(hf / "model-00002-of-00002.safetensors");
  expect_error_naming([&] { load_hf_model(hf); }, {"model.safetensors.index.json", "model-00002-of-00002", "missing"});
}

// mamba_ssm's MambaLMHeadModel layout: `model` written as transformers' folder, then its config replaced by
// mamba_ssm's (`ssm_cfg` holding the mixer's settings) and the embedding renamed; the logits must not change.
void expect_mamba_ssm_layout_loads(models::Model& model, const json& ssm_cfg, int vocab_in_config) {
  const ScratchDir dir;
  const models::ModelConfig& c = model.config();
  save_hf_model(dir / "hf", model);
  const fs::path hf = dir / "hf";
  testing::write_file(hf / "config.json",
                      json{{"d_model", c.hidden_size}, {"n_layer", c.num_hidden_layers}, {"vocab_size", vocab_in_config},
                           {"ssm_cfg", ssm_cfg}, {"rms_norm", true}, {"residual_in_fp32", true},
                           {"fused_add_norm", true}, {"pad_vocab_size_multiple", 8}, {"tie_embeddings", true}}.dump());
  edit_tensors(hf, [](auto& tensors) { tensors.front().name = "backbone.embedding.weight"; });
  const auto loaded = load_hf_model(hf);
  EXPECT_EQ(loaded->config().model_type, c.model_type);
  EXPECT_EQ(loaded->config().vocab_size, c.vocab_size);
  EXPECT_EQ(loaded->config().intermediate_size, c.intermediate_size);
  const auto tokens = testing::random_tokens(9, c.vocab_size, 4);
  EXPECT_EQ(testing::parallel_logits(model, tokens), testing::parallel_logits(*loaded, tokens));
}

TEST(HfCheckpoint, ReadsMambaSsmLayoutWithItsPaddedVocabulary) {
  models::ModelConfig c = plain_config("mamba");
  c.vocab_size = 40;  // 37 in the config, padded up to a multiple of 8
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.time_step_rank = 1;  // "auto": ceil(16 / 16)
  c.layer_norm_epsilon = 1e-5;  // mamba_ssm's, which its config does not name
  models::Model model(c);
  testing::perturb_parameters(model);
  expect_mamba_ssm_layout_loads(model, {{"d_state", c.state_size}, {"d_conv", c.conv_kernel}}, 37);
}

TEST(HfCheckpoint, ReadsMambaSsmMamba2Layout) {
  models::ModelConfig c = plain_config("mamba2");
  c.vocab_size = 24;
  c.layer_norm_epsilon = 1e-5;
  models::Model model(c);
  testing::perturb_parameters(model);
  expect_mamba_ssm_layout_loads(
      model, {{"layer", "Mamba2"}, {"d_state", c.state_size}, {"d_conv", c.conv_kernel}, {"headdim", c.head_dim},
              {"expand", c.intermediate_size / c.hidden_size}, {"ngroups", 1}},
      24);
}

// Each bad folder: one hax::Error naming the file and the problem.
TEST(HfCheckpoint, RefusesBadFolders) {
  const ScratchDir dir;
  const models::ModelConfig c = plain_config("mamba");
  int n = 0;
  const auto fresh = [&] { return write_hf(dir, c, "case" + std::to_string(n++)); };

  expect_error_naming([&] { load_hf_model(dir / "nothing"); }, {"nothing"});
  fs::path hf = fresh();
  fs::remove(hf / "config.json");
  expect_error_naming([&] { load_hf_model(hf); }, {hf.string(), "no config.json"});
  hf = fresh();
  fs::rename(hf / "model.safetensors", hf / "pytorch_model.bin");
  expect_error_naming([&] { load_hf_model(hf); }, {"no model.safetensors", "pytorch_model.bin", "pickle"});
  hf = fresh();
  edit_config(hf, [](json& j) { j["model_type"] = "llama"; });
  expect_error_naming([&] { load_hf_model(hf); }, {"config.json", "\"llama\"", "not one hax converts"});
  hf = fresh();
  edit_config(hf, [](json& j) { j["hidden_act"] = "gelu"; });
  expect_error_naming([&] { load_hf_model(hf); }, {"config.json", "hidden_act", "gelu"});
  hf = fresh();
  edit_config(hf, [](json& j) { j["state_sise"] = 4; });
  expect_error_naming([&] { load_hf_model(hf); }, {"config.json", "state_sise", "did you mean 'state_size'"});
  hf = fresh();
  edit_config(hf, [](json& j) { j["num_hidden_layers"] = 1; });
  expect_error_naming([&] { load_hf_model(hf); }, {"model.safetensors", "backbone.layers.1.", "is not a tensor of"});
  hf = fresh();
  edit_config(hf, [](json& j) { j["num_hidden_layers"] = 3; });
  expect_error_naming([&] { load_hf_model(hf); }, {"model.safetensors", "no tensor 'backbone.layers.2.norm.weight'"});
  hf = fresh();
  edit_config(hf, [&](json& j) { j["state_size"] = c.state_size + 1; });
  expect_error_naming([&] { load_hf_model(hf); }, {"model.safetensors", "x_proj.weight", "has shape", "needs"});
  hf = fresh();
  edit_tensors(hf, [](auto& tensors) { tensors.push_back({"backbone.layers.0.mixer.extra", {2}, {1, 2}}); });
  expect_error_naming([&] { load_hf_model(hf); }, {"model.safetensors", "backbone.layers.0.mixer.extra"});
  hf = fresh();
  edit_tensors(hf, [](auto& tensors) {
    io::TensorData head = tensors.front();
    head.name = "lm_head.weight";
    head.values[0] += 1;
    tensors.push_back(head);
  });
  expect_error_naming([&] { load_hf_model(hf); }, {"lm_head.weight", "differs from the embedding", "tie_word_embeddings"});
  hf = fresh();
  edit_config(hf, [](json& j) { j["tie_word_embeddings"] = false; });
  expect_error_naming([&] { load_hf_model(hf); }, {"config.json", "tie_word_embeddings is false", "lm_head.weight"});
  hf = fresh();
  edit_tensors(hf, [](auto& tensors) { tensors[3].values[0] = std::numeric_limits<float>::quiet_NaN(); });
  expect_error_naming([&] { load_hf_model(hf); }, {"model.safetensors", "non-finite"});
  hf = write_hf(dir, plain_config("mamba2"), "groups");
  edit_config(hf, [](json& j) { j["n_groups"] = 2; });
  expect_error_naming([&] { load_hf_model(hf); }, {"config.json", "n_groups 2", "not supported"});
  edit_config(hf, [](json& j) { j["n_groups"] = 1, j["norm_before_gate"] = true; });
  expect_error_naming([&] { load_hf_model(hf); }, {"config.json", "norm_before_gate"});
}

TEST(HfCheckpoint, RefusesUnsupportedDtypes) {
  const ScratchDir dir;
  const fs::path hf = write_hf(dir, plain_config("mamba"));
  // Rewrite the norm_f tensor as F64 by hand: same values, 8 bytes each.
  io::SafetensorsFile file(hf / "model.safetensors");
  std::vector<io::TensorData> tensors = file.read_all();
  std::string header = "{", data;
  for (const auto& t : tensors) {
    const bool f64 = t.name == "backbone.norm_f.weight";
    std::string bytes;
    for (float v : t.values) {
      if (f64) {
        const double d = v;
        bytes.append(reinterpret_cast<const char*>(&d), 8);
      } else {
        bytes.append(reinterpret_cast<const char*>(&v), 4);
      }
    }
    header += (header.size() > 1 ? "," : "") +
              json{{t.name, {{"dtype", f64 ? "F64" : "F32"}, {"shape", t.shape},
                             {"data_offsets", {data.size(), data.size() + bytes.size()}}}}}.dump().substr(1);
    header.pop_back();
    data += bytes;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string blob(8, '\0');
  const std::uint64_t n = header.size();
  std::copy_n(reinterpret_cast<const char*>(&n), 8, blob.begin());
  testing::write_file(hf / "model.safetensors", blob + header + data);
  expect_error_naming([&] { load_hf_model(hf); }, {"model.safetensors", "backbone.norm_f.weight", "F64"});
}

TEST(HfCheckpoint, RefusesToWriteWhatTransformersCannotHold) {
  const ScratchDir dir;
  expect_error_naming([&] { save_hf_model(dir / "a", models::Model(testing::tiny_config("mamba", "sliding_window"))); },
                      {"sparse attention", "sliding_window"});
  expect_error_naming([&] { save_hf_model(dir / "b", models::Model(testing::tiny_config("samba"))); }, {"Samba"});
  expect_error_naming([&] { save_hf_model(dir / "c", models::Model(testing::tiny_config("mamba2"))); },
                      {"n_groups 2"});
  EXPECT_FALSE(fs::exists(dir / "a") || fs::exists(dir / "b") || fs::exists(dir / "c"));
}

}  // namespace
}  // namespace hax::training
