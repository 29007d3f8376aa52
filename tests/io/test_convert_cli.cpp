// `hax convert --from-hf / --to-hf` end to end: a hax checkpoint -> Hugging Face folder -> hax checkpoint has the
// same tensors, and `hax logits` gives the same logits for both hax folders; bad input is one error line, a non-zero
// exit and no output folder.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "../cli/cli_support.h"
#include "hax/io/npy.h"
#include "hax/io/safetensors.h"

namespace hax {
namespace {

namespace fs = std::filesystem;
using testing::FailsWithOneErrorLine;
using testing::quoted;
using testing::run_hax;

std::vector<float> logits_of(const fs::path& checkpoint, const fs::path& tokens, const fs::path& out) {
  const auto r = run_hax("logits --checkpoint " + quoted(checkpoint) + " --tokens " + quoted(tokens) + " --out " +
                         quoted(out));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return io::load_npy<float>(out).values;
}

TEST(ConvertCli, ToHfAndBackKeepsTensorsAndLogits) {
  const testing::ScratchDir dir;
  models::ModelConfig c = testing::tiny_mamba_config();
  c.untied_lm_head = true;
  models::Model model(c);
  testing::perturb_parameters(model);
  training::save_model(dir / "hax", model);

  auto r = run_hax("convert --to-hf " + quoted(dir / "hax") + " --out " + quoted(dir / "hf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("wrote Hugging Face checkpoint"), std::string::npos) << r.err;
  EXPECT_TRUE(io::SafetensorsFile(dir / "hf" / "model.safetensors").contains("lm_head.weight"));
  r = run_hax("convert --from-hf " + quoted(dir / "hf") + " --out " + quoted(dir / "back"));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const io::SafetensorsFile a(dir / "hax" / "model.safetensors"), b(dir / "back" / "model.safetensors");
  EXPECT_EQ(a.names(), b.names());
  for (const std::string& name : a.names()) EXPECT_EQ(a.read(name).values, b.read(name).values) << name;
  testing::write_file(dir / "tokens.txt", "1 5 7 9 2 11\n4 4 0 3\n");
  EXPECT_EQ(logits_of(dir / "hax", dir / "tokens.txt", dir / "a.npy"),
            logits_of(dir / "back", dir / "tokens.txt", dir / "b.npy"));
}

TEST(ConvertCli, BadInputIsOneLineAndWritesNothing) {
  const testing::ScratchDir dir;
  const fs::path hax_dir = testing::save_untrained_checkpoint(dir);
  ASSERT_EQ(run_hax("convert --to-hf " + quoted(hax_dir) + " --out " + quoted(dir / "hf")).exit_code, 0);
  const auto out = dir / "out";

  EXPECT_TRUE(FailsWithOneErrorLine(run_hax("convert --out " + quoted(out)), "--from-hf"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax("convert --from-hf " + quoted(dir / "missing") + " --out " + quoted(out)),
                                    "missing"));
  // A hax checkpoint is not a Hugging Face one: its config would do, but its tensors lack the "backbone." prefix.
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax("convert --from-hf " + quoted(hax_dir) + " --out " + quoted(out)),
                                    "looks like a hax checkpoint"));
  testing::write_file(dir / "hf" / "config.json", R"({"model_type": "gpt2"})");
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax("convert --from-hf " + quoted(dir / "hf") + " --out " + quoted(out)),
                                    "\"gpt2\""));
  EXPECT_FALSE(fs::exists(out));
  // A sparse model has no transformers class.
  const fs::path sparse = testing::save_sparse_checkpoint(dir, ops::sparse::Semantics::causal);
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax("convert --to-hf " + quoted(sparse) + " --out " + quoted(out)),
                                    "sparse attention"));
  EXPECT_FALSE(fs::exists(out));
  // An existing output is replaced only with --force.
  fs::create_directories(out);
  testing::write_file(out / "keep.txt", "x");
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax("convert --to-hf " + quoted(hax_dir) + " --out " + quoted(out)),
                                    "--force"));
  EXPECT_TRUE(fs::exists(out / "keep.txt"));
  EXPECT_EQ(run_hax("convert --to-hf " + quoted(hax_dir) + " --out " + quoted(out) + " --force").exit_code, 0);
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_FALSE(fs::exists(out / "keep.txt"));
}

TEST(ConvertCli, HelpDescribesBothDirections) {
  const auto r = run_hax("convert --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* part : {"--from-hf", "--to-hf", "--out", "--force", "MambaForCausalLM", "BF16"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part;
}

}  // namespace
}  // namespace hax
