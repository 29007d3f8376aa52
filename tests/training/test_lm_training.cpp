// Language-model training: the windows a token stream gives (contents, masks, a seeded order per epoch), gradient
// clipping, an LM run with the paper's schedule that resumes bit for bit and keeps the lowest held-out loss as best/,
// and --init-from's initialization of a sparse branch from Mamba's B and C (paper.md §3.5).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "../support/metrics.h"
#include "../support/model_fixtures.h"
#include "../support/test_support.h"
#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/io/safetensors.h"
#include "hax/models/model_params.h"
#include "hax/training/adamw.h"
#include "hax/training/checkpoint.h"
#include "hax/training/init_from.h"
#include "hax/training/lm_source.h"
#include "hax/training/trainer.h"

namespace hax::training {
namespace {

// 0, 1, 2, ...: every token says where it sits, so a window's contents show which window it is.
std::vector<std::uint16_t> counting_tokens(std::size_t n) {
  std::vector<std::uint16_t> tokens(n);
  for (std::size_t i = 0; i < n; ++i) tokens[i] = static_cast<std::uint16_t>(i);
  return tokens;
}

TEST(LmWindows, NonOverlappingWindowsOfContextPlusOneScoringAllButTheLastToken) {
  const auto tokens = counting_tokens(43);  // (43 - 1) / 10 = 4 windows; the last 2 tokens are left over
  auto source = lm_window_source(tokens, {.context_length = 10, .shuffle = false}, "test stream");
  ASSERT_EQ(source->size(), 4u);
  EXPECT_EQ(source->longest(), 11u);
  data::Sample s;
  for (std::uint64_t w = 0; w < 4; ++w) {
    source->read(w, s);
    ASSERT_EQ(s.tokens.size(), 11u);
    for (int t = 0; t <= 10; ++t) EXPECT_EQ(s.tokens[t], int(w * 10 + t));  // shares its first token with w - 1's last
    EXPECT_EQ(s.mask, std::vector<std::uint8_t>({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}));
  }
  source->read_stream(6, s);  // unshuffled: the stream repeats the windows in order
  EXPECT_EQ(s.tokens.front(), 20);
  EXPECT_THROW(source->read(4, s), Error);

  auto first_two = lm_window_source(tokens, {.context_length = 10, .shuffle = false, .max_windows = 2}, "valid");
  EXPECT_EQ(first_two->size(), 2u);
}

TEST(LmWindows, TheShuffledOrderIsASeededPermutationPerEpoch) {
  const auto tokens = counting_tokens(1001);
  const LmWindowOptions options{.context_length = 10, .shuffle = true, .seed = 7};
  auto a = lm_window_source(tokens, options, "a");
  auto b = lm_window_source(tokens, options, "b");
  ASSERT_EQ(a->size(), 100u);
  auto epoch = [&](SampleSource& source, std::uint64_t e) {
    std::vector<int> starts;
    data::Sample s;
    for (std::uint64_t i = 0; i < 100; ++i) {
      source.read_stream(e * 100 + i, s);
      starts.push_back(s.tokens.front());
    }
    return starts;
  };
  const std::vector<int> e0 = epoch(*a, 0), e1 = epoch(*a, 1);
  EXPECT_EQ(std::set<int>(e0.begin(), e0.end()).size(), 100u);  // every window once
  EXPECT_EQ(std::set<int>(e1.begin(), e1.end()).size(), 100u);
  EXPECT_NE(e0, e1);                                           // a new order each epoch
  EXPECT_NE(e0, epoch(*lm_window_source(tokens, {.context_length = 10}, "seed 1"), 0));
  EXPECT_EQ(epoch(*b, 1), e1);  // a function of the position only: another source, read out of order, agrees
  EXPECT_EQ(epoch(*b, 0), e0);
  data::Sample s;
  b->read(3, s);  // read(i) is epoch 0's i-th window
  EXPECT_EQ(s.tokens.front(), e0[3]);
}

TEST(LmWindows, AStreamShorterThanOneWindowIsRefusedNamingIt) {
  const auto tokens = counting_tokens(10);
  try {
    lm_window_source(tokens, {.context_length = 10}, "held-out split of corpus/");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("held-out split of corpus/ holds 10 tokens, fewer than one window of 11"),
              std::string::npos)
        << e.what();
  }
}

TEST(ClipGradNorm, ScalesToTheMaxNormOnlyWhenAbove) {
  std::vector<float> g = {3, 0, 4};  // norm 5
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 10.0), 5.0);
  EXPECT_EQ(g, std::vector<float>({3, 0, 4}));
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 1.0), 5.0);
  const float scale = static_cast<float>(1.0 / (5.0 + 1e-6));  // torch's clip_coef
  EXPECT_EQ(g, std::vector<float>({3 * scale, 0, 4 * scale}));
  EXPECT_NEAR(std::hypot(g[0], g[2]), 1.0, 1e-6);
}

