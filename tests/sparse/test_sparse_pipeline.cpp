// The whole sparse branch on random sequences: against the dense T x T reference (key sets, outputs, gradients)
// for every arch in both semantics, and the `causal` properties of semantics.md at op level.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "dense_reference.h"
#include "hax/engine/error.h"
#include "hax/ops/sparse/gate_loss.h"
#include "sparse_pipeline.h"

namespace hax::ops::sparse::testing {
namespace {

const char* semantics_name(Semantics s) { return s == Semantics::paper ? "paper" : "causal"; }

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// |actual - expected| <= tolerance (|expected| + rms(expected)) element by element.
void expect_close(const std::vector<float>& actual, const std::vector<double>& expected, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  double sum_sq = 0.0;
  for (double e : expected) sum_sq += e * e;
  const double rms = std::sqrt(sum_sq / std::max<std::size_t>(expected.size(), 1));
  for (std::size_t i = 0; i < actual.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i], 2e-5 * (std::abs(expected[i]) + rms) + 1e-30) << what << "[" << i << "]";
}

struct Sequence {
  std::vector<float> Q, K, V;
};

Sequence random_sequence(int T, int N, int I, Rng rng) {
  return {random_floats(std::size_t(T) * N, rng), random_floats(std::size_t(T) * N, rng),
          random_floats(std::size_t(T) * I, rng)};
}

TEST(SparsePipeline, MatchesTheDenseReferenceForEveryArchAndSemantics) {
  constexpr int T = 90, N = 8, I = 6;
  for (Semantics semantics : {Semantics::paper, Semantics::causal})
    for (const std::string& name : archs_under_test()) {
      SCOPED_TRACE(cat(name, " ", semantics_name(semantics)));
      // 16 keys in all, 3 hash bits (8 sign buckets, so some queries find no same-bucket key early on).
      const SparsePipeline pipeline(name, 16, 64, semantics, N, I, 3, 7);
      const Sequence x = random_sequence(T, N, I, Rng(11));
      Rng dout_rng(12);
      const std::vector<float> dout = random_floats(std::size_t(T) * I, dout_rng);
      PipelineRun run = pipeline.forward(x.Q, x.K, x.V);
      pipeline.backward(run, dout, x.Q, x.K, x.V);
      const DenseMask mask = dense_union_mask(pipeline.arch(), T, run.pattern_inputs.view());
      for (int t = 0; t < T; ++t)
        for (int s = 0; s < T; ++s) {
          const auto list = run.keys.keys_of(t);
          ASSERT_EQ(std::count(list.begin(), list.end(), s), mask[std::size_t(t) * T + s]) << t << "," << s;
        }
      const DenseAttention dense = dense_attention(mask, widen(x.Q).data(), widen(x.K).data(), widen(x.V).data(),
                                                   widen(dout).data(), T, N, I, semantics);
      expect_close(run.out, dense.out, "out");
      expect_close(run.dQ, dense.dQ, "dQ");
      expect_close(run.dK, dense.dK, "dK");
      expect_close(run.dV, dense.dV, "dV");
    }
}

TEST(SparsePipeline, EmptyRowsAreUniformOverAllPositionsInPaperAndZeroInCausal) {
  constexpr int T = 10, N = 2, I = 3;
  const Sequence x = random_sequence(T, N, I, Rng(5));
  for (Semantics semantics : {Semantics::paper, Semantics::causal}) {
    const SparsePipeline pipeline("dilated", 4, 16, semantics, N, I, 2, 1);  // dilation 4: queries 0..2 are empty
    const PipelineRun run = pipeline.forward(x.Q, x.K, x.V);
    ASSERT_EQ(run.keys.count[0], 0);
    for (int c = 0; c < I; ++c) {
      double mean = 0.0;
      for (int s = 0; s < T; ++s) mean += x.V[std::size_t(s) * I + c] / T;  // the future included
      EXPECT_NEAR(run.out[c], semantics == Semantics::paper ? mean : 0.0, 1e-6);
    }
  }
}

// Causality: the outputs at positions <= t and their key lists do not depend on what comes after t.
TEST(CausalSemantics, LaterInputsChangeNothingAtOrBeforeT) {
  constexpr int T = 120, N = 8, I = 6, cut = 70;
  for (const std::string& name : archs_under_test()) {
    SCOPED_TRACE(name);
    const SparsePipeline pipeline(name, 16, 64, Semantics::causal, N, I, 3, 3);
    const Sequence x = random_sequence(T, N, I, Rng(21));
    Sequence changed = random_sequence(T, N, I, Rng(22));
    std::copy_n(x.Q.begin(), (cut + 1) * N, changed.Q.begin());
    std::copy_n(x.K.begin(), (cut + 1) * N, changed.K.begin());
    std::copy_n(x.V.begin(), (cut + 1) * I, changed.V.begin());
    const PipelineRun a = pipeline.forward(x.Q, x.K, x.V), b = pipeline.forward(changed.Q, changed.K, changed.V);
    for (int t = 0; t <= cut; ++t) {
      const auto ka = a.keys.keys_of(t), kb = b.keys.keys_of(t);
      ASSERT_TRUE(std::equal(ka.begin(), ka.end(), kb.begin(), kb.end())) << "keys of query " << t;
    }
    EXPECT_TRUE(std::equal(a.out.begin(), a.out.begin() + (cut + 1) * I, b.out.begin())) << "outputs up to " << cut;
  }
}

// Padding (Q = K = V = 0 after the real positions, as the mixer's masked x gives) changes no output at a real
// position in `causal`; in `paper` it does (here through the uniform rows' mean over all positions).
TEST(CausalSemantics, AppendedPaddingChangesNothingAtRealPositions) {
  constexpr int T = 80, padded = 113, N = 8, I = 6;
  const Sequence x = random_sequence(T, N, I, Rng(31));
  Sequence p{x.Q, x.K, x.V};
  p.Q.resize(std::size_t(padded) * N, 0.0f);
  p.K.resize(std::size_t(padded) * N, 0.0f);
  p.V.resize(std::size_t(padded) * I, 0.0f);
  for (Semantics semantics : {Semantics::causal, Semantics::paper})
    for (const std::string& name : archs_under_test()) {
      SCOPED_TRACE(cat(name, " ", semantics_name(semantics)));
      const SparsePipeline pipeline(name, 16, 64, semantics, N, I, 3, 4);
      const PipelineRun a = pipeline.forward(x.Q, x.K, x.V), b = pipeline.forward(p.Q, p.K, p.V);
      const bool same = std::equal(a.out.begin(), a.out.end(), b.out.begin());
      if (semantics == Semantics::causal) EXPECT_TRUE(same);
      if (semantics == Semantics::paper && name == "dilated") EXPECT_FALSE(same);
    }
}

TEST(CausalSemantics, GateTargetsCountRealQueriesOnly) {
  constexpr int T = 40, padded = 50, N = 4;
  Rng rng(41);
  std::vector<float> Q = random_floats(std::size_t(T) * N, rng), K = random_floats(std::size_t(T) * N, rng);
  const std::vector<std::int32_t> candidates = {0, 5, 39};
  std::vector<float> real(3), with_padding(3);
  gate_loss_targets(real.data(), Q.data(), K.data(), candidates.data(), 3, T, N);
  Q.resize(std::size_t(padded) * N, 0.0f);
  K.resize(std::size_t(padded) * N, 0.0f);
  gate_loss_targets(with_padding.data(), Q.data(), K.data(), candidates.data(), 3, padded, N);  // `paper` count
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(with_padding[j], real[j] + 0.5f * (padded - T), 1e-4);
}

// Determinism: the same inputs give bit-identical outputs and gradients run to run, and the attention kernels give
// the same bits on one thread as on several.
TEST(CausalSemantics, RunsAreBitForBitRepeatableAndIndependentOfThreads) {
  constexpr int T = 2000, N = 16, I = 32;
  const SparsePipeline pipeline("sign_bin_lsh+key_selection", 64, 2048, Semantics::causal, N, I, 8, 5);
  const Sequence x = random_sequence(T, N, I, Rng(51));
  Rng rng(52);
  const std::vector<float> dout = random_floats(std::size_t(T) * I, rng);
  auto run_once = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    PipelineRun run = pipeline.forward(x.Q, x.K, x.V);
    pipeline.backward(run, dout, x.Q, x.K, x.V);
    omp_set_num_threads(before);
    return run;
  };
  const int threads = std::max(2, omp_get_max_threads());
  const PipelineRun a = run_once(threads), b = run_once(threads), one = run_once(1);
  for (const PipelineRun* other : {&b, &one}) {
    EXPECT_EQ(a.keys.index, other->keys.index);
    EXPECT_EQ(a.out, other->out);
    EXPECT_EQ(a.dQ, other->dQ);
    EXPECT_EQ(a.dK, other->dK);
    EXPECT_EQ(a.dV, other->dV);
  }
}

