// hax_causal_conv1d_* (ops/conv1d.h, after a move to time-major) and hax_ssd_* (ops/ssd.h, whose per-sequence layout
// is already mamba_chunk_scan_combined's).
#include <algorithm>
#include <vector>

#include "hax/capi/capi_support.h"
#include "hax/capi/hax_c.h"
#include "hax/ops/conv1d.h"
#include "hax/ops/ssd.h"

namespace hax::capi {
namespace {

void check_conv(int batch, int dim, int seq_len, int width, const float* x, const float* weight) {
  check(batch >= 0 && seq_len >= 0, "batch and seq_len must be >= 0, got ", batch, " and ", seq_len);
  positive(dim, "dim");
  positive(width, "width");
  require(x, "x");
  require(weight, "weight");
}

struct SsdPlan {
  ops::SsdShape shape;
  int batch;
  std::size_t x_rows() const { return std::size_t(shape.seq_len) * shape.heads * shape.head_dim; }
  std::size_t dt_rows() const { return std::size_t(shape.seq_len) * shape.heads; }
  std::size_t bc_rows() const { return std::size_t(shape.seq_len) * shape.groups * shape.state; }
  std::size_t state() const { return std::size_t(shape.heads) * shape.head_dim * shape.state; }
  std::size_t saved() const { return ops::ssd_saved_floats(shape); }
};

SsdPlan checked_plan(const hax_ssd_args* a) {
  require(a, "args");
  check(a->batch >= 0 && a->seq_len >= 0, "batch and seq_len must be >= 0, got ", a->batch, " and ", a->seq_len);
  positive(a->heads, "heads");
  positive(a->head_dim, "head_dim");
  positive(a->groups, "groups");
  positive(a->dstate, "dstate");
  positive(a->chunk_size, "chunk_size");
  check(a->heads % a->groups == 0, "heads ", a->heads, " are not divisible by the number of groups ", a->groups);
  for (const auto& [p, name] : {std::pair{a->x, "x"}, {a->dt, "dt"}, {a->A, "A"}, {a->B, "B"}, {a->C, "C"}})
    require(p, name);
  for (int h = 0; h < a->heads; ++h) check(a->A[h] < 0.0f, "A must be < 0 everywhere, got A[", h, "] = ", a->A[h]);
  if (!a->dt_softplus) {
    for (std::size_t i = 0; i < std::size_t(a->batch) * a->seq_len * a->heads; ++i) {
      const float bias = a->dt_bias ? a->dt_bias[i % a->heads] : 0.0f;
      check(a->dt[i] + bias >= 0.0f, "dt + dt_bias must be >= 0 without dt_softplus (a decaying state)");
    }
  }
  return {{a->seq_len, a->heads, a->head_dim, a->groups, a->dstate, a->chunk_size}, a->batch};
}

ops::SsdInputs<float> sequence_inputs(const hax_ssd_args* a, const SsdPlan& p, int b) {
  ops::SsdInputs<float> in;
  in.x = a->x + b * p.x_rows();
  in.dt_raw = a->dt + b * p.dt_rows();
  in.dt_bias = a->dt_bias;
  in.A = a->A;
  in.Bm = a->B + b * p.bc_rows();
  in.Cm = a->C + b * p.bc_rows();
  in.D = a->D;
  in.h0 = a->initial_state ? a->initial_state + b * p.state() : nullptr;
  in.dt_softplus = a->dt_softplus != 0;
  return in;
}

// A gradient the caller may not want still goes somewhere when the kernel needs it: the caller's buffer, zeroed,
// or nothing.
float* zeroed(float* p, std::size_t n) {
  if (p) std::fill_n(p, n, 0.0f);
  return p;
}

}  // namespace
}  // namespace hax::capi

using namespace hax::capi;

