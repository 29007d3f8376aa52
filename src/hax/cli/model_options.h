// Command-line flags that change a model config before training starts: the sparse-attention branch, named as on
// the reference's command line (--sparse-arch sign_bin_lsh+key_selection), and its knobs. Shared by train and bench.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "hax/models/config.h"

namespace hax::cli {

struct SparseOverrides {
  std::optional<std::string> sparse_arch, semantics, lsh_resample, lsh_statistics, ks_normalization;
  std::optional<int> sparse_keys, num_hash, data_max_length;
  std::optional<std::vector<std::string>> paper_without;

  bool any() const;
  // Writes the flags given into `config` and validates it; errors name `where` (the config's path) and the flag.
  void apply(models::ModelConfig& config, const std::string& where) const;
};

void add_sparse_options(CLI::App& command, SparseOverrides& overrides);

}  // namespace hax::cli
