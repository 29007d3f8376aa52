#include "hax/cli/model_options.h"

namespace hax::cli {

bool SparseOverrides::any() const {
  return sparse_arch || semantics || lsh_resample || sparse_keys || num_hash || data_max_length || paper_without ||
         lsh_statistics || ks_normalization;
}

void SparseOverrides::apply(models::ModelConfig& config, const std::string& where) const {
  if (sparse_arch) config.sparse_arch = *sparse_arch == "none" ? "" : *sparse_arch;
  if (sparse_keys) config.sparse_keys = *sparse_keys;
  if (num_hash) config.num_hash = *num_hash;
  if (data_max_length) config.data_max_length = *data_max_length;
  if (semantics) config.semantics = models::parse_semantics(*semantics, "--semantics");
  if (lsh_resample) config.lsh_resample = *lsh_resample;
  if (paper_without) config.paper_without = *paper_without;
  if (lsh_statistics) config.lsh_statistics = *lsh_statistics;
  if (ks_normalization) config.ks_normalization = *ks_normalization;
  config.validate(any() ? where + " with the command-line flags" : where);
}

void add_sparse_options(CLI::App& command, SparseOverrides& o) {
  command.add_option("--sparse-arch", o.sparse_arch,
                     "Sparse attention in every mixer: full, sliding_window, sink, dilated, sign_bin_lsh, argmax_lsh, "
                     "key_selection, or a '+' union such as sign_bin_lsh+key_selection (HAX); none: plain Mamba "
                     "(default: the config's)");
  command.add_option("--sparse-keys", o.sparse_keys, "Keys per query in all, split evenly over the patterns (64)")
      ->check(CLI::PositiveNumber);
  command.add_option("--num-hash", o.num_hash, "LSH hyperplanes (8: 256 sign-bin buckets; at most 20 for sign-bin, "
                                               "4096 for argmax, whose buckets are the hyperplanes)")
      ->check(CLI::Range(1, models::kMaxArgmaxHash));
  command.add_option("--data-max-length", o.data_max_length, "Sets the dilation: data-max-length // budget (2048)")
      ->check(CLI::PositiveNumber);
  command.add_option("--semantics", o.semantics, "causal (default): streams, pads and decodes soundly; paper: "
                                                 "the reference's statistics and quirks")
      ->check(CLI::IsMember({"causal", "paper"}));
  command.add_option("--lsh-resample", o.lsh_resample,
                     "When the LSH projection is drawn: never (the checkpoint's), training (every step), "
                     "every_forward (the reference; default under paper)")
      ->check(CLI::IsMember({"never", "training", "every_forward"}));
  command.add_option("--lsh-statistics", o.lsh_statistics,
                     "causal only: none (default) hashes raw vectors; running centres and scales them by their "
                     "prefix's statistics (a causal stand-in for paper's whole-sequence ones)")
      ->check(CLI::IsMember({"none", "running"}));
  command.add_option("--ks-normalization", o.ks_normalization,
                     "causal only: position (default) normalizes the key-selection feature per position; running "
                     "divides each feature by its norm over the prefix (a causal stand-in for paper's)")
      ->check(CLI::IsMember({"position", "running"}));
  command.add_option("--paper-without", o.paper_without,
                     "Ablation, paper semantics only: ingredients of `paper` replaced by causal's, comma-separated: "
                     "lsh_statistics, ks_normalization, uniform_fallback, gate_padding")
      ->delimiter(',')
      ->check(CLI::IsMember(ops::sparse::PaperIngredients::names()));
}

}  // namespace hax::cli
