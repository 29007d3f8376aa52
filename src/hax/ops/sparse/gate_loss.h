// Gate (ranking) loss of key selection (reference.md §3.9): trains the scorer (key_scorer.h) to rank k sampled
// positions as the attention they would receive ranks them. The caller samples the candidate positions (the
// reference takes a uniformly random k-subset of the real positions, k = the per-pattern budget), gathers their
// scores into pred, and scatters dpred back into dscore.
#pragma once

#include <cstdint>

namespace hax::ops::sparse {

// target (k): target_j = sum over queries t in [s_j, query_count) of sigmoid(Q_t · K_{s_j}), s_j = candidates[j],
// Q, K (>= query_count, N). No gradient flows through it. query_count is all T positions for `paper` (padding
// queries count, 0.5 each since Q = 0 there) and the number of real positions for `causal`.
void gate_loss_targets(float* target, const float* Q, const float* K, const std::int32_t* candidates, int k,
                       int query_count, int N);

// L = mean over i, j of BCEWithLogits(pred_i - pred_j, y_ij), y_ij = ([target_i > target_j] + [target_i >= target_j])
// / 2, for pred, target (k). The diagonal is included (a constant log 2 with zero gradient).
float gate_loss_forward(const float* pred, const float* target, int k);

// dpred (k) += dloss * dL/dpred.
void gate_loss_backward(float* dpred, float dloss, const float* pred, const float* target, int k);

}  // namespace hax::ops::sparse
