// Per-sequence accuracy (reference §2.2): the fraction of a sequence's masked positions where the argmax of the
// logits is the label, and the mean of that over the sequences of a batch.
#pragma once

#include <cstdint>

namespace hax::ops {

// logits (B,T,V), labels (B,T) int32, mask (B,T) uint8 -> per_sequence (B) (may be null) and the returned batch mean.
// The argmax takes the first index on ties, as torch.argmax. per_sequence[b] is NaN for a sequence without masked
// positions; the mean is over the sequences that have at least one (0 if none has). Throws hax::Error for a masked
// position whose label is outside [0, V). No gradient.
double sequence_accuracy(double* per_sequence, const float* logits, const std::int32_t* labels,
                         const std::uint8_t* mask, int B, int T, int V);

// Mean of the non-NaN values of per_sequence (B); 0 if there are none (shared with the reference version).
double mean_of_scored(const double* per_sequence, int B);

}  // namespace hax::ops
