// Every base model through the command line with unchanged flags: `hax train` (with a sparse arch for Mamba2),
// `--resume`, `hax eval` of the best checkpoint, and `hax logits` whose streamed logits (--chunk 3) equal the
// parallel ones. The checkpoint's config.json names the model_type, so eval and logits need no other flag.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_support.h"
#include "hax/io/npy.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;

class CliModelType : public ::testing::TestWithParam<BaseArch> {};

TEST_P(CliModelType, TrainsResumesEvaluatesAndStreams) {
  const auto& [base, arch] = GetParam();
  const ScratchDir dir;
  models::ModelConfig c = tiny_config(base, arch);
  c.vocab_size = 100;  // the task's token ids
  write_file(dir / "config.json", c.to_json().dump(2));
  auto train = [&](int steps, const std::string& extra) {
    return run_hax(cat("train --config ", quoted(dir / "config.json"), " --out ", quoted(dir / "run"), " --steps ",
                       steps, " --batch-size 4 --warmup 1 --eval-every 2 --threads 1 ", kTinyTask, extra));
  };
  const CommandResult first = train(4, "");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const CommandResult resumed = train(6, " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "run/last/trainer_state.json")).at("step"), 6);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "run/best/config.json")).at("model_type"), base);

  const CommandResult eval =
      run_hax(cat("eval --checkpoint ", quoted(dir / "run/best"), " --split test --threads 1 ", kTinyTask));
  EXPECT_EQ(eval.exit_code, 0) << eval.err;

  write_file(dir / "tokens.txt", "1 12 30 4 99 5 5 61 7 8 13 40 2\n0 15 15 42 3 8 11 19 23 9 9 9 50 51 52 3\n");
  auto logits = [&](const std::string& flags) {
    const fs::path out = dir / "logits.npy";
    const CommandResult r = run_hax(cat("logits --checkpoint ", quoted(dir / "run/best"), " --tokens ",
                                        quoted(dir / "tokens.txt"), " --out ", quoted(out), " --threads 1 ", flags));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return io::load_npy<float>(out);
  };
  const auto parallel = logits(""), streamed = logits("--chunk 3");
  ASSERT_EQ(streamed.shape, parallel.shape);
  float scale = 0;
  for (float v : parallel.values) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < parallel.values.size(); ++i)
    ASSERT_NEAR(streamed.values[i], parallel.values[i], 1e-5f * scale) << "value " << i;
}

INSTANTIATE_TEST_SUITE_P(Bases, CliModelType,
                         ::testing::Values(BaseArch{"mamba2", ""}, BaseArch{"mamba2", "sign_bin_lsh+key_selection"},
                                           BaseArch{"samba", ""}),
                         [](const auto& info) { return base_arch_identifier(info.param); });

}  // namespace
}  // namespace hax::testing
