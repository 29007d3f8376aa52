// Core op timings at the training sizes of the paper's models (reference §2.2: Bt=64 sequences of T=1057, so
// M = 67,648 rows; D = 64/128, I = 128/256, V = 100), each as <Fast> (the fp32 kernels) and <Ref> (the plain
// reference templates, instantiated in float), so that one run gives both times and their ratio is the speed-up.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "hax/engine/rng.h"
#include "hax/ops/accuracy.h"
#include "hax/ops/accuracy_ref.h"
#include "hax/ops/activations.h"
#include "hax/ops/activations_ref.h"
#include "hax/ops/conv1d.h"
#include "hax/ops/conv1d_ref.h"
#include "hax/ops/cross_entropy.h"
#include "hax/ops/cross_entropy_ref.h"
#include "hax/ops/embedding.h"
#include "hax/ops/embedding_ref.h"
#include "hax/ops/linear.h"
#include "hax/ops/linear_ref.h"
#include "hax/ops/residual.h"
#include "hax/ops/residual_ref.h"
#include "hax/ops/rmsnorm.h"
#include "hax/ops/rmsnorm_ref.h"
#include "hax/training/adamw.h"
#include "hax/training/adamw_ref.h"

namespace hax::ops {
namespace {

constexpr int kBatch = 64, kSeqLen = 1057, kRows = kBatch * kSeqLen, kVocab = 100, kConvTaps = 4;
constexpr double kScoredFraction = 0.15;  // joint recall scores 25..256 of 1057 positions per sequence

struct Fast {};
struct Ref {};

// The fast kernel for Impl = Fast, the reference for Impl = Ref.
template <class Impl, class FastFn, class RefFn>
auto kernel(FastFn fast, RefFn ref) {
  if constexpr (std::is_same_v<Impl, Fast>)
    return fast;
  else
    return ref;
}

std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  Rng(seed).fill_uniform(v, lo, hi);
  return v;
}

std::vector<std::int32_t> random_ids(std::size_t n, int below) {
  Rng rng(11);
  std::vector<std::int32_t> ids(n);
  for (auto& id : ids) id = static_cast<std::int32_t>(rng.below(below));
  return ids;
}

std::vector<std::uint8_t> random_mask(std::size_t n) {
  Rng rng(12);
  std::vector<std::uint8_t> mask(n);
  for (auto& m : mask) m = rng.uniform_double() < kScoredFraction;
  return mask;
}

// Runs `step` as the timed body and reports rows (or elements) per second.
template <class Step>
void run(benchmark::State& state, std::int64_t items_per_step, Step&& step) {
  for (auto _ : state) {
    step();
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * items_per_step);
}

// range(0) = D.
template <class Impl>
void BM_EmbeddingForward(benchmark::State& state) {
  const int D = int(state.range(0));
  const auto ids = random_ids(kRows, kVocab);
  const auto table = random_floats(std::size_t(kVocab) * D, 1);
  std::vector<float> out(std::size_t(kRows) * D);
  run(state, kRows, [&] {
    kernel<Impl>(embedding_forward, ref::embedding_forward<float>)(out.data(), ids.data(), table.data(), kRows, kVocab,
                                                                   D);
  });
}

template <class Impl>
void BM_EmbeddingBackward(benchmark::State& state) {
  const int D = int(state.range(0));
  const auto ids = random_ids(kRows, kVocab);
  const auto dout = random_floats(std::size_t(kRows) * D, 1);
  std::vector<float> dtable(std::size_t(kVocab) * D);
  run(state, kRows, [&] {
    kernel<Impl>(embedding_backward, ref::embedding_backward<float>)(dtable.data(), dout.data(), ids.data(), kRows,
                                                                     kVocab, D);
  });
}

// range(0) = K (in features), range(1) = N (out features).
template <class Impl>
void BM_LinearForward(benchmark::State& state) {
  const int K = int(state.range(0)), N = int(state.range(1));
  const auto x = random_floats(std::size_t(kRows) * K, 1), W = random_floats(std::size_t(N) * K, 2);
  const auto b = random_floats(N, 3);
  std::vector<float> y(std::size_t(kRows) * N);
  run(state, kRows, [&] {
    kernel<Impl>(linear_forward, ref::linear_forward<float>)(y.data(), x.data(), W.data(), b.data(), kRows, K, N);
  });
}

template <class Impl>
void BM_LinearBackward(benchmark::State& state) {
  const int K = int(state.range(0)), N = int(state.range(1));
  const auto x = random_floats(std::size_t(kRows) * K, 1), W = random_floats(std::size_t(N) * K, 2);
  const auto dy = random_floats(std::size_t(kRows) * N, 3);
  std::vector<float> dx(std::size_t(kRows) * K), dW(std::size_t(N) * K), db(N);
  run(state, kRows, [&] {
    kernel<Impl>(linear_backward, ref::linear_backward<float>)(dx.data(), dW.data(), db.data(), dy.data(), x.data(),
                                                               W.data(), kRows, K, N);
  });
}

// range(0) = D.
template <class Impl>
void BM_RmsNormForward(benchmark::State& state) {
  const int D = int(state.range(0));
  const auto x = random_floats(std::size_t(kRows) * D, 1), w = random_floats(D, 2);
  std::vector<float> y(x.size()), rstd(kRows);
  run(state, kRows, [&] {
    kernel<Impl>(rmsnorm_forward, ref::rmsnorm_forward<float>)(y.data(), rstd.data(), x.data(), w.data(), kRows, D,
                                                               1e-5f);
  });
}

template <class Impl>
void BM_RmsNormBackward(benchmark::State& state) {
  const int D = int(state.range(0));
  const auto x = random_floats(std::size_t(kRows) * D, 1), w = random_floats(D, 2);
  const auto dy = random_floats(x.size(), 3);
  std::vector<float> y(x.size()), rstd(kRows), dx(x.size()), dw(D);
  rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), kRows, D);
  run(state, kRows, [&] {
    kernel<Impl>(rmsnorm_backward, ref::rmsnorm_backward<float>)(dx.data(), dw.data(), dy.data(), x.data(), w.data(),
                                                                 rstd.data(), kRows, D);
  });
}

