// The sparse kernels as cases of the op harness (tests/ops/op_harness.h): fast against reference, the reference's
// gradients against finite differences in double, backward accumulates, null gradients skipped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../ops/op_harness.h"
#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/ops/sparse/attention_gate.h"
#include "hax/ops/sparse/attention_gate_ref.h"
#include "hax/ops/sparse/gate_loss.h"
#include "hax/ops/sparse/gate_loss_ref.h"
#include "hax/ops/sparse/key_scorer.h"
#include "hax/ops/sparse/key_scorer_ref.h"
#include "hax/ops/sparse/lsh.h"
#include "hax/ops/sparse/lsh_ref.h"
#include "hax/ops/sparse/sparse_attention.h"
#include "hax/ops/sparse/sparse_attention_ref.h"
#include "sparse_fixtures.h"

namespace hax::ops::sparse::testing {
namespace {

using ops::testing::Buffers;
using ops::testing::kernel;
using ops::testing::OpCaseOf;
using ops::testing::OpCasePtr;

const char* semantics_name(Semantics s) { return s == Semantics::paper ? "paper" : "causal"; }

std::string identifier(std::string name) {  // gtest names allow [A-Za-z0-9_] only
  for (char& c : name)
    if (c == '+') c = '_';
  return name;
}

// Attention over fixed key lists, built in the constructor from random buckets and scores (the selection is not
// differentiable, so the finite differences move Q, K, V with the lists held still). With a query offset the case
// is a chunk of a longer sequence (streaming inference): T queries after `offset` earlier positions, whose keys and
// values are inputs too.
class SparseAttentionCase : public OpCaseOf<SparseAttentionCase> {
 public:
  SparseAttentionCase(std::uint64_t seed, const std::string& arch, int total_keys, int T, int N, int I, Semantics s,
                      int offset = 0)
      : OpCaseOf(cat("attention_", identifier(arch), "_", semantics_name(s), "_T", T, "_N", N, "_I", I,
                     offset > 0 ? cat("_offset", offset) : "", "_seed", seed),
                 seed),
        N_(N),
        I_(I),
        semantics_(s) {
    add_input({.name = "Q", .size = std::size_t(T) * N, .grad_optional = true});
    add_input({.name = "K", .size = std::size_t(offset + T) * N, .grad_optional = true});
    add_input({.name = "V", .size = std::size_t(offset + T) * I, .grad_optional = true});
    set_out_size(std::size_t(T) * I);
    const OwnedPatternInputs in =
        random_pattern_inputs(offset + T, 3, 7, Rng(seed).fork(ops::testing::kIntegerInputs));
    SparseKeyStream stream(parse_sparse_arch(arch, total_keys, 4 * total_keys), in.num_buckets);
    stream.advance(offset, slice(in.view(), 0, offset));
    keys_ = stream.advance(T, slice(in.view(), offset, T));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    b.saved.assign(std::size_t(keys_.T) * keys_.k_max, Real(0));
    kernel<Real>(sparse_attention_forward, ref::sparse_attention_forward<Real>)(
        b.out.data(), b.saved.data(), b.input(0), b.input(1), b.input(2), keys_, N_, I_, semantics_);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(sparse_attention_backward, ref::sparse_attention_backward<Real>)(
        b.gradient(0), b.gradient(1), b.gradient(2), b.dout.data(), b.saved.data(), b.input(0), b.input(1), b.input(2),
        keys_, N_, I_, semantics_);
  }
  double tolerance() const override { return 5e-5; }

