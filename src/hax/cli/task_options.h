// Command-line flags shared by the commands that make or consume a task's data (gen, train, eval).
#pragma once

#include <CLI/CLI.hpp>

#include "hax/data/joint_recall.h"

namespace hax::cli {

// The joint-recall generator's knobs, each a flag (--seed is named --data-seed where `data_prefix` is set, so it
// does not clash with a model's seed).
void add_joint_recall_options(CLI::App& command, data::JointRecallConfig& config, bool data_prefix = true);

}  // namespace hax::cli
