// Continual pre-training from a trained checkpoint (`hax lm train --init-from`, paper.md §3.5 and §4.2): the new
// model takes every weight of the old one, and a sparse branch added to a plain Mamba starts the paper's way
// ("based on state-space duality"): its key and query projections are Mamba's B and C projections. xx_proj.weight
// (2N, I) holds K first, then Q (reference.md §3.3), and x_proj.weight (R + 2N, I) holds dt | B | C, so
//   xx_proj rows [0, N)  = x_proj rows [R, R + N)      K from B
//   xx_proj rows [N, 2N) = x_proj rows [R + N, R + 2N)  Q from C
// and E = 1. The key-selection MLP and the LSH projections take their usual initialization (from the new config's
// seed). At that point the model computes the old one's SSM exactly, plus E * attention gated by silu(z).
//
// Mamba2 has no x_proj: its B and C are channels of in_proj that go through the causal conv and SiLU before the
// SSM, so they are not a linear map of the activation xx_proj reads. Adding a sparse branch to a plain Mamba2 is
// refused rather than given an initialization the paper does not define (a Mamba2 checkpoint that already has one
// continues with its own).
#pragma once

#include <memory>
#include <string>

#include "hax/models/model.h"

namespace hax::training {

// Checks that `target` differs from `loaded`'s config only in the options an --init-from run may change (the sparse
// branch's and the seed, which draws the new tensors); hax::Error naming `where` (the checkpoint) and every other
// key that differs.
void check_init_from_config(const models::ModelConfig& loaded, const models::ModelConfig& target,
                            const std::string& where);

// A model of `target` initialized from `loaded` as described above. `where` names the checkpoint in errors.
std::unique_ptr<models::Model> init_from(const models::Model& loaded, const models::ModelConfig& target,
                                         const std::string& where);

}  // namespace hax::training
