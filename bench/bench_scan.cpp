// Selective scan timings: the fast kernel at the paper's training size (B=64, T=1057, I=256, N=16), with and
// without the real joint-recall lengths (about 464 of 1057 on average), and against the reference on a smaller
// batch. "states/s" counts real (b, t, c, n) state updates per second. The buffers are 64-byte aligned, as the
// engine's arena gives them: rows that straddle cache lines make the scan about 1.5x slower.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "hax/engine/aligned_buffer.h"
#include "hax/engine/rng.h"
#include "hax/ops/selective_scan.h"

namespace hax::ops {
namespace {

struct ScanBuffers {
  ScanShape shape;
  AlignedBuffer x, dt_raw, dt_bias, A_log, Bm, Cm, D, z, y, hT, dy, checkpoints;
  AlignedBuffer dx, ddt_raw, ddt_bias, dA_log, dBm, dCm, dD, dz;
  std::vector<std::int32_t> lengths;

  ScanBuffers(ScanShape s, bool with_lengths) : shape(s) {
    Rng rng(7);
    const std::size_t BT = std::size_t(s.batch) * s.seq_len, I = s.channels, N = s.state;
    auto normal = [&rng](std::size_t count, float mean, float stddev) {
      AlignedBuffer v(count);
      rng.fill_normal(v.span(), mean, stddev);
      return v;
    };
    x = normal(BT * I, 0, 1), dt_raw = normal(BT * I, 0, 0.3f), dt_bias = normal(I, -4, 1);
    A_log = normal(I * N, 1, 0.5f), Bm = normal(BT * N, 0, 1), Cm = normal(BT * N, 0, 1);
    D = normal(I, 1, 0.1f), z = normal(BT * I, 0, 1), dy = normal(BT * I, 0, 1);
    y = AlignedBuffer(BT * I), hT = AlignedBuffer(s.batch * I * N),
    checkpoints = AlignedBuffer(scan_checkpoint_floats(s));
    dx = AlignedBuffer(BT * I), ddt_raw = AlignedBuffer(BT * I), dz = AlignedBuffer(BT * I);
    dBm = AlignedBuffer(BT * N), dCm = AlignedBuffer(BT * N);
    ddt_bias = AlignedBuffer(I), dA_log = AlignedBuffer(I * N), dD = AlignedBuffer(I);
    // Uniform in [100, 828]: mean 464, like the joint-recall sequences padded to 1057.
    if (with_lengths)
      for (int b = 0; b < s.batch; ++b) lengths.push_back(100 + static_cast<std::int32_t>(rng.below(729)));
  }

  ScanInputs<float> inputs() const {
    return {x.data(),  dt_raw.data(), dt_bias.data(), A_log.data(), Bm.data(),
            Cm.data(), D.data(),      z.data(),       nullptr,      lengths.empty() ? nullptr : lengths.data()};
  }
  ScanGrads<float> grads() {
    return {dx.data(), ddt_raw.data(), ddt_bias.data(), dA_log.data(), dBm.data(), dCm.data(), dD.data(), dz.data()};
  }
  double real_states() const {
    double steps = 0;
    for (int b = 0; b < shape.batch; ++b) steps += lengths.empty() ? shape.seq_len : lengths[b];
    return steps * shape.channels * shape.state;
  }
};

constexpr ScanShape kTrainingShape{64, 1057, 256, 16};

void report(benchmark::State& state, const ScanBuffers& buf) {
  state.counters["states/s"] = benchmark::Counter(buf.real_states() * state.iterations(), benchmark::Counter::kIsRate);
}

// range(0): with lengths (1) or all positions real (0).
void BM_ScanForward(benchmark::State& state) {
  ScanBuffers buf(kTrainingShape, state.range(0));
  for (auto _ : state) {
    selective_scan_forward(buf.shape, buf.inputs(), buf.y.data(), buf.hT.data(), buf.checkpoints.data());
    benchmark::ClobberMemory();
  }
  report(state, buf);
}
BENCHMARK(BM_ScanForward)->ArgName("lengths")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ScanForwardBackward(benchmark::State& state) {
  ScanBuffers buf(kTrainingShape, state.range(0));
  for (auto _ : state) {
    selective_scan_forward(buf.shape, buf.inputs(), buf.y.data(), buf.hT.data(), buf.checkpoints.data());
    selective_scan_backward(buf.shape, buf.inputs(), buf.checkpoints.data(), buf.dy.data(), nullptr, buf.grads());
    benchmark::ClobberMemory();
  }
  report(state, buf);
}
BENCHMARK(BM_ScanForwardBackward)->ArgName("lengths")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// Fast against reference on 4 sequences of the training size (the reference keeps all (B, T, I, N) states).
constexpr ScanShape kSmallShape{4, 1057, 256, 16};

void BM_ScanForwardBackwardSmall(benchmark::State& state) {
  ScanBuffers buf(kSmallShape, false);
  for (auto _ : state) {
    selective_scan_forward(buf.shape, buf.inputs(), buf.y.data(), buf.hT.data(), buf.checkpoints.data());
    selective_scan_backward(buf.shape, buf.inputs(), buf.checkpoints.data(), buf.dy.data(), nullptr, buf.grads());
    benchmark::ClobberMemory();
  }
  report(state, buf);
}
BENCHMARK(BM_ScanForwardBackwardSmall)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ScanForwardBackwardSmallReference(benchmark::State& state) {
  ScanBuffers buf(kSmallShape, false);
  for (auto _ : state) {
    ref::selective_scan_forward(buf.shape, buf.inputs(), buf.y.data(), buf.hT.data());
    ref::selective_scan_backward(buf.shape, buf.inputs(), buf.dy.data(), static_cast<const float*>(nullptr),
                                 buf.grads());
    benchmark::ClobberMemory();
  }
  report(state, buf);
}
BENCHMARK(BM_ScanForwardBackwardSmallReference)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace hax::ops