// The layer passes the backwards working memory it keeps (an arena) instead of letting them allocate it: the same
// bits, whatever that memory held before (here NaN, then the previous call's leftovers) and at any thread count,
// with gradients that already hold something (they are added to).
TEST(SparseBackward, KeptScratchGivesTheSameBitsAsAFreshOne) {
  constexpr int T = 1500, N = 16, I = 32;
  const SparsePipeline pipeline("sign_bin_lsh+key_selection", 64, 2048, Semantics::causal, N, I, 8, 7);
  const Sequence x = random_sequence(T, N, I, Rng(61));
  Rng rng(62);
  const std::vector<float> dout = random_floats(std::size_t(T) * I, rng);
  const std::vector<float> start = random_floats(std::size_t(T) * I, rng);
  const PipelineRun run = pipeline.forward(x.Q, x.K, x.V);
  std::vector<float> scratch(sparse_attention_backward_scratch_floats(run.keys, N, I), NAN);
  const int before = omp_get_max_threads();
  for (int threads : {1, std::max(2, before)}) {
    omp_set_num_threads(threads);
    std::vector<float> gradients[2][3];  // [fresh, kept][dQ, dK, dV], each starting from `start`
    for (auto& g : gradients) g[0].assign(start.begin(), start.begin() + std::size_t(T) * N), g[1] = g[0], g[2] = start;
    sparse_attention_backward(gradients[0][0].data(), gradients[0][1].data(), gradients[0][2].data(), dout.data(),
                              run.probs.data(), x.Q.data(), x.K.data(), x.V.data(), run.keys, N, I, Semantics::causal);
    sparse_attention_backward_with_scratch(gradients[1][0].data(), gradients[1][1].data(), gradients[1][2].data(),
                                           dout.data(), run.probs.data(), x.Q.data(), x.K.data(), x.V.data(),
                                           run.keys, N, I, Semantics::causal, scratch.data());
    for (int i = 0; i < 3; ++i) EXPECT_EQ(gradients[0][i], gradients[1][i]) << "gradient " << i << ", " << threads;
  }
  omp_set_num_threads(before);
}

