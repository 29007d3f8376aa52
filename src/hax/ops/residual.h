// Residual connection: y = a + b, elementwise.
#pragma once

#include <cstddef>

namespace hax::ops {

// y (n) = a + b. y may alias a or b (in-place update of the residual stream).
void residual_forward(float* y, const float* a, const float* b, std::size_t n);
// da (n) += dy, db (n) += dy; either may be null.
void residual_backward(float* da, float* db, const float* dy, std::size_t n);

}  // namespace hax::ops