// Elementwise activations over (M, I); range(0) = I.
template <class Impl>
void BM_SiluForward(benchmark::State& state) {
  const std::size_t n = std::size_t(kRows) * state.range(0);
  const auto x = random_floats(n, 1, -6.0f, 6.0f);
  std::vector<float> y(n);
  run(state, n, [&] { kernel<Impl>(silu_forward, ref::silu_forward<float>)(y.data(), x.data(), n); });
}

template <class Impl>
void BM_SiluBackward(benchmark::State& state) {
  const std::size_t n = std::size_t(kRows) * state.range(0);
  const auto x = random_floats(n, 1, -6.0f, 6.0f), dy = random_floats(n, 2);
  std::vector<float> dx(n);
  run(state, n, [&] { kernel<Impl>(silu_backward, ref::silu_backward<float>)(dx.data(), dy.data(), x.data(), n); });
}

template <class Impl>
void BM_SoftplusForward(benchmark::State& state) {
  const std::size_t n = std::size_t(kRows) * state.range(0);
  const auto x = random_floats(n, 1, -8.0f, 2.0f);  // dt before softplus: mostly negative
  std::vector<float> y(n);
  run(state, n, [&] { kernel<Impl>(softplus_forward, ref::softplus_forward<float>)(y.data(), x.data(), n); });
}

template <class Impl>
void BM_SoftplusBackward(benchmark::State& state) {
  const std::size_t n = std::size_t(kRows) * state.range(0);
  const auto x = random_floats(n, 1, -8.0f, 2.0f), dy = random_floats(n, 2);
  std::vector<float> dx(n);
  run(state, n,
      [&] { kernel<Impl>(softplus_backward, ref::softplus_backward<float>)(dx.data(), dy.data(), x.data(), n); });
}

// (B, T, C) with C = range(0), K = 4.
template <class Impl>
void BM_Conv1dForward(benchmark::State& state) {
  const int C = int(state.range(0));
  const auto x = random_floats(std::size_t(kRows) * C, 1), w = random_floats(C * kConvTaps, 2);
  const auto b = random_floats(C, 3);
  std::vector<float> y(x.size());
  run(state, kRows, [&] {
    kernel<Impl>(conv1d_causal_forward, ref::conv1d_causal_forward<float>)(y.data(), x.data(), w.data(), b.data(),
                                                                           nullptr, kBatch, kSeqLen, C, kConvTaps);
  });
}

