// A sequence's inference state for the whole model (layers/mixer_state.h per layer): what MambaModel::prefill and
// decode carry from one chunk to the next. A plain value: copy it to continue one prefix two ways.
#pragma once

#include <vector>

#include "hax/layers/mixer_state.h"

namespace hax::models {

struct MambaState {
  std::vector<layers::MixerState> layers;  // (L)
  int position = 0;                        // tokens consumed so far
};

}  // namespace hax::models
