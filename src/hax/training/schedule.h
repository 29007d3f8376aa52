// Learning-rate schedule of the reference trainer (reference §2.3): a linear warm-up from 0, then constant.
#pragma once

#include <algorithm>
#include <cstdint>

namespace hax::training {

// The reference builds LambdaLR(f(s) = min(s / warmup, 1)), which sets the lr to f(0) = 0 before the first update
// and steps after each one, so optimizer step k (1-based) uses base_lr * min((k - 1) / warmup, 1): the first
// update has lr 0. warmup_steps = 0 means a constant base_lr.
struct WarmupSchedule {
  double base_lr = 2e-3;
  std::int64_t warmup_steps = 0;

  double lr(std::int64_t step) const {
    if (warmup_steps <= 0) return base_lr;
    return base_lr * std::min(static_cast<double>(step - 1) / static_cast<double>(warmup_steps), 1.0);
  }
};

}  // namespace hax::training