template <class Impl>
void BM_Conv1dBackward(benchmark::State& state) {
  const int C = int(state.range(0));
  const auto x = random_floats(std::size_t(kRows) * C, 1), w = random_floats(C * kConvTaps, 2);
  const auto dy = random_floats(x.size(), 3);
  std::vector<float> dx(x.size()), dw(C * kConvTaps), db(C);
  run(state, kRows, [&] {
    kernel<Impl>(conv1d_causal_backward, ref::conv1d_causal_backward<float>)(dx.data(), dw.data(), db.data(), nullptr,
                                                                             dy.data(), x.data(), w.data(), nullptr,
                                                                             kBatch, kSeqLen, C, kConvTaps);
  });
}

// (M, D) with D = range(0).
template <class Impl>
void BM_ResidualForward(benchmark::State& state) {
  const std::size_t n = std::size_t(kRows) * state.range(0);
  const auto a = random_floats(n, 1), b = random_floats(n, 2);
  std::vector<float> y(n);
  run(state, n, [&] { kernel<Impl>(residual_forward, ref::residual_forward<float>)(y.data(), a.data(), b.data(), n); });
}

template <class Impl>
void BM_ResidualBackward(benchmark::State& state) {
  const std::size_t n = std::size_t(kRows) * state.range(0);
  const auto dy = random_floats(n, 1);
  std::vector<float> da(n), db(n);
  run(state, n,
      [&] { kernel<Impl>(residual_backward, ref::residual_backward<float>)(da.data(), db.data(), dy.data(), n); });
}

// Logits (M, V) = h (M, D) E^T, D = range(0).
template <class Impl>
void BM_TiedOutputForwardBackward(benchmark::State& state) {
  const int D = int(state.range(0));
  const auto h = random_floats(std::size_t(kRows) * D, 1), E = random_floats(std::size_t(kVocab) * D, 2);
  const auto dlogits = random_floats(std::size_t(kRows) * kVocab, 3);
  std::vector<float> logits(dlogits.size()), dh(h.size()), dE(E.size());
  run(state, kRows, [&] {
    kernel<Impl>(tied_output_forward, ref::tied_output_forward<float>)(logits.data(), h.data(), E.data(), kRows, D,
                                                                       kVocab);
    kernel<Impl>(tied_output_backward, ref::tied_output_backward<float>)(dh.data(), dE.data(), dlogits.data(), h.data(),
                                                                         E.data(), kRows, D, kVocab);
  });
}

template <class Impl>
void BM_CrossEntropyForwardBackward(benchmark::State& state) {
  const auto logits = random_floats(std::size_t(kRows) * kVocab, 1, -4.0f, 4.0f);
  const auto labels = random_ids(kRows, kVocab);
  const auto mask = random_mask(kRows);
  std::vector<float> dlogits(logits.size());
  run(state, kRows, [&] {
    benchmark::DoNotOptimize(kernel<Impl>(cross_entropy_forward, ref::cross_entropy_forward<float>)(
        logits.data(), labels.data(), mask.data(), kRows, kVocab));
    kernel<Impl>(cross_entropy_backward, ref::cross_entropy_backward<float>)(dlogits.data(), 1.0f, logits.data(),
                                                                             labels.data(), mask.data(), kRows, kVocab);
  });
}

template <class Impl>
void BM_SequenceAccuracy(benchmark::State& state) {
  const auto logits = random_floats(std::size_t(kRows) * kVocab, 1, -4.0f, 4.0f);
  const auto labels = random_ids(kRows, kVocab);
  const auto mask = random_mask(kRows);
  std::vector<double> per_sequence(kBatch);
  run(state, kRows, [&] {
    benchmark::DoNotOptimize(kernel<Impl>(sequence_accuracy, ref::sequence_accuracy<float>)(
        per_sequence.data(), logits.data(), labels.data(), mask.data(), kBatch, kSeqLen, kVocab));
  });
}

