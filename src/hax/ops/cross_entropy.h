// Masked cross-entropy over logits (reference §2.2): the mean over the masked rows of the batch of
// -log softmax(logits)[label].
#pragma once

#include <cstdint>

namespace hax::ops {

// logits (M,V), labels (M) int32, mask (M) uint8 (nonzero: scored) -> loss, accumulated in double.
// Rows with mask 0 are skipped (their labels are not read). No masked row: loss 0.
// Throws hax::Error naming the label and position if a masked row's label is outside [0, V).
double cross_entropy_forward(const float* logits, const std::int32_t* labels, const std::uint8_t* mask, int M, int V);

// dlogits (M,V) += dloss * (softmax(logits) - onehot(label)) / count for masked rows, count = number of masked rows;
// unmasked rows are left as they are. Softmax is recomputed from the logits.
void cross_entropy_backward(float* dlogits, float dloss, const float* logits, const std::int32_t* labels,
                            const std::uint8_t* mask, int M, int V);

// Number of masked rows; throws hax::Error for a masked row whose label is outside [0, V) (shared with the
// reference version).
int count_scored_rows(const std::int32_t* labels, const std::uint8_t* mask, int M, int V);

}  // namespace hax::ops