// A stream a small model can learn: a few repeated phrases in a seeded order, eos (2) between them.
std::vector<std::uint16_t> phrase_stream(std::size_t n, std::uint64_t seed) {
  const std::vector<std::vector<std::uint16_t>> phrases = {
      {4, 5, 6, 7, 8}, {9, 10, 11}, {12, 13, 14, 15}, {16, 17, 18, 19, 20, 21}};  // ids < 23: every tiny vocab
  Rng rng(seed);
  std::vector<std::uint16_t> tokens;
  while (tokens.size() < n) {
    const auto& p = phrases[rng.below(phrases.size())];
    tokens.insert(tokens.end(), p.begin(), p.end());
    tokens.push_back(2);
  }
  tokens.resize(n);
  return tokens;
}

TrainOptions lm_options(const std::filesystem::path& out, std::int64_t steps) {
  TrainOptions o;
  o.out_dir = out.string();
  o.batch_size = 4;
  o.steps = steps;
  o.lr = 1e-2;
  o.min_lr = 1e-3;
  o.zero_steps = 2;
  o.warmup_steps = 3;
  o.decay_steps = 16;
  o.clip_grad = 0.5;
  o.eval_every = 4;
  o.log_every = 1;
  o.best_by = BestBy::loss;
  return o;
}

TEST(LmTrainer, AResumedRunWithThePapersScheduleEqualsAnUninterruptedOne) {
  const testing::ScratchDir dir;
  const auto train_tokens = phrase_stream(800, 1), valid_tokens = phrase_stream(200, 2);
  auto train_data = lm_window_source(train_tokens, {.context_length = 16, .seed = 3}, "train");  // 49 windows
  auto valid_data = lm_window_source(valid_tokens, {.context_length = 16, .shuffle = false}, "valid");
  const models::ModelConfig config = testing::tiny_mamba_config();
  train(config, lm_options(dir / "straight", 16), *train_data, valid_data.get(), false);
  train(config, lm_options(dir / "split", 8), *train_data, valid_data.get(), false);  // stops mid-cosine
  train(config, lm_options(dir / "split", 16), *train_data, valid_data.get(), true);

  testing::expect_identical_runs(dir / "straight", dir / "split",
                                 {"last/model.safetensors", "last/optimizer.safetensors", "best/model.safetensors"});

  // The logged lr follows the schedule (2 zero steps, 3 of warm-up, cosine to 1e-3 at update 16), clipping is on.
  const LrSchedule schedule = lm_options(dir / "straight", 16).schedule();
  const auto trained = testing::read_metrics(dir / "straight", "train");
  ASSERT_EQ(trained.size(), 16u);
  for (const auto& j : trained) {
    EXPECT_DOUBLE_EQ(j.at("lr").get<double>(), schedule.lr(j.at("step").get<int>()));
    EXPECT_GT(j.at("grad_norm").get<double>(), 0.0);
  }
  EXPECT_EQ(trained[1].at("lr"), 0.0);
  EXPECT_DOUBLE_EQ(trained[5].at("lr").get<double>(), 1e-2);
  EXPECT_DOUBLE_EQ(trained[15].at("lr").get<double>(), 1e-3);

  // best/ is the lowest held-out loss; perplexity is its exponential.
  const auto valid = testing::read_metrics(dir / "straight", "valid");
  ASSERT_EQ(valid.size(), 4u);
  double lowest = INFINITY;
  for (const auto& j : valid) {
    lowest = std::min(lowest, j.at("loss").get<double>());
    EXPECT_DOUBLE_EQ(j.at("perplexity").get<double>(), std::exp(j.at("loss").get<double>()));
    EXPECT_EQ(j.at("tokens"), valid_data->size() * 16);
  }
  const auto state = nlohmann::json::parse(testing::read_file(dir / "straight/last/trainer_state.json"));
  EXPECT_EQ(state.at("best_valid_loss").get<double>(), lowest);
  EXPECT_EQ(state.at("lr_schedule").at("zero_steps"), 2);
  EXPECT_EQ(state.at("lr_schedule").at("decay_steps"), 16);
  EXPECT_LT(lowest, valid.front().at("loss").get<double>() + 1e-12);
  EXPECT_LT(valid.back().at("loss").get<double>(), trained.front().at("loss").get<double>() - 0.5);
}

