// Reference AdamW step: a plain loop, any scalar type, the coefficients in that type. Same update as adamw.h.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "hax/training/adamw.h"

namespace hax::training::ref {

// One step (the step-th, 1-based) over n elements, updating params, m and v in place.
template <class Real>
void adamw_step(Real* params, const Real* grads, Real* m, Real* v, std::size_t n, const AdamWConfig& config, double lr,
                std::int64_t step) {
  const Real bias1 = Real(1 - std::pow(config.beta1, static_cast<double>(step)));
  const Real bias2 = Real(1 - std::pow(config.beta2, static_cast<double>(step)));
  const Real beta1 = Real(config.beta1), beta2 = Real(config.beta2);
  for (std::size_t i = 0; i < n; ++i) {
    params[i] *= Real(1) - Real(lr) * Real(config.weight_decay);
    m[i] = beta1 * m[i] + (Real(1) - beta1) * grads[i];
    v[i] = beta2 * v[i] + (Real(1) - beta2) * grads[i] * grads[i];
    const Real denom = std::sqrt(v[i]) / std::sqrt(bias2) + Real(config.eps);
    params[i] -= Real(lr) / bias1 * m[i] / denom;
  }
}

}  // namespace hax::training::ref
