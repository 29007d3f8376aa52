// Small model configs shared by the suites that train or load a whole model (training, cli).
#pragma once

#include "hax/models/config.h"

namespace hax::testing {

// A two-layer Mamba small enough that a few dozen training steps take well under a second.
inline models::ModelConfig tiny_mamba_config() {
  models::ModelConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.state_size = 4;
  c.time_step_rank = 2;
  c.num_hidden_layers = 2;
  return c;
}

}  // namespace hax::testing