TEST(LmTrainer, ResumingWithAnotherScheduleIsLogged) {
  const testing::ScratchDir dir;
  const auto tokens = phrase_stream(400, 1);
  auto train_data = lm_window_source(tokens, {.context_length = 16}, "train");
  train(testing::tiny_mamba_config(), lm_options(dir / "run", 4), *train_data, nullptr, false);
  TrainOptions o = lm_options(dir / "run", 6);
  o.decay_steps = 6;
  train(testing::tiny_mamba_config(), o, *train_data, nullptr, true);
  const auto changed = testing::read_metrics(dir / "run", "schedule_changed");
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].at("from").at("decay_steps"), 16);
  EXPECT_EQ(changed[0].at("to").at("decay_steps"), 6);
}

// The paper's pre-training uses argmax LSH with h = k hyperplanes (buckets); sign-bin's 2^h buckets stop at h = 20.
TEST(ArgmaxLsh, TakesAsManyHyperplanesAsTheKeyBudget) {
  models::ModelConfig c = testing::tiny_sparse_config("argmax_lsh+key_selection");
  c.sparse_keys = 128;
  c.num_hash = 128;
  c.data_max_length = 2048;
  EXPECT_NO_THROW(c.validate("cfg"));
  models::Model model(c);
  const std::vector<float> logits = testing::parallel_logits(model, testing::random_tokens(200, c.vocab_size, 1));
  EXPECT_TRUE(std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); }));
  c.num_hash = models::kMaxArgmaxHash + 1;
  EXPECT_THROW(c.validate("cfg"), Error);
  c.sparse_arch = "sign_bin_lsh+key_selection";
  c.num_hash = 21;
  try {
    c.validate("cfg");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"num_hash\" must be in [1, 20] (2^num_hash sign-bin buckets), got 21"),
              std::string::npos)
        << e.what();
  }
}

// --- --init-from: a sparse branch added to a trained plain Mamba (paper.md §3.5) ---

models::ModelConfig with_arch(models::ModelConfig c, const std::string& arch) {
  c.sparse_arch = arch;
  return c;
}

// A plain tiny Mamba whose weights are all off their initial values, as a trained checkpoint's are.
std::unique_ptr<models::Model> trained_looking_plain_mamba() {
  auto plain = std::make_unique<models::Model>(testing::tiny_sparse_config(""));
  testing::perturb_parameters(*plain);
  return plain;
}

TEST(InitFrom, KAndQStartAsMambasBAndCAndEveryOtherWeightIsAsLoaded) {
  const auto owner = trained_looking_plain_mamba();
  const models::Model& plain = *owner;
  const models::ModelConfig& c = plain.config();
  const auto model = init_from(plain, with_arch(c, "sign_bin_lsh+key_selection"), "ckpt");
  const models::Model fresh(with_arch(c, "sign_bin_lsh+key_selection"));  // the usual init of the new tensors
  const std::size_t N = c.state_size, R = c.time_step_rank, I = c.intermediate_size;
  for (const TensorInfo& t : model->params().tensors()) {
    const auto got = model->params().param(t.name);
    if (plain.params().contains(t.name)) {
      const auto want = plain.params().param(t.name);
      EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin(), want.end())) << t.name;
    } else if (t.name.ends_with("xx_proj.weight")) {
      const auto x_proj = plain.params().param(t.name.substr(0, t.name.size() - 14) + "x_proj.weight");
      for (std::size_t row = 0; row < 2 * N; ++row)  // K = B rows R..R+N, then Q = C rows R+N..R+2N
        for (std::size_t i = 0; i < I; ++i)
          ASSERT_EQ(got[row * I + i], x_proj[(R + row) * I + i]) << t.name << " row " << row;
    } else if (t.name.ends_with(".E")) {
      EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](float e) { return e == 1.0f; })) << t.name;
    } else {  // the key-selection MLP: as a new model of this config starts
      ASSERT_TRUE(t.name.find("dx_proj_") != std::string::npos) << t.name;
      const auto want = fresh.params().param(t.name);
      EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin(), want.end())) << t.name;
    }
  }
  for (const TensorInfo& t : model->buffers().tensors()) {  // the LSH projections: the usual draw
    const std::span<const float> got = model->buffers().param(t.name), want = fresh.buffers().param(t.name);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin(), want.end())) << t.name;
  }
}

