// Our files against numpy and PyTorch, through tools/oracle/safetensors_check.py (which parses and writes the formats
// with its own code). Skipped where /usr/bin/python3 lacks numpy or torch (scripts/install-deps.sh installs them).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../support/oracle_skip.h"
#include "../support/test_support.h"
#include "hax/io/npy.h"
#include "hax/io/safetensors.h"

namespace hax::io {
namespace {

using hax::testing::ScratchDir;

const std::string kPython = "/usr/bin/python3";

constexpr int kMissingModule = 77;  // the oracle's exit status when numpy or torch is not installed

struct OracleRun {
  bool ran = false;        // false: the modules it needs are missing
  nlohmann::json summary;  // what it printed
};

// Runs the oracle in `mode` on `in`, writing `out`.
OracleRun run_oracle(const std::string& mode, const std::filesystem::path& in, const std::filesystem::path& out) {
  const auto result = hax::testing::run_command(kPython + " " HAX_SOURCE_DIR "/tools/oracle/safetensors_check.py " +
                                                mode + " '" + in.string() + "' '" + out.string() + "'");
  if (result.exit_code == kMissingModule) return {};
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return {true, nlohmann::json::parse(result.out)};
}

// float -> bfloat16 -> float with round-to-nearest-even, as torch's .to(torch.bfloat16) (no NaN here).
float round_to_bf16(float x) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
  const std::uint32_t rounded = (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff0000u;
  return std::bit_cast<float>(rounded);
}

double sum(const std::vector<float>& values) {
  double s = 0;
  for (float v : values) s += v;
  return s;
}

TEST(Interop, PythonReadsOurSafetensorsAndWritesF32Bf16F16ThatWeRead) {
  const ScratchDir dir;
  std::vector<float> w(12);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = 0.37f * static_cast<float>(i) - 2.0f + 1e-3f;
  const std::vector<TensorData> tensors = {{"layers.0.w", {3, 4}, w}, {"s", {}, {1.75f}}, {"e", {0}, {}}};
  save_safetensors(dir / "ours.safetensors", tensors, {{"format", "pt"}});

  const OracleRun run = run_oracle("safetensors", dir / "ours.safetensors", dir / "theirs.safetensors");
  if (!run.ran) HAX_ORACLE_UNAVAILABLE(kPython << " has no numpy or torch");
  const nlohmann::json& summary = run.summary;
  EXPECT_EQ(summary["metadata"]["format"], "pt");
  for (const TensorData& t : tensors) {
    SCOPED_TRACE(t.name);
    const auto& seen = summary["tensors"][t.name];
    EXPECT_EQ(seen["dtype"], "F32");
    EXPECT_EQ(seen["shape"].get<std::vector<std::int64_t>>(), t.shape);
    EXPECT_NEAR(seen["sum"].get<double>(), sum(t.values), 1e-9);
  }

  const SafetensorsFile theirs(dir / "theirs.safetensors");
  EXPECT_EQ(theirs.metadata().at("writer"), "safetensors_check.py");
  for (const TensorData& t : tensors) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(theirs.dtype(t.name + ".bf16"), "BF16");
    EXPECT_EQ(theirs.dtype(t.name + ".f16"), "F16");
    const TensorData doubled = theirs.read(t.name), bf16 = theirs.read(t.name + ".bf16");
    const TensorData f16 = theirs.read(t.name + ".f16");
    EXPECT_EQ(doubled.shape, t.shape);
    EXPECT_EQ(bf16.shape, t.shape);
    for (std::size_t i = 0; i < t.values.size(); ++i) {
      const float x = t.values[i];
      EXPECT_EQ(doubled.values[i], x * 2.0f + 1.0f);
      EXPECT_EQ(bf16.values[i], round_to_bf16(x));
      EXPECT_NEAR(f16.values[i], x, std::abs(x) * 0x1p-11f);
    }
  }
}

TEST(Interop, NumpyLoadsOurNpyAndWeLoadNumpysByteForByte) {
  const ScratchDir dir;
  const std::vector<float> f = {0.5f, -1.25f, 3.0f, 1e-20f, -7.5f, 2.0f};
  save_npy(dir / "f.npy", f, {2, 1, 3});
  OracleRun run = run_oracle("npy", dir / "f.npy", dir / "f_out.npy");
  if (!run.ran) HAX_ORACLE_UNAVAILABLE(kPython << " has no numpy");
  nlohmann::json seen = run.summary;
  EXPECT_EQ(seen["dtype"], "<f4");
  EXPECT_EQ(seen["shape"].get<std::vector<std::int64_t>>(), (std::vector<std::int64_t>{2, 1, 3}));
  EXPECT_NEAR(seen["sum"].get<double>(), sum(f), 1e-9);
  const NpyArray<float> f_out = load_npy<float>(dir / "f_out.npy");
  EXPECT_EQ(f_out.shape, (std::vector<std::int64_t>{2, 1, 3}));
  for (std::size_t i = 0; i < f.size(); ++i) EXPECT_EQ(f_out.values[i], f[i] * 2.0f + 1.0f);
  // What we write for the same array is byte for byte what numpy.save wrote.
  save_npy(dir / "f_again.npy", f_out.values, f_out.shape);
  EXPECT_EQ(hax::testing::read_file(dir / "f_again.npy"), hax::testing::read_file(dir / "f_out.npy"));

  const std::vector<std::int32_t> ids = {3, -4, 100000, 0, 7};
  save_npy(dir / "i.npy", ids, {5});
  seen = run_oracle("npy", dir / "i.npy", dir / "i_out.npy").summary;
  EXPECT_EQ(seen["dtype"], "<i4");
  const NpyArray<std::int32_t> i_out = load_npy<std::int32_t>(dir / "i_out.npy");
  EXPECT_EQ(i_out.shape, (std::vector<std::int64_t>{5}));
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(i_out.values[i], ids[i] * 3);
  save_npy(dir / "i_again.npy", i_out.values, i_out.shape);
  EXPECT_EQ(hax::testing::read_file(dir / "i_again.npy"), hax::testing::read_file(dir / "i_out.npy"));
}

}  // namespace
}  // namespace hax::io
