#include "hax/layers/mamba_mixer.h"

#include <algorithm>

#include "hax/ops/activations.h"
#include "hax/ops/conv1d.h"
#include "hax/ops/linear.h"
#include "hax/ops/selective_scan.h"

namespace hax::layers {
namespace {

std::size_t rows_times(int rows, int width) { return std::size_t(rows) * std::size_t(width); }

ops::ScanShape one_sequence(int length, int I, int N) { return {1, length, I, N}; }

}  // namespace

MambaMixer::Tensor MambaMixer::bind(ParamStore& store, const std::string& name, bool present) const {
  if (!present) return {};
  return {store.param(name).data(), store.grad(name).data()};
}

MambaMixer::MambaMixer(const models::ModelConfig& c, ParamStore& store, const std::string& p)
    : D_(c.hidden_size), I_(c.intermediate_size), N_(c.state_size), R_(c.time_step_rank), K_(c.conv_kernel) {
  in_proj_w_ = bind(store, p + "in_proj.weight");
  in_proj_b_ = bind(store, p + "in_proj.bias", c.use_bias);
  conv_w_ = bind(store, p + "conv1d.weight");
  conv_b_ = bind(store, p + "conv1d.bias", c.use_conv_bias);
  x_proj_w_ = bind(store, p + "x_proj.weight");
  dt_proj_w_ = bind(store, p + "dt_proj.weight");
  dt_proj_b_ = bind(store, p + "dt_proj.bias");
  a_log_ = bind(store, p + "A_log");
  d_skip_ = bind(store, p + "D");
  out_proj_w_ = bind(store, p + "out_proj.weight");
  out_proj_b_ = bind(store, p + "out_proj.bias", c.use_bias);
}

void MambaMixer::forward(float* out, const float* u, const PackedBatch& batch, Arena& arena, Saved& s) const {
  const int M = batch.rows(), I = I_, N = N_, R = R_;
  auto alloc = [&](int width, const char* what) { return arena.alloc(rows_times(M, width), what).data(); };
  s.u = u;
  s.x = alloc(I, "mamba x");
  s.z = alloc(I, "mamba z");
  s.x_conv = alloc(I, "mamba conv out");
  s.xc = alloc(I, "mamba xc");
  s.dtl = alloc(R, "mamba dt low-rank");
  s.Bm = alloc(N, "mamba B");
  s.Cm = alloc(N, "mamba C");
  s.dt_raw = alloc(I, "mamba dt");
  s.y = alloc(I, "mamba y");
  std::size_t checkpoint_floats = 0;
  for (int q = 0; q < batch.num_sequences(); ++q)
    checkpoint_floats += ops::scan_checkpoint_floats(one_sequence(batch.length(q), I, N));
  s.checkpoints = arena.alloc(checkpoint_floats, "mamba scan checkpoints").data();

  // in_proj as two GEMMs over its row halves, so x and z come out contiguous.
  const float* b_in = in_proj_b_.value;
  ops::linear_forward(s.x, u, in_proj_w_.value, b_in, M, D_, I);
  ops::linear_forward(s.z, u, in_proj_w_.value + rows_times(I, D_), b_in ? b_in + I : nullptr, M, D_, I);
  for (int q = 0; q < batch.num_sequences(); ++q) {
    const std::size_t at = rows_times(batch.start(q), I);
    ops::conv1d_causal_forward(s.x_conv + at, s.x + at, conv_w_.value, conv_b_.value, nullptr, 1, batch.length(q), I,
                               K_);
  }
  ops::silu_forward(s.xc, s.x_conv, rows_times(M, I));
  ops::linear_forward(s.dtl, s.xc, x_proj_w_.value, nullptr, M, I, R);
  ops::linear_forward(s.Bm, s.xc, x_proj_w_.value + rows_times(R, I), nullptr, M, I, N);
  ops::linear_forward(s.Cm, s.xc, x_proj_w_.value + rows_times(R + N, I), nullptr, M, I, N);
  ops::linear_forward(s.dt_raw, s.dtl, dt_proj_w_.value, nullptr, M, R, I);

  float* checkpoints = s.checkpoints;
  for (int q = 0; q < batch.num_sequences(); ++q) {
    const ops::ScanShape shape = one_sequence(batch.length(q), I, N);
    const std::size_t at = rows_times(batch.start(q), I), at_n = rows_times(batch.start(q), N);
    const ops::ScanInputs<float> in{s.xc + at, s.dt_raw + at, dt_proj_b_.value, a_log_.value, s.Bm + at_n,
                                    s.Cm + at_n, d_skip_.value, s.z + at};
    ops::selective_scan_forward(shape, in, s.y + at, nullptr, checkpoints);
    checkpoints += ops::scan_checkpoint_floats(shape);
  }
  ops::linear_forward(out, s.y, out_proj_w_.value, out_proj_b_.value, M, I, D_);
}

void MambaMixer::backward(float* du, const float* dout, const PackedBatch& batch, const Saved& s,
                          Arena& arena) const {
  const int M = batch.rows(), I = I_, N = N_, R = R_;
  const std::size_t mark = arena.mark();
  auto alloc = [&](int width, const char* what) { return arena.alloc(rows_times(M, width), what).data(); };
  float* dy = alloc(I, "mamba dy");
  float* dxc = alloc(I, "mamba dxc");
  float* ddt_raw = alloc(I, "mamba d dt");
  float* dBm = alloc(N, "mamba dB");
  float* dCm = alloc(N, "mamba dC");
  float* dz = alloc(I, "mamba dz");

  ops::linear_backward(dy, out_proj_w_.grad, out_proj_b_.grad, dout, s.y, out_proj_w_.value, M, I, D_);
  const float* checkpoints = s.checkpoints;
  for (int q = 0; q < batch.num_sequences(); ++q) {
    const ops::ScanShape shape = one_sequence(batch.length(q), I, N);
    const std::size_t at = rows_times(batch.start(q), I), at_n = rows_times(batch.start(q), N);
    const ops::ScanInputs<float> in{s.xc + at, s.dt_raw + at, dt_proj_b_.value, a_log_.value, s.Bm + at_n,
                                    s.Cm + at_n, d_skip_.value, s.z + at};
    const ops::ScanGrads<float> g{dxc + at, ddt_raw + at, dt_proj_b_.grad, a_log_.grad, dBm + at_n, dCm + at_n,
                                  d_skip_.grad, dz + at};
    ops::selective_scan_backward(shape, in, checkpoints, dy + at, nullptr, g);
    checkpoints += ops::scan_checkpoint_floats(shape);
  }

  float* ddtl = alloc(R, "mamba d dt low-rank");
  ops::linear_backward(ddtl, dt_proj_w_.grad, nullptr, ddt_raw, s.dtl, dt_proj_w_.value, M, R, I);
  ops::linear_backward(dxc, x_proj_w_.grad, nullptr, ddtl, s.xc, x_proj_w_.value, M, I, R);
  ops::linear_backward(dxc, x_proj_w_.grad + rows_times(R, I), nullptr, dBm, s.xc, x_proj_w_.value + rows_times(R, I),
                       M, I, N);
  ops::linear_backward(dxc, x_proj_w_.grad + rows_times(R + N, I), nullptr, dCm, s.xc,
                       x_proj_w_.value + rows_times(R + N, I), M, I, N);

  float* dx_conv = dy;  // dy is dead after the scan: reuse its rows for d(conv output)
  std::fill(dx_conv, dx_conv + rows_times(M, I), 0.0f);
  ops::silu_backward(dx_conv, dxc, s.x_conv, rows_times(M, I));
  float* dx = dxc;  // likewise dxc is dead once the SiLU gradient is taken
  std::fill(dx, dx + rows_times(M, I), 0.0f);
  for (int q = 0; q < batch.num_sequences(); ++q) {
    const std::size_t at = rows_times(batch.start(q), I);
    ops::conv1d_causal_backward(dx + at, conv_w_.grad, conv_b_.grad, nullptr, dx_conv + at, s.x + at, conv_w_.value,
                                nullptr, 1, batch.length(q), I, K_);
  }
  float* b_grad = in_proj_b_.grad;
  ops::linear_backward(du, in_proj_w_.grad, b_grad, dx, s.u, in_proj_w_.value, M, D_, I);
  ops::linear_backward(du, in_proj_w_.grad + rows_times(I, D_), b_grad ? b_grad + I : nullptr, dz, s.u,
                       in_proj_w_.value + rows_times(I, D_), M, D_, I);
  arena.release(mark);
}

}  // namespace hax::layers