// With E = 0 the attention term vanishes and the logits are the old model's, bit for bit: nothing else changed.
TEST(InitFrom, WithEZeroTheLogitsEqualThePlainModelsExactly) {
  const auto owner = trained_looking_plain_mamba();
  models::Model& plain = *owner;
  const std::vector<std::int32_t> tokens = testing::random_tokens(40, plain.config().vocab_size, 3);
  const std::vector<float> want = testing::parallel_logits(plain, tokens);
  for (const char* arch : {"full", "sign_bin_lsh+key_selection", "argmax_lsh+key_selection", "sliding_window"}) {
    const auto model = init_from(plain, with_arch(plain.config(), arch), "ckpt");
    const std::vector<float> with_attention = testing::parallel_logits(*model, tokens);
    EXPECT_NE(with_attention, want) << arch << ": E = 1 should add an attention term";
    for (int l = 0; l < plain.config().num_hidden_layers; ++l) {
      const auto E = model->params().param(models::layer_mixer_prefix(l) + "E");
      std::fill(E.begin(), E.end(), 0.0f);
    }
    EXPECT_EQ(testing::parallel_logits(*model, tokens), want) << arch;
  }
}

float silu(float v) { return v / (1.0f + std::exp(-v)); }

// Layer 0's mixer output with the new branch minus the plain mixer's is exactly the attention term
// (E * attn * silu(z)) @ out_proj^T, with attn causal softmax attention whose queries and keys are the old model's
// C and B projections of the conv output (keys / sqrt(N)) and whose values are the conv output itself, computed
// here from the plain model's weights alone.
TEST(InitFrom, TheMixerChangesByExactlyTheAttentionTermOfBAndC) {
  const auto owner = trained_looking_plain_mamba();
  const models::Model& plain = *owner;
  const models::ModelConfig& c = plain.config();
  const auto model = init_from(plain, with_arch(c, "full"), "ckpt");
  const int T = 24, D = c.hidden_size, I = c.intermediate_size, N = c.state_size, R = c.time_step_rank,
            K = c.conv_kernel;
  std::vector<float> u(std::size_t(T) * D);
  Rng(9).fill_normal(u, 0.0f, 1.0f);
  const layers::PackedBatch batch = layers::PackedBatch::of_one(T);
  auto mixer_out = [&](const models::Model& m) {
    layers::Mixer& mixer = *m.blocks()[0].mixer;
    const auto needs = mixer.arena_floats(batch, 0);
    Arena arena(needs.kept + needs.scratch + 4096);
    std::vector<float> out(std::size_t(T) * D);
    mixer.forward(out.data(), u.data(), batch, {}, arena);
    return out;
  };
  const std::vector<float> base = mixer_out(plain), with_branch = mixer_out(*model);

  const std::string m = models::layer_mixer_prefix(0);
  const auto in_proj = plain.params().param(m + "in_proj.weight"), conv_w = plain.params().param(m + "conv1d.weight"),
             conv_b = plain.params().param(m + "conv1d.bias"), x_proj = plain.params().param(m + "x_proj.weight"),
             out_proj = plain.params().param(m + "out_proj.weight");
  std::vector<double> x(std::size_t(T) * I), z(std::size_t(T) * I), xc(std::size_t(T) * I);
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < 2 * I; ++r) {
      double sum = 0;
      for (int d = 0; d < D; ++d) sum += double(in_proj[std::size_t(r) * D + d]) * u[std::size_t(t) * D + d];
      (r < I ? x[std::size_t(t) * I + r] : z[std::size_t(t) * I + r - I]) = sum;
    }
  for (int t = 0; t < T; ++t)
    for (int ch = 0; ch < I; ++ch) {
      double sum = conv_b[ch];
      for (int k = 0; k < K; ++k)
        if (const int s = t - K + 1 + k; s >= 0) sum += double(conv_w[std::size_t(ch) * K + k]) * x[std::size_t(s) * I + ch];
      xc[std::size_t(t) * I + ch] = sum / (1 + std::exp(-sum));
    }
  auto project = [&](int row0, int t, int n) {  // row row0 + n of x_proj applied to xc[t]
    double sum = 0;
    for (int ch = 0; ch < I; ++ch) sum += double(x_proj[std::size_t(row0 + n) * I + ch]) * xc[std::size_t(t) * I + ch];
    return sum;
  };
  double worst = 0, scale = 0;
  for (int t = 0; t < T; ++t) {
    std::vector<double> scores(t + 1);
    for (int s = 0; s <= t; ++s) {
      for (int n = 0; n < N; ++n) scores[s] += project(R + N, t, n) * project(R, s, n) / std::sqrt(double(N));
    }
    const double top = *std::max_element(scores.begin(), scores.end());
    double total = 0;
    for (double& v : scores) total += (v = std::exp(v - top));
    std::vector<double> gated(I);
    for (int ch = 0; ch < I; ++ch) {
      double attn = 0;
      for (int s = 0; s <= t; ++s) attn += scores[s] / total * xc[std::size_t(s) * I + ch];
      gated[ch] = 1.0 * attn * silu(static_cast<float>(z[std::size_t(t) * I + ch]));  // E = 1
    }
    for (int d = 0; d < D; ++d) {
      double term = 0;
      for (int ch = 0; ch < I; ++ch) term += double(out_proj[std::size_t(d) * I + ch]) * gated[ch];
      const std::size_t at = std::size_t(t) * D + d;
      worst = std::max(worst, std::abs((double(with_branch[at]) - base[at]) - term));
      scale = std::max(scale, std::abs(term));
    }
  }
  EXPECT_GT(scale, 1e-2) << "the attention term should be visible";
  EXPECT_LT(worst, 1e-5 * std::max(1.0, scale)) << "largest deviation from the attention term";
}