 private:
  int N_, I_;
  Semantics semantics_;
  SparseKeys keys_;
};

// Scorer and gate loss end to end, as training runs them: features from Q, K; scores; targets of the candidates;
// the loss (one number). Gradients reach the six MLP tensors only.
class GateLossCase : public OpCaseOf<GateLossCase> {
 public:
  GateLossCase(std::uint64_t seed, int T, int N, int k, Semantics s)
      : OpCaseOf(cat("gate_loss_", semantics_name(s), "_T", T, "_N", N, "_k", k, "_seed", seed), seed),
        T_(T),
        N_(N),
        semantics_(s) {
    const int F = 2 * N;
    const float init = 1.0f;  // larger than the model's 0.1, so that the scores spread and the ReLUs switch
    for (const char* name : {"W1", "b1", "W2", "b2", "W3", "b3"}) {
      const bool matrix = name[0] == 'W';
      const std::size_t rows = name[1] == '3' ? 1 : F;
      // The loss sees only differences of scores, so b3's gradient is exactly zero: finite differences of it
      // measure rounding only. It is held still (and its gradient not asked for).
      const bool b3 = std::string(name) == "b3";
      add_input({.name = name,
                 .size = matrix ? rows * F : rows,
                 .lo = -init,
                 .hi = init,
                 .differentiable = !b3,
                 .grad_optional = true});
    }
    add_input({.name = "Q", .size = std::size_t(T) * N, .differentiable = false});
    add_input({.name = "K", .size = std::size_t(T) * N, .differentiable = false});
    set_out_size(1);
    Rng rng = Rng(seed).fork(ops::testing::kIntegerInputs);
    query_count_ = s == Semantics::paper ? T : T - 2;  // causal: the last two positions stand for padding
    for (int s_pos = 0; s_pos < query_count_; ++s_pos) candidates_.push_back(s_pos);
    for (int j = 0; j < k; ++j) std::swap(candidates_[j], candidates_[j + rng.below(query_count_ - j)]);
    candidates_.resize(k);
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    const int F = 2 * N_, k = int(candidates_.size());
    b.saved.assign(std::size_t(T_) * F * 3 + T_ + 2 * k, Real(0));
    Saved<Real> v = split(b.saved);
    kernel<Real>(key_selection_features, ref::key_selection_features<Real>)(v.features, b.input(6), b.input(7), T_, N_,
                                                                            semantics_);
    kernel<Real>(key_scorer_forward, ref::key_scorer_forward<Real>)(v.score, v.hidden1, v.hidden2, v.features,
                                                                    weights(b), T_, N_);
    kernel<Real>(gate_loss_targets, ref::gate_loss_targets<Real>)(v.target, b.input(6), b.input(7), candidates_.data(),
                                                                  k, query_count_, N_);
    for (int j = 0; j < k; ++j) v.pred[j] = v.score[candidates_[j]];
    b.out[0] = kernel<Real>(gate_loss_forward, ref::gate_loss_forward<Real>)(v.pred, v.target, k);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    const int k = int(candidates_.size());
    Saved<Real> v = split(b.saved);
    std::vector<Real> dpred(k, Real(0)), dscore(T_, Real(0));
    kernel<Real>(gate_loss_backward, ref::gate_loss_backward<Real>)(dpred.data(), b.dout[0], v.pred, v.target, k);
    for (int j = 0; j < k; ++j) dscore[candidates_[j]] += dpred[j];
    const ScorerGradients<Real> g{b.gradient(0), b.gradient(1), b.gradient(2),
                                  b.gradient(3), b.gradient(4), b.gradient(5)};
    kernel<Real>(key_scorer_backward, ref::key_scorer_backward<Real>)(g, dscore.data(), v.features, v.hidden1,
                                                                      v.hidden2, weights(b), T_, N_);
  }
  double tolerance() const override { return 1e-4; }

 private:
  template <class Real>
  struct Saved {
    Real *features, *hidden1, *hidden2, *score, *target, *pred;
  };
  template <class Real>
  Saved<Real> split(std::vector<Real>& saved) const {
    const std::size_t block = std::size_t(T_) * 2 * N_;
    Real* p = saved.data();
    return {p, p + block, p + 2 * block, p + 3 * block, p + 3 * block + T_, p + 3 * block + T_ + candidates_.size()};
  }
  template <class Real>
  ScorerWeights<Real> weights(const Buffers<Real>& b) const {
    return {b.input(0), b.input(1), b.input(2), b.input(3), b.input(4), b.input(5)};
  }