// One AdamW step over range(0) parameters (86,658: Mamba + HAX; 246,144: the double-size Mamba baseline).
template <class Impl>
void BM_AdamWStep(benchmark::State& state) {
  const std::size_t n = state.range(0);
  auto params = random_floats(n, 1);
  const auto grads = random_floats(n, 2, -1e-2f, 1e-2f);
  training::AdamW adamw(n);
  std::vector<float> m(n), v(n);
  std::int64_t step = 0;
  run(state, n, [&] {
    if constexpr (std::is_same_v<Impl, Fast>)
      adamw.step(params, grads, 1e-3);
    else
      training::ref::adamw_step(params.data(), grads.data(), m.data(), v.data(), n, {}, 1e-3, ++step);
  });
}

using BenchmarkFn = void (*)(benchmark::State&);

// Registers "<name>/fast" and "<name>/ref" next to each other for every argument set, so the output reads as pairs.
void register_pair(const std::string& name, BenchmarkFn fast, BenchmarkFn ref, std::vector<std::string> arg_names,
                   std::vector<std::vector<std::int64_t>> arg_sets) {
  for (const auto& args : arg_sets)
    for (const auto& [suffix, fn] : {std::pair{"/fast", fast}, std::pair{"/ref", ref}})
      benchmark::RegisterBenchmark((name + suffix).c_str(), fn)
          ->ArgNames(arg_names)
          ->Args(args)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
}

const bool kRegistered = [] {
  register_pair("EmbeddingForward", BM_EmbeddingForward<Fast>, BM_EmbeddingForward<Ref>, {"D"}, {{64}, {128}});
  register_pair("EmbeddingBackward", BM_EmbeddingBackward<Fast>, BM_EmbeddingBackward<Ref>, {"D"}, {{64}, {128}});
  // in_proj (D -> 2I) and out_proj (I -> D) of the base and double-size Mamba.
  const std::vector<std::vector<std::int64_t>> projections{{64, 256}, {128, 64}, {128, 512}, {256, 128}};
  register_pair("LinearForward", BM_LinearForward<Fast>, BM_LinearForward<Ref>, {"K", "N"}, projections);
  register_pair("LinearBackward", BM_LinearBackward<Fast>, BM_LinearBackward<Ref>, {"K", "N"}, projections);
  register_pair("TiedOutputForwardBackward", BM_TiedOutputForwardBackward<Fast>, BM_TiedOutputForwardBackward<Ref>,
                {"D"}, {{64}, {128}});
  register_pair("RmsNormForward", BM_RmsNormForward<Fast>, BM_RmsNormForward<Ref>, {"D"}, {{64}, {128}});
  register_pair("RmsNormBackward", BM_RmsNormBackward<Fast>, BM_RmsNormBackward<Ref>, {"D"}, {{64}, {128}});
  register_pair("SiluForward", BM_SiluForward<Fast>, BM_SiluForward<Ref>, {"I"}, {{128}, {256}});
  register_pair("SiluBackward", BM_SiluBackward<Fast>, BM_SiluBackward<Ref>, {"I"}, {{128}, {256}});
  register_pair("SoftplusForward", BM_SoftplusForward<Fast>, BM_SoftplusForward<Ref>, {"I"}, {{128}, {256}});
  register_pair("SoftplusBackward", BM_SoftplusBackward<Fast>, BM_SoftplusBackward<Ref>, {"I"}, {{128}, {256}});
  register_pair("Conv1dForward", BM_Conv1dForward<Fast>, BM_Conv1dForward<Ref>, {"C"}, {{128}, {256}});
  register_pair("Conv1dBackward", BM_Conv1dBackward<Fast>, BM_Conv1dBackward<Ref>, {"C"}, {{128}, {256}});
  register_pair("ResidualForward", BM_ResidualForward<Fast>, BM_ResidualForward<Ref>, {"D"}, {{64}, {128}});
  register_pair("ResidualBackward", BM_ResidualBackward<Fast>, BM_ResidualBackward<Ref>, {"D"}, {{64}, {128}});
  register_pair("CrossEntropyForwardBackward", BM_CrossEntropyForwardBackward<Fast>,
                BM_CrossEntropyForwardBackward<Ref>, {"V"}, {{kVocab}});
  register_pair("SequenceAccuracy", BM_SequenceAccuracy<Fast>, BM_SequenceAccuracy<Ref>, {"V"}, {{kVocab}});
  register_pair("AdamWStep", BM_AdamWStep<Fast>, BM_AdamWStep<Ref>, {"params"}, {{86658}, {246144}});
  return true;
}();

}  // namespace
}  // namespace hax::ops
