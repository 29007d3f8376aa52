// AdamW with decoupled weight decay, computing exactly what torch.optim.AdamW (amsgrad off) does in fp32, over the
// whole flat parameter buffer at once (engine/params.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "hax/engine/aligned_buffer.h"

namespace hax::training {

// torch.optim.AdamW's defaults. The learning rate is not here: it comes from the schedule at every step.
struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

class AdamW {
 public:
  // State for num_params floats (the size of the flat parameter buffer, padding included): m and v start at 0.
  explicit AdamW(std::size_t num_params, AdamWConfig config = {});

  // Increments the step counter, then, for every i:
  //   p *= 1 - lr wd;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
  //   p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
  // params and grads are the flat buffers (their size must be num_params); throws hax::Error otherwise.
  void step(std::span<float> params, std::span<const float> grads, double lr);

  std::int64_t step_count() const { return step_; }
  const AdamWConfig& config() const { return config_; }
  // The moments (exp_avg, exp_avg_sq in torch), for checkpoints: read them, or write them back with the step count.
  std::span<float> exp_avg() { return m_.span(); }
  std::span<float> exp_avg_sq() { return v_.span(); }
  void set_step_count(std::int64_t step) { step_ = step; }

 private:
  AdamWConfig config_;
  AlignedBuffer m_;
  AlignedBuffer v_;
  std::int64_t step_ = 0;
};

// torch.nn.utils.clip_grad_norm_: the global L2 norm of all gradients, and when it exceeds max_norm every gradient
// is scaled by max_norm / (norm + 1e-6). Returns the norm before clipping. The sum runs in double in index order, so
// the result does not depend on the thread count (a resumed run clips exactly as the uninterrupted one).
double clip_grad_norm(std::span<float> grads, double max_norm);

}  // namespace hax::training
