// Random selective-scan problems for the tests, in double (for the reference) or float (for the fast kernel), and
// runners that return every output and gradient, indexed by the input they belong to.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "hax/engine/rng.h"
#include "hax/ops/selective_scan.h"

namespace hax::ops::testing {

enum Tensor { kX, kDtRaw, kDtBias, kALog, kBm, kCm, kD, kZ, kH0, kNumTensors };
inline const char* const kTensorNames[kNumTensors] = {"x", "dt_raw", "dt_bias", "A_log", "Bm", "Cm", "D", "z", "h0"};

struct CaseOptions {
  bool h0 = false;       // random initial state
  bool lengths = false;  // random lengths in [0, T], sequence 0 always full
  bool dhT = false;      // random gradient reaching the final state
  // The drop-in op's variants (capi/): A itself in the A_log slot (= -exp of the drawn A_log, gradient dA), and
  // inputs left out (their slot and gradient stay, unused and zero). Without softplus dt_raw is drawn >= 0.
  bool direct_A = false, no_z = false, no_D = false, no_dt_bias = false, no_softplus = false;
};

template <class S>
struct ScanCase {
  ScanShape shape;
  std::array<std::vector<S>, kNumTensors> in;  // in[kH0] empty without h0
  std::vector<std::int32_t> lengths;           // empty: all T
  std::vector<S> dy;                           // (B, T, I)
  std::vector<S> dhT;                          // (B, I, N) or empty
  CaseOptions options;

  ScanInputs<S> inputs() const {
    ScanInputs<S> i;
    i.x = in[kX].data(), i.dt_raw = in[kDtRaw].data(), i.dt_bias = in[kDtBias].data(), i.A_log = in[kALog].data();
    i.Bm = in[kBm].data(), i.Cm = in[kCm].data(), i.D = in[kD].data(), i.z = in[kZ].data();
    i.h0 = in[kH0].empty() ? nullptr : in[kH0].data();
    i.lengths = lengths.empty() ? nullptr : lengths.data();
    if (options.direct_A) std::swap(i.A, i.A_log);
    if (options.no_z) i.z = nullptr;
    if (options.no_D) i.D = nullptr;
    if (options.no_dt_bias) i.dt_bias = nullptr;
    i.delta_softplus = !options.no_softplus;
    return i;
  }
  const S* dhT_or_null() const { return dhT.empty() ? nullptr : dhT.data(); }
};

template <class S>
struct ScanResult {
  std::vector<S> y, hT;
  std::array<std::vector<S>, kNumTensors> grad;  // grad[t] has the size of the input t (zero-filled before backward)

