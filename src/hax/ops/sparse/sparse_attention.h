// Single-head softmax attention over sparse key lists (reference.md §3.5): for query t with keys s_1..s_c
// (sparse_keys.h), p = softmax_j(Q_t · K_{s_j}) and out_t = sum_j p_j V_{s_j}. Cost O(T k (N + I)); no T x T
// matrix. A query with no key (count 0):
//   paper : uniform 1/T over ALL T positions, future and padding included (the reference's all-masked softmax),
//           so out_t = mean_s V_s and no gradient reaches Q or K through it;
//   causal: out_t = 0, no gradient at all.
// One call per sequence: a packed batch calls it once per sequence, T = that sequence's (padded) length.
// Or one call per chunk of a sequence (streaming inference, `causal` only): keys.query_offset > 0, Q holds the
// chunk's T queries and K, V all keys.key_rows() rows up to the chunk's end, indexed by position in the sequence.
// Or, forward only, keys whose indices are slot rows of a key-value cache (keys.slot_rows > 0, key_value_cache.h):
// K and V are then the cache's rows. The forward reads the rows the lists name and nothing else, in the lists' order,
// so it gives the same bits whichever rows the keys live in.
#pragma once

#include <cstddef>

#include "hax/ops/sparse/semantics.h"
#include "hax/ops/sparse/sparse_keys.h"

namespace hax::ops::sparse {

// out (T, I); probs (T, k_max) receives p for the backward (entries past count[t] untouched); Q (T, N); K
// (key_rows, N) already divided by sqrt(N); V (key_rows, I); key_rows = keys.key_rows() (= T for a whole sequence).
// hax::Error for a chunk (query_offset > 0) under `paper`.
void sparse_attention_forward(float* out, float* probs, const float* Q, const float* K, const float* V,
                              const SparseKeys& keys, int N, int I, Semantics semantics);

// dQ (T, N), dK (key_rows, N), dV (key_rows, I) += the gradients of sum(out * dout), through the selected entries
// only (and, for `paper` empty rows, the uniform weights on V); keys indexed by position. Any of dQ, dK, dV may be null. Deterministic: every
// gradient row is summed by one thread in a fixed order (dK, dV: the key row's owner, in increasing query
// order), whatever the thread count.
void sparse_attention_backward(float* dQ, float* dK, float* dV, const float* dout, const float* probs, const float* Q,
                               const float* K, const float* V, const SparseKeys& keys, int N, int I,
                               Semantics semantics);

// The backward's working memory, O(T (k_max + N + I)): the score gradients (T, k_max) and the per-key sums of dK
// (key_rows, N) and dV (key_rows, I). sparse_attention_backward allocates it per call; a caller that runs every
// step passes memory it keeps (an arena). At short lengths malloc reuses the freed block, but at long ones glibc
// gives it back to the kernel (blocks past its mmap threshold, at most 32 MiB, and a large free heap top), so each
// call faults in fresh zero pages: a cost per token that grows with the length (on the development VM at T = 64k,
// page faults took about a third of the sparse branch's time).
std::size_t sparse_attention_backward_scratch_floats(const SparseKeys& keys, int N, int I);
// sparse_attention_backward with `scratch` (sparse_attention_backward_scratch_floats floats, contents ignored) as
// that memory: the same bits. (A name of its own: tests take the plain one's address.)
void sparse_attention_backward_with_scratch(float* dQ, float* dK, float* dV, const float* dout, const float* probs,
                                            const float* Q, const float* K, const float* V, const SparseKeys& keys,
                                            int N, int I, Semantics semantics, float* scratch);

// hax::Error when `keys` is a chunk (query_offset > 0) and the semantics is `paper`. Both paths call it.
void check_chunk(const SparseKeys& keys, Semantics semantics);
// hax::Error when the indices of `keys` are slot rows: the backward scatters into rows by position. Both backward
// paths call it.
void check_positions(const SparseKeys& keys);

}  // namespace hax::ops::sparse
