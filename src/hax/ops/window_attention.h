// Causal sliding-window multi-head attention (reference.md §5.3: fla's Attention with flash-attn window_size =
// (window - 1, 0)): H heads of P elements, softmax scale 1 / sqrt(P); the query at key position t attends to the keys
// at positions max(0, t - window + 1) .. t, `window` keys including its own. Rows hold all heads: q, k, v and out
// are (rows, H*P) with head h at columns h*P .. h*P + P - 1.
//
// Cost O(Tq * window * H * P) time; no T x T matrix: memory beyond the outputs is O(T * H) (the backward's per-query
// sum_s p_ts dout_t · v_s) plus per-thread blocks of (64 + window) x P.
//
// The fast kernels give every query the same bits however the rows are split into calls (the parallel forward, a
// chunk after a key cache, one decoded token) and whatever the thread count: a query's result depends only on its
// own row and its keys. The backward is deterministic the same way: every gradient row is summed by one task in a
// fixed order (dq by the query's block, dk and dv by the key's block, which recomputes the probabilities of the
// queries that see it instead of sharing partial sums between threads).
#pragma once

namespace hax::ops {

struct WindowAttentionShape {
  int queries = 0;       // Tq
  int keys = 0;          // Tk: rows of k and v
  int query_offset = 0;  // query i sits at key position query_offset + i (0 for the parallel forward where Tq == Tk;
                         // Tk - Tq when continuing from a key cache)
  int heads = 0;         // H
  int head_dim = 0;      // P
  int window = 64;       // keys per query, the query's own position included
};

// out (Tq, H*P) = softmax(q k^T / sqrt(P)) v over each query's window, per head; q (Tq, H*P), k, v (Tk, H*P).
// lse (Tq, H) receives the log-sum-exp of each query's scaled scores, for the backward (null when no backward
// follows). hax::Error for a bad shape (see check_window_attention).
void window_attention_forward(const WindowAttentionShape& shape, float* out, float* lse, const float* q, const float* k,
                              const float* v);

// Backward of the parallel case (query_offset == 0, Tq == Tk, else hax::Error): dq, dk, dv (T, H*P) += the gradients
// of sum(out * dout); any may be null. `out` and `lse` are the forward's. (The fast kernel does not read `out`: it
// sums dout · out as sum_s p_ts dout_t · v_s from the probabilities it recomputes anyway, which makes the gradients
// of a query with a single key exactly 0, as they are.)
void window_attention_backward(const WindowAttentionShape& shape, float* dq, float* dk, float* dv, const float* dout,
                               const float* out, const float* lse, const float* q, const float* k, const float* v);

// hax::Error unless heads, head_dim and window are positive, queries and query_offset are not negative, and every
// query has its own key (query_offset + queries <= keys); for the backward (`backward`) also query_offset == 0 and
// queries == keys. Both versions call it.
void check_window_attention(const WindowAttentionShape& shape, bool backward);

}  // namespace hax::ops
