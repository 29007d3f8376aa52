// An experiment file for `hax sweep`: a grid of training runs (base config x sparse arch x semantics x seed) with
// shared training and task settings, and the paper's numbers to print beside ours. The format (JSON):
//
//   {"name": "pilot",                                   run folders go to RUNS_DIR/pilot/ ([A-Za-z0-9_.-])
//    "bases": [{"name": "mamba", "config": "configs/mamba.json"},          config paths: from the repository root
//              {"name": "samba", "config": "configs/samba.json", "sparse": false},   "sparse": false: plain only
//              {"name": "mamba_fixed_lsh", "config": "configs/mamba.json",          a base's own train flags, after
//               "extra": ["--lsh-resample", "never"]}],                              train.extra (ablations)
//    "sparse_archs": ["", "sliding_window", "sign_bin_lsh+key_selection"],  "": the plain model (no --sparse-arch)
//    "semantics": ["paper", "causal"],                   for the sparse archs; plain runs record "none"
//    "same_under_both_semantics": ["sliding_window+sink"],  optional: archs whose `causal` runs are not trained;
//                                                     their `paper` run of the same base and seed stands for them
//                                                     (a `causal` run measured already keeps its own results)
//    "seeds": [1, 2],                                    --seed of each run
//    "train": {"steps": 10000, "batch_size": 32, "lr": 0.002, "warmup": 500, "eval_every": 1000,
//              "threads": 1, "extra": ["--lsh-resample", "training"]},  steps required; the rest optional
//    "task": {"min_contexts": 4, "max_contexts": 8, "min_keys": 4, "max_keys": 8, "eval_per_cell": 40},
//    "paper": {"mamba": {"": 16.3, "sign_bin_lsh+key_selection": 38.0}}}  test accuracy in %, per base and arch
//
// "same_under_both_semantics" lists only archs that compute the same bits under both semantics
// (ops::sparse::SparseArch::semantics_invariant(), checked by a test), in an experiment of both semantics: the
// `causal` run would repeat its `paper` twin to the last bit, so measuring it would only spend hours.
// "task" takes the joint-recall flags of `hax train`/`hax eval` with '_' for '-': min_contexts, max_contexts,
// min_keys, max_keys, values, vocab, train_per_cell, eval_per_cell, data_seed. "extra" is appended to the train
// command as written. Unknown keys are errors; every error is one line naming the file and the key.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace hax::training {

struct ExperimentBase {
  std::string name, config;
  bool sparse = true;              // false: only the plain run (Samba)
  std::vector<std::string> extra;  // train flags of this base's runs only, appended after the experiment's
};

struct Experiment {
  std::string path;  // the file it was read from, for messages
  std::string name;
  std::vector<ExperimentBase> bases;
  std::vector<std::string> sparse_archs, semantics;
  std::set<std::string> same_under_both_semantics;  // archs whose `paper` runs stand for their `causal` ones
  std::vector<std::int64_t> seeds;
  std::int64_t steps = 0;
  std::vector<std::pair<std::string, std::string>> train_flags;  // ("--batch-size", "32"), ... in a fixed order
  int threads = 1;
  std::vector<std::string> extra;
  std::vector<std::pair<std::string, std::string>> task_flags;  // ("--min-contexts", "4"), ...
  std::map<std::string, std::map<std::string, double>> paper;   // base -> arch -> test accuracy in %
};

// Reads and validates the file; throws hax::Error naming the file and the offending key.
Experiment load_experiment(const std::string& path);

// One training run of the grid.
struct RunSpec {
  std::string base, config;
  std::string sparse_arch;  // "" for the plain model
  std::string semantics;    // "paper", "causal", or "none" for plain runs
  std::int64_t seed = 0;
  std::vector<std::string> extra;  // the base's own train flags

  // The run's folder name: <base>__<arch or plain>__<semantics>__seed<S>, '+' replaced by '_'.
  std::string id() const;
};

// The grid in a fixed order: base, then arch (as listed), then semantics, then seed. Plain runs and bases with
// "sparse": false run once per seed with semantics "none"; such bases skip every sparse arch.
std::vector<RunSpec> expand_runs(const Experiment& e);

// The run whose measurement stands for `run`: its `paper` twin (same base, arch and seed) where run is a `causal`
// run of an arch in same_under_both_semantics; nullopt where run is measured itself.
std::optional<RunSpec> measured_by(const Experiment& e, const RunSpec& run);

// The arguments after the program name. A resumed train drops the flags that fix the model (the checkpoint has
// them): --config, --seed, --sparse-arch, --semantics and the sparse knobs of the "extra" flags.
std::vector<std::string> train_arguments(const Experiment& e, const RunSpec& run, const std::string& out_dir,
                                         bool resume);
std::vector<std::string> eval_arguments(const Experiment& e, const std::string& out_dir);

// `program args...` as one shell line, arguments quoted where the shell would otherwise change them.
std::string command_line(const std::string& program, const std::vector<std::string>& args);

}  // namespace hax::training
