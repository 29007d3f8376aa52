// Learning-rate schedules, one formula for both experiments:
//   joint recall (reference §2.3): a linear warm-up from 0, then constant;
//   continual pre-training (paper.md §4.2): `zero_steps` updates at lr 0, a linear warm-up to base_lr, then a cosine
//   decay that reaches min_lr at update `decay_steps` (and stays there after it).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace hax::training {

// The reference builds LambdaLR(f(s) = min(s / warmup, 1)), which sets the lr to f(0) = 0 before the first update
// and steps after each one, so optimizer step k (1-based) uses base_lr * min((k - 1) / warmup, 1): the first
// update has lr 0. warmup_steps = 0 means no warm-up; decay_steps = 0 means no decay (constant base_lr after the
// warm-up). With zero_steps = 0 and decay_steps = 0 this is the reference's schedule bit for bit.
struct LrSchedule {
  double base_lr = 2e-3;
  std::int64_t warmup_steps = 0;
  std::int64_t zero_steps = 0;   // updates 1..zero_steps have lr 0 (before the warm-up)
  std::int64_t decay_steps = 0;  // the update at which the cosine reaches min_lr (usually the run's last); 0: none
  double min_lr = 0;

  // The lr of optimizer update `step` (1-based).
  double lr(std::int64_t step) const {
    std::int64_t s = step - 1;  // LambdaLR's counter: updates done before this one
    if (s < zero_steps) return 0.0;
    s -= zero_steps;
    if (warmup_steps > 0 && s < warmup_steps)
      return base_lr * std::min(static_cast<double>(s) / static_cast<double>(warmup_steps), 1.0);
    if (decay_steps <= 0) return base_lr;
    // Cosine over the updates after the warm-up: t = 0 is the first (base_lr), t = span is update decay_steps.
    const std::int64_t t = s - warmup_steps, span = decay_steps - 1 - zero_steps - warmup_steps;
    if (t >= span) return min_lr;
    const double progress = static_cast<double>(t) / static_cast<double>(span);
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  }

  friend bool operator==(const LrSchedule&, const LrSchedule&) = default;
};

}  // namespace hax::training