  int T_, N_, query_count_;
  Semantics semantics_;
  std::vector<std::int32_t> candidates_;
};

// LSH projections (no gradient): fast against reference, incl. the `paper` statistics over time.
class LshProjectionCase : public OpCaseOf<LshProjectionCase> {
 public:
  LshProjectionCase(std::uint64_t seed, int T, int N, int num_hash, Semantics s)
      : OpCaseOf(cat("lsh_projections_", semantics_name(s), "_T", T, "_N", N, "_h", num_hash, "_seed", seed), seed),
        T_(T),
        N_(N),
        num_hash_(num_hash),
        semantics_(s) {
    add_input({.name = "x", .size = std::size_t(T) * N, .lo = 0.5f, .hi = 2.0f, .differentiable = false});
    add_input({.name = "H", .size = std::size_t(N) * num_hash, .differentiable = false});
    set_out_size(std::size_t(T) * num_hash);
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    kernel<Real>(lsh_projections, ref::lsh_projections<Real>)(b.out.data(), b.input(0), b.input(1), T_, N_, num_hash_,
                                                              semantics_);
  }
  template <class Real>
  void run_backward(Buffers<Real>&) const {}
  double tolerance() const override { return 1e-4; }

 private:
  int T_, N_, num_hash_;
  Semantics semantics_;
};

// The running (prefix) statistics of a causal option, no gradient: the fast path in chunks of `chunk` rows carrying
// its sums, as a stream does, against the reference that recomputes every prefix's statistics from scratch.
//   lsh: LSH projections (T, h) of x (T, N) with running centring and scaling, H (N, h);
//   key_selection: key-selection features (T, 2N) of Q, K (T, N) with the running normalization.
class RunningStatisticsCase : public OpCaseOf<RunningStatisticsCase> {
 public:
  enum class Op { lsh, key_selection };
  RunningStatisticsCase(std::uint64_t seed, Op op, int T, int N, int num_hash, int chunk)
      : OpCaseOf(cat(op == Op::lsh ? "lsh_projections" : "key_selection_features", "_running_T", T, "_N", N, "_h",
                     num_hash, "_chunk", chunk, "_seed", seed),
                 seed),
        op_(op),
        T_(T),
        N_(N),
        num_hash_(num_hash),
        chunk_(chunk) {
    add_input({.name = "x", .size = std::size_t(T) * N, .lo = -1.0f, .hi = 2.0f, .differentiable = false});
    const bool lsh = op == Op::lsh;
    add_input({.name = lsh ? "H" : "K", .size = std::size_t(lsh ? num_hash : T) * N, .differentiable = false});
    set_out_size(std::size_t(T) * (lsh ? num_hash : 2 * N));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    const Real *x = b.input(0), *other = b.input(1);
    if constexpr (std::is_same_v<Real, float>) {
      std::vector<double> sums(2 * std::size_t(N_), 0.0);
      for (int t = 0; t < T_; t += chunk_) {
        const int rows = std::min(chunk_, T_ - t);
        const float* x_rows = x + std::size_t(t) * N_;
        if (op_ == Op::lsh)
          lsh_projections_running(b.out.data() + std::size_t(t) * num_hash_, x_rows, other, rows, N_, num_hash_,
                                  sums.data(), t);
        else
          key_selection_features_running(b.out.data() + std::size_t(t) * 2 * N_, x_rows,
                                         other + std::size_t(t) * N_, rows, N_, sums.data(), sums.data() + N_);
      }
    } else if (op_ == Op::lsh) {
      ref::lsh_projections_running(b.out.data(), x, other, T_, N_, num_hash_);
    } else {
      ref::key_selection_features_running(b.out.data(), x, other, T_, N_);
    }
  }
  template <class Real>
  void run_backward(Buffers<Real>&) const {}
  double tolerance() const override { return 1e-4; }

