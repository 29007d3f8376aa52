// The sparse branch's fast kernels chained as the mixer will chain them, for one sequence: LSH buckets of Q and
// K, key-selection scores, the key lists, the attention forward and backward.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "hax/engine/rng.h"
#include "hax/ops/sparse/key_scorer.h"
#include "hax/ops/sparse/lsh.h"
#include "hax/ops/sparse/sparse_attention.h"
#include "hax/ops/sparse/sparse_keys.h"
#include "sparse_fixtures.h"

namespace hax::ops::sparse::testing {

struct PipelineRun {
  OwnedPatternInputs pattern_inputs;
  SparseKeys keys;
  std::vector<float> out, probs;
  std::vector<float> dQ, dK, dV;  // filled by backward()
};

class SparsePipeline {
 public:
  SparsePipeline(const std::string& arch, int total_keys, int data_max_length, Semantics semantics, int N, int I,
                 int num_hash, std::uint64_t seed)
      : arch_(parse_sparse_arch(arch, total_keys, data_max_length)),
        semantics_(semantics),
        N_(N),
        I_(I),
        num_hash_(num_hash) {
    Rng rng(seed);
    const std::size_t F = 2 * std::size_t(N);
    H_ = random_floats(std::size_t(N) * num_hash, rng);
    for (std::size_t size : {F * F, F, F * F, F, F, std::size_t(1)}) mlp_.push_back(random_floats(size, rng));
  }

  int N() const { return N_; }
  int I() const { return I_; }
  const SparseArch& arch() const { return arch_; }

  PipelineRun forward(const std::vector<float>& Q, const std::vector<float>& K, const std::vector<float>& V) const {
    const int T = int(Q.size() / N_);
    PipelineRun run;
    bucket(Q, run.pattern_inputs.sign_q, run.pattern_inputs.argmax_q);
    bucket(K, run.pattern_inputs.sign_k, run.pattern_inputs.argmax_k);
    run.pattern_inputs.num_buckets = std::max(sign_bin_bucket_count(num_hash_), argmax_bucket_count(num_hash_));
    run.pattern_inputs.score = scores(Q, K);
    run.keys = build_sparse_keys(arch_, T, run.pattern_inputs.view());
    run.out.assign(std::size_t(T) * I_, 0.0f);
    run.probs.assign(std::size_t(T) * run.keys.k_max, 0.0f);
    sparse_attention_forward(run.out.data(), run.probs.data(), Q.data(), K.data(), V.data(), run.keys, N_, I_,
                             semantics_);
    return run;
  }

  void backward(PipelineRun& run, const std::vector<float>& dout, const std::vector<float>& Q,
                const std::vector<float>& K, const std::vector<float>& V) const {
    run.dQ.assign(Q.size(), 0.0f);
    run.dK.assign(K.size(), 0.0f);
    run.dV.assign(V.size(), 0.0f);
    sparse_attention_backward(run.dQ.data(), run.dK.data(), run.dV.data(), dout.data(), run.probs.data(), Q.data(),
                              K.data(), V.data(), run.keys, N_, I_, semantics_);
  }

 private:
  void bucket(const std::vector<float>& x, std::vector<std::int32_t>& sign_bin,
              std::vector<std::int32_t>& argmax) const {
    const int T = int(x.size() / N_);
    std::vector<float> proj(std::size_t(T) * num_hash_);
    lsh_projections(proj.data(), x.data(), H_.data(), T, N_, num_hash_, semantics_);
    sign_bin.resize(T);
    argmax.resize(T);
    sign_bin_buckets(sign_bin.data(), proj.data(), T, num_hash_);
    argmax_buckets(argmax.data(), proj.data(), T, num_hash_);
  }

  std::vector<float> scores(const std::vector<float>& Q, const std::vector<float>& K) const {
    const int T = int(Q.size() / N_);
    const std::size_t F = 2 * std::size_t(N_);
    std::vector<float> features(T * F), hidden1(T * F), hidden2(T * F), score(T);
    key_selection_features(features.data(), Q.data(), K.data(), T, N_, semantics_);
    const ScorerWeights<float> w{mlp_[0].data(), mlp_[1].data(), mlp_[2].data(),
                                 mlp_[3].data(), mlp_[4].data(), mlp_[5].data()};
    key_scorer_forward(score.data(), hidden1.data(), hidden2.data(), features.data(), w, T, N_);
    return score;
  }

  SparseArch arch_;
  Semantics semantics_;
  int N_, I_, num_hash_;
  std::vector<float> H_;
  std::vector<std::vector<float>> mlp_;  // W1, b1, W2, b2, W3, b3
};

}  // namespace hax::ops::sparse::testing
