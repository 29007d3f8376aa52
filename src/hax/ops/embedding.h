// Embedding lookup: row m of the output is row ids[m] of the table.
#pragma once

#include <cstdint>

namespace hax::ops {

// ids (M) int32 in [0, V), table (V,D) -> out (M,D). Throws hax::Error naming the id and its position if an id
// is out of range (checked before anything is written).
void embedding_forward(float* out, const std::int32_t* ids, const float* table, int M, int V, int D);

// dtable (V,D) += scatter of dout (M,D) to rows ids[m]. Deterministic: each table row receives its updates in
// increasing m, whatever the thread count.
void embedding_backward(float* dtable, const float* dout, const std::int32_t* ids, int M, int V, int D);

// Throws hax::Error for the first id outside [0, V) (shared with the reference version).
void check_ids(const std::int32_t* ids, int M, int V, const char* what);

}  // namespace hax::ops
