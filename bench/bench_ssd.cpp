// SSD scan timings (ops/ssd.h) at the double-size Mamba2 config's mixer (T=1057, H=8, P=32, N=32, G=1): one
// sequence, forward + backward, the chunked fast kernel for several chunk sizes against the sequential reference
// in float. "states/s" counts (t, h, p, n) state updates per second.
#include <benchmark/benchmark.h>

#include <vector>

#include "hax/engine/aligned_buffer.h"
#include "hax/engine/rng.h"
#include "hax/ops/ssd.h"
#include "hax/ops/ssd_ref.h"

namespace hax::ops {
namespace {

struct SsdBuffers {
  SsdShape shape;
  AlignedBuffer x, dt_raw, dt_bias, A_log, Bm, Cm, D, y, hT, dy, saved;
  AlignedBuffer dx, ddt_raw, ddt_bias, dA_log, dBm, dCm, dD;

  explicit SsdBuffers(SsdShape s) : shape(s) {
    Rng rng(7);
    const std::size_t T = s.seq_len, H = s.heads, P = s.head_dim, GN = std::size_t(s.groups) * s.state;
    auto normal = [&rng](std::size_t count, float mean, float stddev) {
      AlignedBuffer v(count);
      rng.fill_normal(v.span(), mean, stddev);
      return v;
    };
    x = normal(T * H * P, 0, 1), dt_raw = normal(T * H, 0, 0.3f), dt_bias = normal(H, -3, 1);
    A_log = normal(H, 1, 0.5f), Bm = normal(T * GN, 0, 1), Cm = normal(T * GN, 0, 1), D = normal(H, 1, 0.1f);
    dy = normal(T * H * P, 0, 1);
    y = AlignedBuffer(T * H * P), hT = AlignedBuffer(H * P * s.state), saved = AlignedBuffer(ssd_saved_floats(s));
    dx = AlignedBuffer(T * H * P), ddt_raw = AlignedBuffer(T * H), dBm = AlignedBuffer(T * GN);
    dCm = AlignedBuffer(T * GN), ddt_bias = AlignedBuffer(H), dA_log = AlignedBuffer(H), dD = AlignedBuffer(H);
  }
  SsdInputs<float> inputs() const {
    return {x.data(), dt_raw.data(), dt_bias.data(), A_log.data(), Bm.data(), Cm.data(), D.data(), nullptr};
  }
  SsdGrads<float> grads() {
    return {dx.data(), ddt_raw.data(), ddt_bias.data(), dA_log.data(), dBm.data(), dCm.data(), dD.data(), nullptr};
  }
  void report(benchmark::State& state) const {
    const double states = double(shape.seq_len) * shape.heads * shape.head_dim * shape.state;
    state.counters["states/s"] = benchmark::Counter(states * state.iterations(), benchmark::Counter::kIsRate);
  }
};

SsdShape double_size_shape(int chunk) { return {1057, 8, 32, 1, 32, chunk}; }

// range(0): the chunk.
void BM_SsdForwardBackward(benchmark::State& state) {
  SsdBuffers buf(double_size_shape(static_cast<int>(state.range(0))));
  for (auto _ : state) {
    ssd_forward(buf.shape, buf.inputs(), buf.y.data(), buf.hT.data(), buf.saved.data());
    ssd_backward(buf.shape, buf.inputs(), buf.saved.data(), buf.dy.data(), nullptr, buf.grads());
    benchmark::ClobberMemory();
  }
  buf.report(state);
}
BENCHMARK(BM_SsdForwardBackward)
    ->ArgName("chunk")
    ->Arg(16)
    ->Arg(32)
    ->Arg(64)
    ->Arg(128)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_SsdForward(benchmark::State& state) {
  SsdBuffers buf(double_size_shape(static_cast<int>(state.range(0))));
  for (auto _ : state) {
    ssd_forward(buf.shape, buf.inputs(), buf.y.data(), buf.hT.data(), buf.saved.data());
    benchmark::ClobberMemory();
  }
  buf.report(state);
}
BENCHMARK(BM_SsdForward)->ArgName("chunk")->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SsdReferenceForwardBackward(benchmark::State& state) {
  SsdBuffers buf(double_size_shape(64));
  for (auto _ : state) {
    ref::ssd_forward(buf.shape, buf.inputs(), buf.y.data(), buf.hT.data());
    ref::ssd_backward(buf.shape, buf.inputs(), buf.dy.data(), static_cast<const float*>(nullptr), buf.grads());
    benchmark::ClobberMemory();
  }
  buf.report(state);
}
BENCHMARK(BM_SsdReferenceForwardBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace hax::ops
