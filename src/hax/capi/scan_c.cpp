// hax_selective_scan_*: mamba_ssm's selective_scan_fn on ops/selective_scan.h. The inputs are moved to the kernel's
// group-major, time-major layout (one contiguous (batch, L, dim / groups) problem per group, which shares one B and
// C), each group is scanned, and the results moved back. The moves are O(batch dim L); the scan is N times that.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "hax/capi/capi_support.h"
#include "hax/capi/hax_c.h"
#include "hax/ops/selective_scan.h"

namespace hax::capi {
namespace {

struct ScanPlan {
  int batch, dim, L, N, G, channels;  // channels = dim / G per group
  ops::ScanShape shape() const { return {batch, L, channels, N}; }
  std::size_t per_channel() const { return std::size_t(batch) * dim * L; }
  std::size_t per_state() const { return std::size_t(batch) * G * N * L; }
  std::size_t checkpoint_floats() const { return ops::scan_checkpoint_floats(shape()); }
};

ScanPlan checked_plan(const hax_scan_args* a) {
  require(a, "args");
  check(a->batch >= 0 && a->seq_len >= 0, "batch and seq_len must be >= 0, got ", a->batch, " and ", a->seq_len);
  positive(a->dim, "dim");
  positive(a->dstate, "dstate");
  positive(a->groups, "groups");
  check(a->dim % a->groups == 0, "dim ", a->dim, " is not divisible by the number of groups ", a->groups);
  require(a->u, "u");
  require(a->delta, "delta");
  require(a->A, "A");
  require(a->B, "B");
  require(a->C, "C");
  return {a->batch, a->dim, a->seq_len, a->dstate, a->groups, a->dim / a->groups};
}

// The kernel needs a decaying state (A < 0, Δ >= 0): checked here, where a caller may pass anything.
void check_decay(const hax_scan_args* a, const ScanPlan& p) {
  for (std::size_t i = 0; i < std::size_t(p.dim) * p.N; ++i)
    check(a->A[i] < 0.0f, "A must be < 0 everywhere (a decaying state), got A[", i / p.N, ", ", i % p.N, "] = ",
          a->A[i]);
  if (a->delta_softplus) return;
  bool ok = true;
#pragma omp parallel for reduction(&& : ok) schedule(static)
  for (std::size_t i = 0; i < p.per_channel(); ++i) {
    const float bias = a->delta_bias ? a->delta_bias[(i / p.L) % p.dim] : 0.0f;
    ok = ok && a->delta[i] + bias >= 0.0f;
  }
  check(ok, "delta + delta_bias must be >= 0 without delta_softplus (a decaying state)");
}

// The inputs in the kernel's layout.
struct GroupMajorInputs {
  std::vector<float> u, delta, z, B, C;
  GroupMajorInputs(const hax_scan_args* a, const ScanPlan& p)
      : u(p.per_channel()), delta(p.per_channel()), z(a->z ? p.per_channel() : 0), B(p.per_state()), C(p.per_state()) {
    to_group_major(a->u, u.data(), p.batch, p.G, p.channels, p.L);
    to_group_major(a->delta, delta.data(), p.batch, p.G, p.channels, p.L);
    if (a->z) to_group_major(a->z, z.data(), p.batch, p.G, p.channels, p.L);
    to_group_major(a->B, B.data(), p.batch, p.G, p.N, p.L);
    to_group_major(a->C, C.data(), p.batch, p.G, p.N, p.L);
  }
  // Group g's kernel inputs.
  ops::ScanInputs<float> group(const hax_scan_args* a, const ScanPlan& p, int g) const {
    const std::size_t channel_slab = std::size_t(p.batch) * p.L * p.channels, state_slab = std::size_t(p.batch) * p.L * p.N;
    ops::ScanInputs<float> in;
    in.x = u.data() + g * channel_slab;
    in.dt_raw = delta.data() + g * channel_slab;
    in.dt_bias = a->delta_bias ? a->delta_bias + g * p.channels : nullptr;
    in.A = a->A + std::size_t(g) * p.channels * p.N;
    in.Bm = B.data() + g * state_slab;
    in.Cm = C.data() + g * state_slab;
    in.D = a->D ? a->D + g * p.channels : nullptr;
    in.z = a->z ? z.data() + g * channel_slab : nullptr;
    in.delta_softplus = a->delta_softplus != 0;
    return in;
  }
};

// (G, batch, channels * N) <-> (batch, G * channels * N): the final state and its gradient.
void state_rows(const float* in, float* out, const ScanPlan& p, bool to_group_major_order) {
  const std::size_t row = std::size_t(p.channels) * p.N;
  for (int g = 0; g < p.G; ++g)
    for (int b = 0; b < p.batch; ++b) {
      const std::size_t gm = (std::size_t(g) * p.batch + b) * row, bm = (std::size_t(b) * p.G + g) * row;
      std::copy_n(in + (to_group_major_order ? bm : gm), row, out + (to_group_major_order ? gm : bm));
    }
}

}  // namespace
}  // namespace hax::capi

