#include "hax/cli/task_options.h"

namespace hax::cli {

void add_joint_recall_options(CLI::App& command, data::JointRecallConfig& config, bool data_prefix) {
  command.add_option(data_prefix ? "--data-seed" : "--seed", config.seed, "numpy RandomState seed of the data, in "
                                                                           "[0, 2^32-1]");
  command.add_option("--min-contexts", config.min_contexts, "Fewest contexts (n_context) in a sample");
  command.add_option("--max-contexts", config.max_contexts, "Most contexts in a sample");
  command.add_option("--min-keys", config.min_keys, "Fewest keys per context (n_key)");
  command.add_option("--max-keys", config.max_keys, "Most keys per context");
  command.add_option("--values", config.values, "Number of distinct values");
  command.add_option("--vocab", config.vocab, "Vocabulary size: every token id must be below it");
  command.add_option("--train-per-cell", config.train_per_cell, "Train samples per (n_context, n_key) cell");
  command.add_option("--eval-per-cell", config.eval_per_cell, "Valid and test samples per cell, each");
}

}  // namespace hax::cli
