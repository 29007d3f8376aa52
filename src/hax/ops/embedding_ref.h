// Reference embedding lookup: plain loops, any scalar type. Same contract as embedding.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hax/ops/embedding.h"

namespace hax::ops::ref {

template <class Real>
void embedding_forward(Real* out, const std::int32_t* ids, const Real* table, int M, int V, int D) {
  check_ids(ids, M, V, "embedding id");
  for (int m = 0; m < M; ++m)
    for (int d = 0; d < D; ++d) out[std::size_t(m) * D + d] = table[std::size_t(ids[m]) * D + d];
}

template <class Real>
void embedding_backward(Real* dtable, const Real* dout, const std::int32_t* ids, int M, int V, int D) {
  check_ids(ids, M, V, "embedding id");
  for (int m = 0; m < M; ++m)
    for (int d = 0; d < D; ++d) dtable[std::size_t(ids[m]) * D + d] += dout[std::size_t(m) * D + d];
}

}  // namespace hax::ops::ref