  ScanGrads<S> grads(const CaseOptions& options) {
    ScanGrads<S> g;
    g.dx = grad[kX].data(), g.ddt_raw = grad[kDtRaw].data(), g.ddt_bias = grad[kDtBias].data();
    g.dA_log = grad[kALog].data(), g.dBm = grad[kBm].data(), g.dCm = grad[kCm].data(), g.dD = grad[kD].data();
    g.dz = grad[kZ].data(), g.dh0 = grad[kH0].empty() ? nullptr : grad[kH0].data();
    if (options.direct_A) std::swap(g.dA, g.dA_log);
    if (options.no_z) g.dz = nullptr;
    if (options.no_D) g.dD = nullptr;
    if (options.no_dt_bias) g.ddt_bias = nullptr;
    return g;
  }
};

// Values drawn in float, so that the float and double versions of a case hold the same numbers.
inline ScanCase<double> make_case(std::uint64_t seed, ScanShape shape, CaseOptions options) {
  Rng rng(seed);
  const std::size_t BT = std::size_t(shape.batch) * shape.seq_len, I = shape.channels, N = shape.state;
  auto draw = [&rng](std::size_t count, float mean, float stddev) {
    std::vector<float> f(count);
    rng.fill_normal(f, mean, stddev);
    return std::vector<double>(f.begin(), f.end());
  };
  ScanCase<double> c;
  c.shape = shape;
  c.options = options;
  c.in[kX] = draw(BT * I, 0.0f, 1.0f);
  c.in[kDtRaw] = draw(BT * I, 0.0f, 0.5f);
  c.in[kDtBias] = draw(I, -1.5f, 1.0f);  // Δ from about 0.02 to 1.5: decays from slow to fast
  c.in[kALog] = draw(I * N, 0.0f, 0.3f);
  for (std::size_t i = 0; i < I * N; ++i) c.in[kALog][i] += static_cast<float>(std::log(double(i % N + 1)));
  if (options.direct_A)
    for (double& a : c.in[kALog]) a = static_cast<float>(-std::exp(a));
  if (options.no_softplus) {  // Δ = dt_raw (+ dt_bias) must stay >= 0: about 0.2 to 1
    for (double& v : c.in[kDtRaw]) v = static_cast<float>(std::log1p(std::exp(v - 1.5)));
    for (double& v : c.in[kDtBias]) v = static_cast<float>(0.2 * std::abs(v));
  }
  c.in[kBm] = draw(BT * N, 0.0f, 1.0f);
  c.in[kCm] = draw(BT * N, 0.0f, 1.0f);
  c.in[kD] = draw(I, 1.0f, 0.3f);
  c.in[kZ] = draw(BT * I, 0.0f, 1.0f);
  if (options.h0) c.in[kH0] = draw(std::size_t(shape.batch) * I * N, 0.0f, 1.0f);
  c.dy = draw(BT * I, 0.0f, 1.0f);
  if (options.dhT) c.dhT = draw(std::size_t(shape.batch) * I * N, 0.0f, 1.0f);
  if (options.lengths) {
    for (int b = 0; b < shape.batch; ++b)
      c.lengths.push_back(b == 0 ? shape.seq_len : static_cast<std::int32_t>(rng.below(shape.seq_len + 1)));
  }
  return c;
}

template <class To, class From>
ScanCase<To> convert(const ScanCase<From>& from) {
  auto cast = [](const std::vector<From>& v) { return std::vector<To>(v.begin(), v.end()); };
  ScanCase<To> to;
  to.shape = from.shape;
  for (int t = 0; t < kNumTensors; ++t) to.in[t] = cast(from.in[t]);
  to.lengths = from.lengths;
  to.dy = cast(from.dy);
  to.dhT = cast(from.dhT);
  to.options = from.options;
  return to;
}

template <class S>
ScanResult<S> empty_result(const ScanCase<S>& c) {
  ScanResult<S> r;
  r.y.assign(c.in[kX].size(), S(0));
  r.hT.assign(std::size_t(c.shape.batch) * c.shape.channels * c.shape.state, S(0));
  for (int t = 0; t < kNumTensors; ++t) r.grad[t].assign(c.in[t].size(), S(0));
  return r;
}

template <class S>
ScanResult<S> run_reference(const ScanCase<S>& c) {
  ScanResult<S> r = empty_result(c);
  ref::selective_scan_forward(c.shape, c.inputs(), r.y.data(), r.hT.data());
  ref::selective_scan_backward(c.shape, c.inputs(), c.dy.data(), c.dhT_or_null(), r.grads(c.options));
  return r;
}

inline ScanResult<float> run_fast(const ScanCase<float>& c, int chunk = kScanChunk) {
  ScanResult<float> r = empty_result(c);
  std::vector<float> checkpoints(scan_checkpoint_floats(c.shape, chunk));
  selective_scan_forward(c.shape, c.inputs(), r.y.data(), r.hT.data(), checkpoints.data(), chunk);
  selective_scan_backward(c.shape, c.inputs(), checkpoints.data(), c.dy.data(), c.dhT_or_null(), r.grads(c.options),
                          chunk);
  return r;
}

}  // namespace hax::ops::testing
