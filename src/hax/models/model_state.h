// A sequence's inference state for the whole model (layers/mixer_state.h per block): what Model::prefill and
// decode carry from one chunk to the next. A plain value: copy it to continue one prefix two ways.
#pragma once

#include <vector>

#include "hax/layers/mixer_state.h"

namespace hax::models {

struct ModelState {
  std::vector<layers::MixerState> blocks;  // one per residual block of the model
  int position = 0;                        // tokens consumed so far
};

}  // namespace hax::models
