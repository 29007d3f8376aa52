#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <numbers>
#include <span>
#include <string>
#include <vector>

#include "../support/oracle_skip.h"
#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/training/adamw.h"
#include "hax/training/adamw_ref.h"
#include "hax/training/schedule.h"

namespace hax::training {
namespace {

namespace fs = std::filesystem;

// Gradients over four decades of magnitude (so that v, and with it the step size, differ per element), and a
// zero tail like the padding of the flat parameter buffer.
std::vector<float> random_gradients(std::size_t n, std::size_t zero_tail, Rng& rng) {
  std::vector<float> g(n, 0.0f);
  for (std::size_t i = 0; i + zero_tail < n; ++i)
    g[i] = static_cast<float>(rng.normal() * std::pow(10.0, -3.0 + 4.0 * rng.uniform_double()));
  return g;
}

std::vector<float> random_params(std::size_t n, std::size_t zero_tail, Rng& rng) {
  std::vector<float> p(n, 0.0f);
  rng.fill_uniform(std::span(p).first(n - zero_tail), -1.0f, 1.0f);
  return p;
}

template <class Real>
double rms(const std::vector<Real>& values) {
  double sum_sq = 0.0;
  for (Real v : values) sum_sq += double(v) * double(v);
  return std::sqrt(sum_sq / double(values.size()));
}

// |actual - expected| <= rel * (|expected| + floor) everywhere; reports the worst element once.
template <class A, class E>
void expect_all_close(const std::vector<A>& actual, const std::vector<E>& expected, double rel, double floor,
                      const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  double worst = 0.0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double limit = std::max(rel * (std::abs(double(expected[i])) + floor), DBL_MIN);
    const double ratio = std::abs(double(actual[i]) - double(expected[i])) / limit;
    if (!(ratio <= worst)) worst = std::isnan(ratio) ? INFINITY : ratio, at = i;
  }
  EXPECT_LE(worst, 1.0) << what << "[" << at << "] = " << double(actual[at]) << ", expected " << double(expected[at]);
}

TEST(LrSchedule, FirstStepHasLrZeroThenRampsLinearlyToTheBase) {
  const LrSchedule schedule{.base_lr = 2e-3, .warmup_steps = 5000};
  EXPECT_EQ(schedule.lr(1), 0.0);
  EXPECT_DOUBLE_EQ(schedule.lr(2), 2e-3 / 5000);
  EXPECT_DOUBLE_EQ(schedule.lr(2501), 1e-3);
  EXPECT_DOUBLE_EQ(schedule.lr(5001), 2e-3);
  EXPECT_DOUBLE_EQ(schedule.lr(400000), 2e-3);
  const LrSchedule constant{.base_lr = 1e-3, .warmup_steps = 0};
  EXPECT_EQ(constant.lr(1), 1e-3);
  EXPECT_EQ(constant.lr(7), 1e-3);
}

// The paper's continual pre-training schedule (paper.md §4.2) at its boundaries: 200 updates at lr 0, 800 of linear
// warm-up (the first at 0, as LambdaLR gives), the peak, then a cosine that reaches min_lr at the last update.
TEST(LrSchedule, ZeroStepsThenWarmupThenCosineToTheMinimumAtTheLastUpdate) {
  const LrSchedule s{.base_lr = 3e-4, .warmup_steps = 800, .zero_steps = 200, .decay_steps = 50000, .min_lr = 1e-5};
  EXPECT_EQ(s.lr(1), 0.0);
  EXPECT_EQ(s.lr(200), 0.0);
  EXPECT_EQ(s.lr(201), 0.0);  // the warm-up's first update
  EXPECT_DOUBLE_EQ(s.lr(202), 3e-4 / 800);
  EXPECT_DOUBLE_EQ(s.lr(601), 1.5e-4);
  EXPECT_DOUBLE_EQ(s.lr(1000), 3e-4 * 799 / 800);
  EXPECT_DOUBLE_EQ(s.lr(1001), 3e-4);  // the peak: the cosine's first update
  // Halfway through the cosine (updates 1001..50000 span 48999 steps): exactly the mean of the peak and the floor.
  const double span = 50000 - 1001;
  EXPECT_NEAR(s.lr(25501), 1e-5 + 2.9e-4 * 0.5 * (1 + std::cos(std::numbers::pi * 24500 / span)), 1e-15);
  EXPECT_NEAR(s.lr(25501), (3e-4 + 1e-5) / 2, 1e-8);
  EXPECT_GT(s.lr(49999), 1e-5);
  EXPECT_LT(s.lr(49999), 1e-5 + 1e-12);
  EXPECT_EQ(s.lr(50000), 1e-5);
  EXPECT_EQ(s.lr(60000), 1e-5);  // past the decay: the floor
  for (std::int64_t k = 1002; k <= 50000; k += 97) EXPECT_LT(s.lr(k), s.lr(k - 1)) << k;  // strictly falling

  // Without a warm-up or zero steps the cosine starts at the first update.
  const LrSchedule bare{.base_lr = 1.0, .decay_steps = 3, .min_lr = 0.0};
  EXPECT_EQ(bare.lr(1), 1.0);
  EXPECT_NEAR(bare.lr(2), 0.5, 1e-15);
  EXPECT_EQ(bare.lr(3), 0.0);
}

TEST(AdamW, MatchesTheReferenceLoopOverSeveralSteps) {
  constexpr std::size_t n = 4099, tail = 13;
  constexpr int steps = 12;
  Rng rng(1);
  std::vector<float> params = random_params(n, tail, rng);
  std::vector<double> ref_params(params.begin(), params.end()), ref_m(n, 0.0), ref_v(n, 0.0);
  const LrSchedule schedule{.base_lr = 1e-2, .warmup_steps = 4};
  const AdamWConfig config;
  AdamW adamw(n, config);
  for (int k = 1; k <= steps; ++k) {
    const std::vector<float> grads = random_gradients(n, tail, rng);
    const std::vector<double> ref_grads(grads.begin(), grads.end());
    adamw.step(params, grads, schedule.lr(k));
    ref::adamw_step(ref_params.data(), ref_grads.data(), ref_m.data(), ref_v.data(), n, config, schedule.lr(k), k);
    // fp32 against double: the update's rounding errors add up, so they are judged against the distance the
    // parameters can have travelled (lr per step).
    expect_all_close(params, ref_params, 1e-6, schedule.base_lr * k, "params after step " + std::to_string(k));
  }
  EXPECT_EQ(adamw.step_count(), steps);
  const std::vector<float> m(adamw.exp_avg().begin(), adamw.exp_avg().end());
  const std::vector<float> v(adamw.exp_avg_sq().begin(), adamw.exp_avg_sq().end());
  // m sums gradients of both signs, so near-zero elements are judged on the tensor's scale; v only grows.
  expect_all_close(m, ref_m, 1e-6, rms(ref_m), "exp_avg");
  expect_all_close(v, ref_v, 1e-6, 0.0, "exp_avg_sq");
  for (std::size_t i = n - tail; i < n; ++i) EXPECT_EQ(params[i], 0.0f) << "padding moved at " << i;
}

TEST(AdamW, WithZeroGradientsOnlyTheDecoupledWeightDecayActs) {
  std::vector<float> params{1.0f, -2.0f, 0.5f};
  const std::vector<float> grads(3, 0.0f);
  AdamW adamw(3, {.weight_decay = 0.1});
  adamw.step(params, grads, 0.5);
  EXPECT_EQ(params[0], 1.0f * static_cast<float>(1 - 0.5 * 0.1));
  EXPECT_EQ(params[1], -2.0f * static_cast<float>(1 - 0.5 * 0.1));
  adamw.step(params, grads, 0.0);  // lr 0 (the first step of a warm-up): nothing moves
  EXPECT_EQ(params[2], 0.5f * static_cast<float>(1 - 0.5 * 0.1));
}

TEST(AdamW, RejectsBuffersOfAnotherSize) {
  AdamW adamw(4);
  std::vector<float> params(5), grads(5);
  EXPECT_THROW(adamw.step(params, grads, 1e-3), Error);
}

// A temporary directory, removed with everything in it at scope exit.
struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  ("hax_adamw_" + std::to_string(::getpid()) + "_" + std::to_string(Rng(::getpid()).next_u64()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

void write_floats(const fs::path& file, const std::vector<float>& values) {
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size() * sizeof(float)));
  ASSERT_TRUE(out.good()) << file;
}

std::vector<float> read_floats(const fs::path& file, std::size_t count) {
  std::vector<float> values(count);
  std::ifstream in(file, std::ios::binary);
  in.read(reinterpret_cast<char*>(values.data()), std::streamsize(count * sizeof(float)));
  EXPECT_TRUE(in.good()) << "could not read " << count << " floats from " << file;
  return values;
}

// The same data through torch.optim.AdamW and LambdaLR (tools/oracle/adamw_torch.py, Debian's python3-torch).
TEST(AdamW, MatchesTorchOptimAdamWWithTheLrSchedule) {
  constexpr std::size_t n = 2053, tail = 11;
  constexpr int steps = 9;
  const LrSchedule schedule{.base_lr = 5e-3, .warmup_steps = 3};
  const AdamWConfig config{.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
  Rng rng(2);
  const std::vector<float> initial = random_params(n, tail, rng);
  std::vector<float> all_grads;
  for (int k = 0; k < steps; ++k) {
    const std::vector<float> g = random_gradients(n, tail, rng);
    all_grads.insert(all_grads.end(), g.begin(), g.end());
  }

  TempDir dir;
  write_floats(dir.path / "params.f32", initial);
  write_floats(dir.path / "grads.f32", all_grads);
  std::ofstream config_file(dir.path / "config.json");
  config_file << std::setprecision(17) << "{\"n\": " << n << ", \"steps\": " << steps
              << ", \"lr\": " << schedule.base_lr << ", \"warmup\": " << schedule.warmup_steps
              << ", \"beta1\": " << config.beta1 << ", \"beta2\": " << config.beta2 << ", \"eps\": " << config.eps
              << ", \"weight_decay\": " << config.weight_decay << "}\n";
  config_file.close();
  const std::string command = "/usr/bin/python3 " HAX_SOURCE_DIR "/tools/oracle/adamw_torch.py " + dir.path.string();
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << command;
  // 77: the script could not import torch; 127: the shell found no /usr/bin/python3.
  if (WEXITSTATUS(status) == 77 || WEXITSTATUS(status) == 127) HAX_ORACLE_UNAVAILABLE("no torch for /usr/bin/python3");
  ASSERT_EQ(WEXITSTATUS(status), 0) << command;
  const std::vector<float> trajectory = read_floats(dir.path / "trajectory.f32", n * steps);

  std::vector<float> params = initial;
  AdamW adamw(n, config);
  for (int k = 1; k <= steps; ++k) {
    adamw.step(params, std::span(all_grads).subspan((k - 1) * n, n), schedule.lr(k));
    const std::vector<float> torch_params(trajectory.begin() + (k - 1) * n, trajectory.begin() + k * n);
    expect_all_close(params, torch_params, 1e-6, schedule.base_lr, "params after step " + std::to_string(k));
    if (k == 1) EXPECT_EQ(params, initial) << "the first step has lr 0";
  }
  const std::vector<float> m(adamw.exp_avg().begin(), adamw.exp_avg().end());
  const std::vector<float> v(adamw.exp_avg_sq().begin(), adamw.exp_avg_sq().end());
  const std::vector<float> torch_m = read_floats(dir.path / "exp_avg.f32", n);
  expect_all_close(m, torch_m, 1e-6, rms(torch_m), "exp_avg");
  expect_all_close(v, read_floats(dir.path / "exp_avg_sq.f32", n), 1e-6, 0.0, "exp_avg_sq");
}

}  // namespace
}  // namespace hax::training