 private:
  Op op_;
  int T_, N_, num_hash_, chunk_;
};

// How attention enters the mixer: y += E * attn * silu(z) (Mamba), or y += E * attn with no z (Mamba2).
// Inputs attn (M, I), E (I), z (M, I).
class AttentionGateCase : public OpCaseOf<AttentionGateCase> {
 public:
  AttentionGateCase(std::uint64_t seed, int M, int I, bool gated = true)
      : OpCaseOf(cat("attention_gate_M", M, "_I", I, gated ? "" : "_ungated", "_seed", seed), seed), M_(M), I_(I) {
    add_input({.name = "attn", .size = std::size_t(M) * I, .grad_optional = true});
    add_input({.name = "E", .size = std::size_t(I), .lo = 0.5f, .hi = 1.5f, .grad_optional = true});
    add_input({.name = "z", .size = gated ? std::size_t(M) * I : 0, .lo = -6.0f, .hi = 6.0f, .grad_optional = true});
    set_out_size(std::size_t(M) * I);
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    std::fill(b.out.begin(), b.out.end(), Real(0));  // the op adds into y
    kernel<Real>(attention_gate_forward, ref::attention_gate_forward<Real>)(b.out.data(), b.input(0), b.input(1),
                                                                            b.input(2), M_, I_);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(attention_gate_backward, ref::attention_gate_backward<Real>)(
        b.gradient(0), b.gradient(1), b.gradient(2), b.dout.data(), b.input(0), b.input(1), b.input(2), M_, I_);
  }

 private:
  int M_, I_;
};

std::vector<OpCasePtr> sparse_op_cases() {
  std::vector<OpCasePtr> cases;
  for (Semantics s : {Semantics::paper, Semantics::causal}) {
    for (const std::string& arch : archs_under_test()) {
      cases.push_back(std::make_shared<SparseAttentionCase>(1, arch, 6, 23, 3, 5, s));
      cases.push_back(std::make_shared<SparseAttentionCase>(2, arch, 64, 120, 16, 8, s));  // threaded, budget 64
    }
    cases.push_back(std::make_shared<SparseAttentionCase>(3, "sliding_window", 4, 1, 1, 1, s));
    cases.push_back(std::make_shared<GateLossCase>(1, 19, 3, 6, s));
    cases.push_back(std::make_shared<GateLossCase>(2, 70, 16, 32, s));
    cases.push_back(std::make_shared<LshProjectionCase>(1, 17, 5, 8, s));
    cases.push_back(std::make_shared<LshProjectionCase>(2, 3000, 16, 8, s));  // threaded
  }
  for (const std::string& arch : archs_under_test()) {  // chunks of a sequence (streaming): `causal` only
    cases.push_back(std::make_shared<SparseAttentionCase>(4, arch, 6, 7, 3, 5, Semantics::causal, 16));
    cases.push_back(std::make_shared<SparseAttentionCase>(5, arch, 6, 1, 3, 5, Semantics::causal, 30));
  }
  for (auto op : {RunningStatisticsCase::Op::lsh, RunningStatisticsCase::Op::key_selection}) {
    cases.push_back(std::make_shared<RunningStatisticsCase>(1, op, 17, 5, 8, 17));
    cases.push_back(std::make_shared<RunningStatisticsCase>(2, op, 40, 6, 4, 7));    // in chunks of 7 rows
    cases.push_back(std::make_shared<RunningStatisticsCase>(3, op, 300, 16, 8, 1));  // one row at a time (decoding)
  }
  cases.push_back(std::make_shared<AttentionGateCase>(1, 7, 13));
  cases.push_back(std::make_shared<AttentionGateCase>(2, 300, 128));  // threaded, vector-width rows
  cases.push_back(std::make_shared<AttentionGateCase>(3, 7, 13, false));
  cases.push_back(std::make_shared<AttentionGateCase>(4, 300, 128, false));
  return cases;
}

class SparseOpTest : public ::testing::TestWithParam<OpCasePtr> {};

TEST_P(SparseOpTest, PassesAllChecks) {
  ops::testing::check_all(*GetParam());
}

INSTANTIATE_TEST_SUITE_P(Sparse, SparseOpTest, ::testing::ValuesIn(sparse_op_cases()),
                         [](const ::testing::TestParamInfo<OpCasePtr>& info) { return info.param->name(); });

}  // namespace
}  // namespace hax::ops::sparse::testing
