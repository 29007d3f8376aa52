// Reference residual add: plain loops, any scalar type. Same contract as residual.h.
#pragma once

#include <cstddef>

namespace hax::ops::ref {

template <class Real>
void residual_forward(Real* y, const Real* a, const Real* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template <class Real>
void residual_backward(Real* da, Real* db, const Real* dy, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (da) da[i] += dy[i];
    if (db) db[i] += dy[i];
  }
}

}  // namespace hax::ops::ref
