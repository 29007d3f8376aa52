// hax_sparse_attention_* (the sparse-attention op of ops/sparse on given q, k, v) and hax_branch_* (the whole HAX
// branch of layers/sparse_branch.h, on a model-free parameter store built from the caller's arrays).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hax/capi/capi_support.h"
#include "hax/capi/hax_c.h"
#include "hax/engine/arena.h"
#include "hax/engine/params.h"
#include "hax/layers/packed_batch.h"
#include "hax/layers/sparse_branch.h"
#include "hax/ops/sparse/lsh.h"
#include "hax/ops/sparse/sparse_attention.h"
#include "hax/ops/sparse/sparse_keys.h"

namespace sp = hax::ops::sparse;

// What a forward leaves for its backward: the sparse op's key lists and softmax weights, or a whole branch with its
// own copy of the parameters and input, its arena and its saved activations.
struct hax_context {
  std::vector<sp::SparseKeys> keys;          // per sequence
  std::vector<std::vector<float>> probs;     // per sequence (T, k_max)
  std::int64_t pairs = 0;

  struct Branch {
    hax::ParamStore store, buffers;
    std::unique_ptr<hax::layers::SparseBranch> branch;
    std::vector<float> xc;
    hax::layers::PackedBatch batch;
    hax::Arena arena;
    hax::layers::SparseBranch::Saved saved;
    bool key_selection = false;
  };
  std::unique_ptr<Branch> branch;
};