using namespace hax::capi;

extern "C" {

void hax_set_num_threads(int threads) { omp_set_num_threads(threads < 1 ? 1 : threads); }
int hax_get_num_threads(void) { return omp_get_max_threads(); }

size_t hax_selective_scan_saved_floats(const hax_scan_args* args) {
  std::size_t floats = 0;
  if (guarded("hax_selective_scan_saved_floats", [&] { floats = checked_plan(args).checkpoint_floats() * args->groups; }) != 0)
    return 0;
  return floats;
}

int hax_selective_scan_forward(const hax_scan_args* a, float* out, float* last_state, float* saved) {
  return guarded("selective_scan forward", [&] {
    const ScanPlan p = checked_plan(a);
    require(out, "out");
    check_decay(a, p);
    const GroupMajorInputs in(a, p);
    std::vector<float> y(p.per_channel()), hT(last_state ? std::size_t(p.batch) * p.dim * p.N : 0);
    std::vector<float> own_checkpoints(saved ? 0 : p.checkpoint_floats());
    for (int g = 0; g < p.G; ++g) {
      float* checkpoints = saved ? saved + g * p.checkpoint_floats() : own_checkpoints.data();
      hax::ops::selective_scan_forward(p.shape(), in.group(a, p, g), y.data() + g * std::size_t(p.batch) * p.L * p.channels,
                                  last_state ? hT.data() + g * std::size_t(p.batch) * p.channels * p.N : nullptr,
                                  checkpoints);
    }
    from_group_major(y.data(), out, p.batch, p.G, p.channels, p.L);
    if (last_state) state_rows(hT.data(), last_state, p, false);
  });
}

int hax_selective_scan_backward(const hax_scan_args* a, const float* saved, const float* dout, const float* dlast_state,
                                float* du, float* ddelta, float* dA, float* dB, float* dC, float* dD, float* dz,
                                float* ddelta_bias) {
  return guarded("selective_scan backward", [&] {
    const ScanPlan p = checked_plan(a);
    require(saved, "saved");
    require(dout, "dout");
    const GroupMajorInputs in(a, p);
    std::vector<float> dy(p.per_channel()), dhT(dlast_state ? std::size_t(p.batch) * p.dim * p.N : 0);
    to_group_major(dout, dy.data(), p.batch, p.G, p.channels, p.L);
    if (dlast_state) state_rows(dlast_state, dhT.data(), p, true);
    // Every gradient the kernel needs, in its layout, zeroed (the kernel accumulates).
    std::vector<float> g_u(p.per_channel()), g_delta(p.per_channel()), g_z(a->z ? p.per_channel() : 0);
    std::vector<float> g_B(p.per_state()), g_C(p.per_state()), g_A(std::size_t(p.dim) * p.N), g_D(p.dim), g_bias(p.dim);
    const std::size_t channel_slab = std::size_t(p.batch) * p.L * p.channels, state_slab = std::size_t(p.batch) * p.L * p.N;
    for (int g = 0; g < p.G; ++g) {
      hax::ops::ScanGrads<float> grads;
      grads.dx = g_u.data() + g * channel_slab;
      grads.ddt_raw = g_delta.data() + g * channel_slab;
      grads.ddt_bias = g_bias.data() + g * p.channels;
      grads.dA = g_A.data() + std::size_t(g) * p.channels * p.N;
      grads.dBm = g_B.data() + g * state_slab;
      grads.dCm = g_C.data() + g * state_slab;
      grads.dD = g_D.data() + g * p.channels;
      grads.dz = a->z ? g_z.data() + g * channel_slab : nullptr;
      hax::ops::selective_scan_backward(p.shape(), in.group(a, p, g), saved + g * p.checkpoint_floats(),
                                   dy.data() + g * channel_slab,
                                   dlast_state ? dhT.data() + g * std::size_t(p.batch) * p.channels * p.N : nullptr,
                                   grads);
    }
    if (du) from_group_major(g_u.data(), du, p.batch, p.G, p.channels, p.L);
    if (ddelta) from_group_major(g_delta.data(), ddelta, p.batch, p.G, p.channels, p.L);
    if (dz && a->z) from_group_major(g_z.data(), dz, p.batch, p.G, p.channels, p.L);
    if (dB) from_group_major(g_B.data(), dB, p.batch, p.G, p.N, p.L);
    if (dC) from_group_major(g_C.data(), dC, p.batch, p.G, p.N, p.L);
    if (dA) std::copy(g_A.begin(), g_A.end(), dA);
    if (dD) std::copy(g_D.begin(), g_D.end(), dD);
    if (ddelta_bias) std::copy(g_bias.begin(), g_bias.end(), ddelta_bias);
  });
}

}  // extern "C"
