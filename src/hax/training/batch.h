// Turns samples into a packed model batch. A sample of length L gives L-1 input rows (tokens 0..L-2) whose labels
// are tokens 1..L-1: its last token is only ever a label, and padding is never materialized.
#pragma once

#include <span>

#include "hax/data/sample.h"
#include "hax/models/model.h"

namespace hax::training {

models::TokenBatch pack_samples(std::span<const data::Sample> samples);

}  // namespace hax::training