namespace hax::capi {
namespace {

sp::Semantics semantics_of(int code) {
  check(code == 0 || code == 1, "semantics must be 0 (causal) or 1 (paper), got ", code);
  return code == 1 ? sp::Semantics::paper : sp::Semantics::causal;
}

struct SparsePlan {
  int B, T, N, I;
  sp::SparseArch arch;
  sp::Semantics semantics;
  bool lsh() const { return arch.has(sp::Pattern::sign_bin_lsh) || arch.has(sp::Pattern::argmax_lsh); }
};

SparsePlan checked_plan(const hax_sparse_args* a) {
  require(a, "args");
  check(a->batch >= 0 && a->seq_len >= 0, "batch and seq_len must be >= 0, got ", a->batch, " and ", a->seq_len);
  positive(a->qk_dim, "q/k size N");
  positive(a->v_dim, "v size I");
  require(a->sparse_arch, "sparse_arch");
  for (const auto& [p, name] : {std::pair{a->q, "q"}, {a->k, "k"}, {a->v, "v"}}) require(p, name);
  SparsePlan p{a->batch, a->seq_len, a->qk_dim, a->v_dim,
               sp::parse_sparse_arch(a->sparse_arch, a->total_keys, a->max_length), semantics_of(a->semantics)};
  if (p.arch.has(sp::Pattern::key_selection)) require(a->key_scores, "key_scores (the arch has key_selection)");
  if (p.lsh()) {
    require(a->lsh_projection, "lsh_projection (the arch has an LSH pattern)");
    check(a->num_hash >= 1 && a->num_hash <= 24, "num_hash must be in [1, 24], got ", a->num_hash);
  }
  return p;
}

// k / sqrt(N): the keys the attention kernel takes.
std::vector<float> scaled_keys(const hax_sparse_args* a, const SparsePlan& p) {
  std::vector<float> K(std::size_t(p.B) * p.T * p.N);
  const float scale = 1.0f / std::sqrt(float(p.N));
  for (std::size_t i = 0; i < K.size(); ++i) K[i] = a->k[i] * scale;
  return K;
}

std::int32_t* sized(std::vector<std::int32_t>& v, int n) {
  v.resize(n);
  return v.data();
}

// Sequence b's key lists: LSH buckets of its q and k (both kinds when the arch has both), key scores as given.
sp::SparseKeys sequence_keys(const hax_sparse_args* a, const SparsePlan& p, const float* K, int b) {
  const std::size_t at = std::size_t(b) * p.T;
  sp::PatternInputs in;
  std::vector<std::int32_t> buckets[4];  // sign-bin query, key; argmax query, key
  if (p.lsh()) {
    const int h = a->num_hash;
    std::vector<float> proj(std::size_t(p.T) * h);
    const bool sign_bin = p.arch.has(sp::Pattern::sign_bin_lsh), argmax = p.arch.has(sp::Pattern::argmax_lsh);
    const float* rows[2] = {a->q + at * p.N, K + at * p.N};
    for (int side = 0; side < 2; ++side) {
      sp::lsh_projections(proj.data(), rows[side], a->lsh_projection, p.T, p.N, h, p.semantics);
      if (sign_bin) sp::sign_bin_buckets(sized(buckets[side], p.T), proj.data(), p.T, h);
      if (argmax) sp::argmax_buckets(sized(buckets[2 + side], p.T), proj.data(), p.T, h);
    }
    in.sign_bin_query_bucket = buckets[0], in.sign_bin_key_bucket = buckets[1];
    in.argmax_query_bucket = buckets[2], in.argmax_key_bucket = buckets[3];
    in.num_buckets = std::max(sign_bin ? sp::sign_bin_bucket_count(h) : 0, argmax ? sp::argmax_bucket_count(h) : 0);
  }
  if (p.arch.has(sp::Pattern::key_selection)) in.key_score = {a->key_scores + at, std::size_t(p.T)};
  return sp::build_sparse_keys(p.arch, p.T, in);
}

// ---- the branch ----

const char* const kScorerNames[6] = {"dx_proj_1.weight", "dx_proj_1.bias", "dx_proj_2.weight",
                                     "dx_proj_2.bias",   "dx_proj_3.weight", "dx_proj_3.bias"};

layers::SparseConfig branch_config(const hax_branch_args* a) {
  require(a, "args");
  require(a->sparse_arch, "sparse_arch");
  positive(a->channels, "channels I");
  positive(a->state, "state N");
  check(a->batch >= 0 && a->seq_len >= 0, "batch and seq_len must be >= 0, got ", a->batch, " and ", a->seq_len);
  layers::SparseConfig c;
  c.channels = a->channels;
  c.state = a->state;
  c.arch = sp::parse_sparse_arch(a->sparse_arch, a->total_keys, a->max_length);
  c.num_hash = a->num_hash;
  c.semantics = semantics_of(a->semantics);
  c.lsh_running_statistics = a->lsh_running_statistics != 0;
  c.ks_running_normalization = a->ks_running_normalization != 0;
  check(c.semantics == sp::Semantics::causal || !(c.lsh_running_statistics || c.ks_running_normalization),
        "running LSH statistics and key-selection normalization are `causal`-only options");
  c.lsh_resample = a->lsh_resample ? a->lsh_resample : "never";
  check(c.lsh_resample == "never" || c.lsh_resample == "training" || c.lsh_resample == "every_forward",
        "lsh_resample must be never, training or every_forward, got '", c.lsh_resample, "'");
  c.paper_ingredients = c.semantics == sp::Semantics::paper ? sp::PaperIngredients{} : sp::PaperIngredients::none();
  std::string names = a->paper_without ? a->paper_without : "";
  for (std::size_t start = 0; start < names.size();) {
    const std::size_t end = std::min(names.find(',', start), names.size());
    const std::string name = names.substr(start, end - start);
    check(c.semantics == sp::Semantics::paper, "paper_without is for `paper` semantics only");
    check(c.paper_ingredients.turn_off(name), "paper_without: unknown ingredient '", name, "'");
    start = end + 1;
  }
  return c;
}

std::unique_ptr<hax_context::Branch> make_branch(const hax_branch_args* a, const float* xc) {
  const layers::SparseConfig config = branch_config(a);
  auto br = std::make_unique<hax_context::Branch>();
  const std::int64_t I = a->channels, N = a->state, F = 2 * N;
  br->key_selection = config.arch.has(sp::Pattern::key_selection);
  const bool lsh = config.arch.has(sp::Pattern::sign_bin_lsh) || config.arch.has(sp::Pattern::argmax_lsh);
  require(a->xx_proj, "xx_proj");
  br->store.add("xx_proj.weight", {F, I});
  br->store.add("E", {I});
  const std::vector<std::int64_t> scorer_shapes[6] = {{F, F}, {F}, {F, F}, {F}, {1, F}, {1}};
  if (br->key_selection)
    for (int j = 0; j < 6; ++j) br->store.add(kScorerNames[j], scorer_shapes[j]);
  br->store.allocate();
  auto fill = [](std::span<float> to, const float* from, const char* name) {
    require(from, name);
    std::copy_n(from, to.size(), to.data());
  };
  fill(br->store.param("xx_proj.weight"), a->xx_proj, "xx_proj");
  std::fill_n(br->store.param("E").data(), I, 1.0f);
  if (br->key_selection)
    for (int j = 0; j < 6; ++j) fill(br->store.param(kScorerNames[j]), a->scorer[j], kScorerNames[j]);
  if (lsh) {
    check(a->num_hash >= 1 && a->num_hash <= 24, "num_hash must be in [1, 24], got ", a->num_hash);
    br->buffers.add(layers::kLshProjectionName, {N, a->num_hash});
    br->buffers.allocate();
    fill(br->buffers.param(layers::kLshProjectionName), a->lsh_projection, "lsh_projection");
  } else {
    br->buffers.allocate();
  }
  br->branch = std::make_unique<layers::SparseBranch>(config, br->store, br->buffers, "");
  require(xc, "xc");
  br->xc.assign(xc, xc + std::size_t(a->batch) * a->seq_len * I);
  for (int b = 0; b < a->batch; ++b) br->batch.add_sequence(a->seq_len);
  const int M = a->batch * a->seq_len;
  br->arena = Arena(br->branch->arena_floats(M, a->batch, a->seq_len, a->seq_len));
  return br;
}

}  // namespace
}  // namespace hax::capi