extern "C" {

int hax_causal_conv1d_forward(int batch, int dim, int seq_len, int width, const float* x, const float* weight,
                              const float* bias, float* out) {
  return guarded("causal_conv1d forward", [&] {
    check_conv(batch, dim, seq_len, width, x, weight);
    require(out, "out");
    const std::size_t n = std::size_t(batch) * dim * seq_len;
    std::vector<float> xt(n), yt(n);
    transpose_last_two(x, xt.data(), batch, dim, seq_len);
    hax::ops::conv1d_causal_forward(yt.data(), xt.data(), weight, bias, nullptr, batch, seq_len, dim, width);
    transpose_last_two(yt.data(), out, batch, seq_len, dim);
  });
}

int hax_causal_conv1d_backward(int batch, int dim, int seq_len, int width, const float* x, const float* weight,
                               const float* dout, float* dx, float* dweight, float* dbias) {
  return guarded("causal_conv1d backward", [&] {
    check_conv(batch, dim, seq_len, width, x, weight);
    require(dout, "dout");
    const std::size_t n = std::size_t(batch) * dim * seq_len;
    std::vector<float> xt(n), dyt(n), dxt(dx ? n : 0);
    transpose_last_two(x, xt.data(), batch, dim, seq_len);
    transpose_last_two(dout, dyt.data(), batch, dim, seq_len);
    hax::ops::conv1d_causal_backward(dx ? dxt.data() : nullptr, zeroed(dweight, std::size_t(dim) * width),
                                     zeroed(dbias, dim), nullptr, dyt.data(), xt.data(), weight, nullptr, batch,
                                     seq_len, dim, width);
    if (dx) transpose_last_two(dxt.data(), dx, batch, seq_len, dim);
  });
}

size_t hax_ssd_saved_floats(const hax_ssd_args* args) {
  std::size_t floats = 0;
  if (guarded("hax_ssd_saved_floats", [&] {
        const SsdPlan p = checked_plan(args);
        floats = p.saved() * p.batch;
      }) != 0)
    return 0;
  return floats;
}

int hax_ssd_forward(const hax_ssd_args* a, float* y, float* final_state, float* saved) {
  return guarded("ssd forward", [&] {
    const SsdPlan p = checked_plan(a);
    require(y, "y");
    for (int b = 0; b < p.batch; ++b)
      hax::ops::ssd_forward(p.shape, sequence_inputs(a, p, b), y + b * p.x_rows(),
                            final_state ? final_state + b * p.state() : nullptr, saved ? saved + b * p.saved() : nullptr);
  });
}

int hax_ssd_backward(const hax_ssd_args* a, const float* saved, const float* dy, const float* dfinal_state, float* dx,
                     float* ddt, float* dA, float* dB, float* dC, float* dD, float* ddt_bias, float* dinitial_state) {
  return guarded("ssd backward", [&] {
    const SsdPlan p = checked_plan(a);
    require(saved, "saved");
    require(dy, "dy");
    zeroed(dx, p.batch * p.x_rows());
    zeroed(ddt, p.batch * p.dt_rows());
    zeroed(dB, p.batch * p.bc_rows());
    zeroed(dC, p.batch * p.bc_rows());
    zeroed(dinitial_state, a->initial_state ? p.batch * p.state() : 0);
    zeroed(dA, a->heads);
    zeroed(dD, a->D ? a->heads : 0);
    zeroed(ddt_bias, a->dt_bias ? a->heads : 0);
    // Sequences one after another (the kernel threads over heads), so the per-head sums add up in sequence order.
    for (int b = 0; b < p.batch; ++b) {
      hax::ops::SsdGrads<float> g;
      g.dx = dx ? dx + b * p.x_rows() : nullptr;
      g.ddt_raw = ddt ? ddt + b * p.dt_rows() : nullptr;
      g.ddt_bias = a->dt_bias ? ddt_bias : nullptr;
      g.dA = dA;
      g.dBm = dB ? dB + b * p.bc_rows() : nullptr;
      g.dCm = dC ? dC + b * p.bc_rows() : nullptr;
      g.dD = a->D ? dD : nullptr;
      g.dh0 = a->initial_state && dinitial_state ? dinitial_state + b * p.state() : nullptr;
      hax::ops::ssd_backward(p.shape, sequence_inputs(a, p, b), saved + b * p.saved(), dy + b * p.x_rows(),
                             dfinal_state ? dfinal_state + b * p.state() : nullptr, g);
    }
  });
}

}  // extern "C"