TEST(InitFrom, RefusesShapeChangesAndAPlainMamba2NamingTheCheckpoint) {
  const auto owner = trained_looking_plain_mamba();
  const models::Model& plain = *owner;
  models::ModelConfig wider = with_arch(plain.config(), "key_selection");
  wider.hidden_size *= 2;
  wider.vocab_size += 1;
  try {
    init_from(plain, wider, "runs/base/best");
    FAIL() << "no error";
  } catch (const Error& e) {
    for (const char* part : {"runs/base/best: --init-from keeps the checkpoint's model", "hidden_size 8 -> 16",
                             "vocab_size 23 -> 24"})
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << part << " in " << e.what();
  }
  models::ModelConfig reseeded = with_arch(plain.config(), "argmax_lsh");
  reseeded.seed = 99;
  reseeded.sparse_keys = 4;
  EXPECT_NO_THROW(check_init_from_config(plain.config(), reseeded, "ckpt"));

  const models::ModelConfig mamba2 = testing::tiny_config("mamba2");
  try {
    check_init_from_config(mamba2, with_arch(mamba2, "sign_bin_lsh+key_selection"), "m2");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m2: adding a sparse branch to a plain Mamba2 is not supported"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(check_init_from_config(with_arch(mamba2, "key_selection"), with_arch(mamba2, "sliding_window"),
                                         "m2"));
}

// Continual pre-training: the run starts at step 0 with fresh moments from the loaded weights, and trains.
TEST(InitFrom, TrainFromStartsAFreshRunFromTheWeightsAndTheLossIsFinite) {
  const testing::ScratchDir dir;
  const auto owner = trained_looking_plain_mamba();
  const models::Model& plain = *owner;
  auto model = init_from(plain, with_arch(plain.config(), "sign_bin_lsh+key_selection"), "ckpt");
  const auto tokens = phrase_stream(400, 1);
  auto train_data = lm_window_source(tokens, {.context_length = 16}, "train");
  TrainOptions o = lm_options(dir / "run", 4);
  o.decay_steps = 4;
  o.zero_steps = 1;  // the first update has lr 0: the weights stay as loaded
  o.eval_every = 1;
  o.steps = 1;
  const std::vector<float> before(model->params().params().begin(), model->params().params().end());
  train_from(std::move(model), o, *train_data, nullptr);
  const auto after = load_model(dir / "run/last");
  EXPECT_TRUE(std::equal(before.begin(), before.end(), after->params().params().begin()));
  o.steps = 4;
  train(models::ModelConfig{}, o, *train_data, nullptr, true);
  for (const auto& j : testing::read_metrics(dir / "run", "train")) EXPECT_TRUE(std::isfinite(j.at("loss").get<double>()));
  EXPECT_EQ(load_model(dir / "run/last")->config().sparse_arch, "sign_bin_lsh+key_selection");
}

}  // namespace
}  // namespace hax::training