using namespace hax::capi;

extern "C" {

int hax_sparse_attention_forward(const hax_sparse_args* a, float* out, hax_context** context) {
  return guarded("sparse_attention forward", [&] {
    const SparsePlan p = checked_plan(a);
    require(out, "out");
    const std::vector<float> K = scaled_keys(a, p);
    auto ctx = std::make_unique<hax_context>();
    ctx->keys.resize(p.B);
    ctx->probs.resize(p.B);
    for (int b = 0; b < p.B; ++b) {
      const std::size_t at = std::size_t(b) * p.T;
      ctx->keys[b] = sequence_keys(a, p, K.data(), b);
      ctx->probs[b].assign(std::size_t(p.T) * ctx->keys[b].k_max, 0.0f);
      sp::sparse_attention_forward(out + at * p.I, ctx->probs[b].data(), a->q + at * p.N, K.data() + at * p.N,
                                   a->v + at * p.I, ctx->keys[b], p.N, p.I, p.semantics);
      ctx->pairs += static_cast<std::int64_t>(ctx->keys[b].total());
    }
    if (context) *context = ctx.release();
  });
}

int hax_sparse_attention_backward(const hax_sparse_args* a, const hax_context* ctx, const float* dout, float* dq,
                                  float* dk, float* dv) {
  return guarded("sparse_attention backward", [&] {
    const SparsePlan p = checked_plan(a);
    require(ctx, "context");
    require(dout, "dout");
    hax::check(int(ctx->keys.size()) == p.B, "context is from a forward with ", ctx->keys.size(), " sequences, not ", p.B);
    const std::vector<float> K = scaled_keys(a, p);
    for (float* g : {dq, dk}) if (g) std::fill_n(g, std::size_t(p.B) * p.T * p.N, 0.0f);
    if (dv) std::fill_n(dv, std::size_t(p.B) * p.T * p.I, 0.0f);
    for (int b = 0; b < p.B; ++b) {
      const std::size_t at = std::size_t(b) * p.T;
      sp::sparse_attention_backward(dq ? dq + at * p.N : nullptr, dk ? dk + at * p.N : nullptr,
                                    dv ? dv + at * p.I : nullptr, dout + at * p.I, ctx->probs[b].data(),
                                    a->q + at * p.N, K.data() + at * p.N, a->v + at * p.I, ctx->keys[b], p.N, p.I,
                                    p.semantics);
    }
    if (dk) {  // the kernel's dK is with respect to k / sqrt(N)
      const float scale = 1.0f / std::sqrt(float(p.N));
      for (std::size_t i = 0; i < std::size_t(p.B) * p.T * p.N; ++i) dk[i] *= scale;
    }
  });
}

int64_t hax_context_pairs(const hax_context* context) { return context ? context->pairs : 0; }

int hax_branch_forward(const hax_branch_args* a, const float* xc, int training, uint64_t noise_seed, float* attn,
                       double* gate_loss, hax_context** context) {
  return guarded("hax_branch forward", [&] {
    require(attn, "attn");
    auto ctx = std::make_unique<hax_context>();
    ctx->branch = make_branch(a, xc);
    hax_context::Branch& br = *ctx->branch;
    hax::layers::SparseStep step;
    step.training = training != 0;
    step.noise_seed = noise_seed;
    step.padded_length = a->seq_len;
    br.branch->forward(attn, br.xc.data(), br.batch, step, br.arena, br.saved);
    if (gate_loss) *gate_loss = br.saved.has_gate ? br.saved.gate_loss : 0.0;
    if (context) *context = ctx.release();
  });
}

int hax_branch_backward(const hax_context* ctx, const float* dattn, float gate_weight, float* dxc, float* dxx_proj,
                        float* const dscorer[6]) {
  return guarded("hax_branch backward", [&] {
    require(ctx, "context");
    require(ctx->branch.get(), "context (from hax_branch_forward)");
    require(dattn, "dattn");
    hax_context::Branch& br = const_cast<hax_context::Branch&>(*ctx->branch);
    br.store.zero_grad();
    std::vector<float> g_xc(br.xc.size(), 0.0f);
    br.branch->backward(g_xc.data(), dattn, br.batch, br.saved, gate_weight, br.arena);
    if (dxc) std::copy(g_xc.begin(), g_xc.end(), dxc);
    auto out = [&](const char* name, float* to) {
      if (!to) return;
      const std::span<const float> g = std::as_const(br.store).grad(name);
      std::copy(g.begin(), g.end(), to);
    };
    out("xx_proj.weight", dxx_proj);
    if (br.key_selection && dscorer)
      for (int j = 0; j < 6; ++j) out(kScorerNames[j], dscorer[j]);
  });
}

void hax_context_free(hax_context* context) { delete context; }

}  // extern "C"