TEST(SparseBackward, ScorerWithKeptScratchGivesTheSameBitsAsAFreshOne) {
  constexpr int T = 700, N = 16, F = 2 * N;
  Rng rng(71);
  const std::vector<float> features = random_floats(std::size_t(T) * F, rng), dscore = random_floats(T, rng);
  std::vector<float> weights[6], gradients[2][6], hidden1(std::size_t(T) * F), hidden2(hidden1.size()), score(T);
  const std::size_t sizes[6] = {F * F, F, F * F, F, F, 1};
  for (int i = 0; i < 6; ++i) weights[i] = random_floats(sizes[i], rng), gradients[0][i] = gradients[1][i] = weights[i];
  const ScorerWeights<float> w{weights[0].data(), weights[1].data(), weights[2].data(),
                               weights[3].data(), weights[4].data(), weights[5].data()};
  key_scorer_forward(score.data(), hidden1.data(), hidden2.data(), features.data(), w, T, N);
  auto grads = [&](int k) {
    auto* g = gradients[k];
    return ScorerGradients<float>{g[0].data(), g[1].data(), g[2].data(), g[3].data(), g[4].data(), g[5].data()};
  };
  std::vector<float> scratch(std::size_t(T) * 4 * N, NAN);
  key_scorer_backward(grads(0), dscore.data(), features.data(), hidden1.data(), hidden2.data(), w, T, N);
  key_scorer_backward_with_scratch(grads(1), dscore.data(), features.data(), hidden1.data(), hidden2.data(), w, T, N,
                                   scratch.data());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(gradients[0][i], gradients[1][i]) << "weight " << i;
}

}  // namespace
}  // namespace hax::ops::sparse::testing
