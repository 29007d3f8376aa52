// Sparse attention timings: one HAX layer's sparse branch (sign_bin_lsh+key_selection, 32 + 32 keys, `causal`)
// forward and backward on one sequence, N = 16, I = 128, at T = 4k, 16k, 64k. Everything is O(T k (N + I)), so
// the time per token should stay flat as T grows. The forward is: LSH buckets of Q and K, key-selection features
// and scores, the key lists, the attention; the backward: the attention's gradients, the gate loss (32 candidates)
// and the scorer's weight gradients.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "hax/engine/rng.h"
#include "hax/ops/sparse/gate_loss.h"
#include "hax/ops/sparse/key_scorer.h"
#include "hax/ops/sparse/lsh.h"
#include "hax/ops/sparse/sparse_attention.h"
#include "hax/ops/sparse/sparse_keys.h"

namespace hax::ops::sparse {
namespace {

constexpr int kN = 16, kI = 128, kNumHash = 8;
constexpr Semantics kSemantics = Semantics::causal;

std::vector<float> normal(std::size_t n, float stddev, Rng& rng) {
  std::vector<float> v(n);
  rng.fill_normal(v, 0.0f, stddev);
  return v;
}

struct HaxBranch {
  int T;
  SparseArch arch = parse_sparse_arch("sign_bin_lsh+key_selection");
  std::vector<float> Q, K, V, dout, H;
  std::vector<float> mlp[6], dmlp[6];  // W1, b1, W2, b2, W3, b3 and their gradients
  std::vector<float> proj, features, hidden1, hidden2, score, out, probs, dQ, dK, dV;
  std::vector<std::int32_t> buckets[2], candidates;
  SparseKeys keys;

  explicit HaxBranch(int length) : T(length) {
    Rng rng(3);
    const std::size_t F = 2 * kN;
    Q = normal(std::size_t(T) * kN, 1.0f, rng), K = normal(std::size_t(T) * kN, 0.25f, rng);
    V = normal(std::size_t(T) * kI, 1.0f, rng), dout = normal(std::size_t(T) * kI, 1.0f, rng);
    H = normal(std::size_t(kN) * kNumHash, 1.0f, rng);
    const std::size_t sizes[6] = {F * F, F, F * F, F, F, 1};
    for (int i = 0; i < 6; ++i) mlp[i] = normal(sizes[i], 0.1f, rng), dmlp[i].assign(sizes[i], 0.0f);
    proj.resize(std::size_t(T) * kNumHash), features.resize(T * F), hidden1.resize(T * F), hidden2.resize(T * F);
    score.resize(T), out.resize(std::size_t(T) * kI), dQ.resize(Q.size()), dK.resize(K.size()), dV.resize(V.size());
    for (int j = 0; j < arch.budget; ++j) candidates.push_back(std::int32_t(rng.below(T)));
  }

  ScorerWeights<float> weights() const {
    return {mlp[0].data(), mlp[1].data(), mlp[2].data(), mlp[3].data(), mlp[4].data(), mlp[5].data()};
  }

  void forward() {
    const float* x[2] = {Q.data(), K.data()};
    for (int i = 0; i < 2; ++i) {
      buckets[i].resize(T);
      lsh_projections(proj.data(), x[i], H.data(), T, kN, kNumHash, kSemantics);
      sign_bin_buckets(buckets[i].data(), proj.data(), T, kNumHash);
    }
    key_selection_features(features.data(), Q.data(), K.data(), T, kN, kSemantics);
    key_scorer_forward(score.data(), hidden1.data(), hidden2.data(), features.data(), weights(), T, kN);
    keys = build_sparse_keys(arch, T,
                             {.sign_bin_query_bucket = buckets[0],
                              .sign_bin_key_bucket = buckets[1],
                              .num_buckets = sign_bin_bucket_count(kNumHash),
                              .key_score = score});
    probs.resize(std::size_t(T) * keys.k_max);
    sparse_attention_forward(out.data(), probs.data(), Q.data(), K.data(), V.data(), keys, kN, kI, kSemantics);
  }

  void backward() {
    sparse_attention_backward(dQ.data(), dK.data(), dV.data(), dout.data(), probs.data(), Q.data(), K.data(), V.data(),
                              keys, kN, kI, kSemantics);
    const int k = int(candidates.size());
    std::vector<float> target(k), pred(k), dpred(k, 0.0f), dscore(T, 0.0f);
    gate_loss_targets(target.data(), Q.data(), K.data(), candidates.data(), k, T, kN);
    for (int j = 0; j < k; ++j) pred[j] = score[candidates[j]];
    benchmark::DoNotOptimize(gate_loss_forward(pred.data(), target.data(), k));
    gate_loss_backward(dpred.data(), 1.0f, pred.data(), target.data(), k);
    for (int j = 0; j < k; ++j) dscore[candidates[j]] += dpred[j];
    const ScorerGradients<float> g{dmlp[0].data(), dmlp[1].data(), dmlp[2].data(),
                                   dmlp[3].data(), dmlp[4].data(), dmlp[5].data()};
    key_scorer_backward(g, dscore.data(), features.data(), hidden1.data(), hidden2.data(), weights(), T, kN);
  }
};

void BM_HaxForwardBackward(benchmark::State& state) {
  HaxBranch hax(int(state.range(0)));
  for (auto _ : state) {
    hax.forward();
    hax.backward();
    benchmark::DoNotOptimize(hax.dV.data());
  }
  state.counters["time/token"] =
      benchmark::Counter(double(hax.T) * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["keys/query"] = double(hax.keys.total()) / hax.T;
}
BENCHMARK(BM_HaxForwardBackward)->Arg(4096)->Arg(16384)->Arg(65536)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_HaxForwardOnly(benchmark::State& state) {
  HaxBranch hax(int(state.range(0)));
  for (auto _ : state) {
    hax.forward();
    benchmark::DoNotOptimize(hax.out.data());
  }
  state.counters["time/token"] =
      benchmark::Counter(double(hax.T) * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_HaxForwardOnly)->Arg(4096)->Arg(16384)->Arg(65536)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace hax::ops::sparse
