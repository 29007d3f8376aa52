#include "hax/layers/sparse_branch.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "hax/engine/rng.h"
#include "hax/ops/linear.h"
#include "hax/ops/sparse/gate_loss.h"
#include "hax/ops/sparse/lsh.h"
#include "hax/ops/sparse/sparse_attention.h"

namespace hax::layers {
namespace {

using ops::sparse::Pattern;


// Copies each sequence's rows between the packed batch and a layout with the same sequences at other offsets
// (the padded layout of `paper`): rows past a sequence's real length are left alone.
void copy_rows(float* to, const PackedBatch& to_layout, const float* from, const PackedBatch& from_layout,
               int width) {
  for (int q = 0; q < from_layout.num_sequences(); ++q) {
    const int length = std::min(from_layout.length(q), to_layout.length(q));
    std::copy_n(from + rows_times(from_layout.start(q), width), rows_times(length, width),
                to + rows_times(to_layout.start(q), width));
  }
}

// Like copy_rows, but adds.
void add_rows(float* to, const PackedBatch& to_layout, const float* from, const PackedBatch& from_layout, int width) {
  for (int q = 0; q < from_layout.num_sequences(); ++q) {
    const int length = std::min(from_layout.length(q), to_layout.length(q));
    float* dst = to + rows_times(to_layout.start(q), width);
    const float* src = from + rows_times(from_layout.start(q), width);
    for (std::size_t i = 0; i < rows_times(length, width); ++i) dst[i] += src[i];
  }
}

// One row of xx_proj's output kq (2N) into its key (N), divided by sqrt(N), and query (N). K is the FIRST half
// (reference.md §3.3).
void split_row(float* key, float* query, const float* kq, int N) {
  const float scale = std::sqrt(float(N));
  for (int n = 0; n < N; ++n) key[n] = kq[n] / scale;
  std::copy_n(kq + N, N, query);
}

// k distinct positions of [0, real) drawn uniformly (a partial Fisher-Yates shuffle), then, when k > real, the
// padding positions real, real + 1, ... (the reference ranks padding last, by noise -1).
std::vector<std::int32_t> draw_candidates(int k, int real, Rng& rng) {
  std::vector<std::int32_t> positions(std::max(real, 0));
  std::iota(positions.begin(), positions.end(), 0);
  const int drawn = std::min(k, real);
  for (int j = 0; j < drawn; ++j) std::swap(positions[j], positions[j + rng.below(real - j)]);
  positions.resize(drawn);
  for (int p = real; int(positions.size()) < k; ++p) positions.push_back(p);
  return positions;
}

}  // namespace

SparseBranch::SparseBranch(const SparseConfig& c, ParamStore& store, ParamStore& buffers, const std::string& p)
    : I_(c.channels),
      N_(c.state),
      num_hash_(c.num_hash),
      arch_(c.arch),
      semantics_(c.semantics),
      ingredients_(c.paper_ingredients),
      lsh_running_(c.lsh_running_statistics),
      ks_running_(c.ks_running_normalization),
      lsh_resample_(c.lsh_resample) {
  auto bind = [&](const std::string& name) { return bind_tensor(store, name); };
  xx_proj_ = bind(p + "xx_proj.weight");
  E_ = bind(p + "E");
  if (uses(Pattern::key_selection)) {
    w1_ = bind(p + "dx_proj_1.weight"), b1_ = bind(p + "dx_proj_1.bias");
    w2_ = bind(p + "dx_proj_2.weight"), b2_ = bind(p + "dx_proj_2.bias");
    w3_ = bind(p + "dx_proj_3.weight"), b3_ = bind(p + "dx_proj_3.bias");
  }
  if (uses(Pattern::sign_bin_lsh) || uses(Pattern::argmax_lsh))
    saved_lsh_projection_ = buffers.param(p + kLshProjectionName).data();
}

ops::sparse::ScorerWeights<float> SparseBranch::scorer_weights() const {
  return {w1_.value, b1_.value, w2_.value, b2_.value, w3_.value, b3_.value};
}

PackedBatch SparseBranch::layout_of(const PackedBatch& batch, int padded_length) const {
  if (!paper()) return batch;
  const int T = std::max(padded_length, batch.longest());
  PackedBatch padded;
  for (int q = 0; q < batch.num_sequences(); ++q) padded.add_sequence(T);
  return padded;
}

std::vector<float> SparseBranch::lsh_projection(const SparseStep& step) const {
  std::vector<float> H(std::size_t(N_) * num_hash_);
  const bool fresh = lsh_resample_ == "every_forward" || (lsh_resample_ == "training" && step.training);
  if (fresh)
    Rng(step.noise_seed).fork(0).fill_normal(H, 0.0f, 1.0f);
  else
    std::copy_n(saved_lsh_projection_, H.size(), H.data());
  return H;
}

std::size_t SparseBranch::arena_floats(int M, int S, int longest, int padded_length) const {
  const std::size_t P = paper() ? std::size_t(S) * std::max(padded_length, longest) : std::size_t(M);
  const std::size_t N = N_, I = I_, F = 2 * N, pad = AlignedBuffer::kAlignFloats;
  const std::size_t k_max = ops::sparse::max_keys_per_query(arch_, std::max(longest, padded_length));
  const std::size_t padded_copies = paper() ? 2 * P * I : 0;  // V and attn (forward), dattn and dV (backward)
  const std::size_t scorer = uses(Pattern::key_selection) ? P * (3 * F + 2) : 0;  // + dscore in backward
  const std::size_t forward = M * F + 2 * P * N + padded_copies + scorer + P * k_max + 16 * pad;
  // dQ, dK, dKQ, the attention's scratch (sparse_attention_backward_scratch_floats) and the scorer's (4 N per row).
  const std::size_t backward = 2 * P * N + M * F + padded_copies + P * (k_max + N + I) +
                               (uses(Pattern::key_selection) ? P * 4 * N : 0) + 10 * pad;
  return forward + backward;
}

void SparseBranch::split_queries_keys(Saved& s, const PackedBatch& batch) const {
  const int N = N_;
  for (int q = 0; q < batch.num_sequences(); ++q)
    for (int t = 0; t < batch.length(q); ++t)
      split_row(s.K + rows_times(s.layout.start(q) + t, N), s.Q + rows_times(s.layout.start(q) + t, N),
                s.KQ + rows_times(batch.start(q) + t, 2 * N), N);
}

int SparseBranch::num_buckets() const {
  int count = 0;
  if (uses(Pattern::sign_bin_lsh)) count = ops::sparse::sign_bin_bucket_count(num_hash_);
  if (uses(Pattern::argmax_lsh)) count = std::max(count, ops::sparse::argmax_bucket_count(num_hash_));
  return count;
}

void SparseBranch::lsh_inputs(ops::sparse::PatternInputs& in, std::vector<std::int32_t> (&buckets)[4],
                              const float* Q, const float* K, int T, const float* H, double* lsh_sums,
                              std::int64_t before, float* proj_scratch) const {
  const int H_cols = num_hash_;
  float* proj_q = proj_scratch;
  float* proj_k = proj_scratch + rows_times(T, H_cols);
  project(proj_q, Q, T, H, lsh_sums, before);
  project(proj_k, K, T, H, lsh_sums + 2 * N_, before);
  for (auto& b : buckets) b.resize(T);
  if (uses(Pattern::sign_bin_lsh)) {
    ops::sparse::sign_bin_buckets(buckets[0].data(), proj_q, T, H_cols);
    ops::sparse::sign_bin_buckets(buckets[1].data(), proj_k, T, H_cols);
    in.sign_bin_query_bucket = buckets[0], in.sign_bin_key_bucket = buckets[1];
  }
  if (uses(Pattern::argmax_lsh)) {
    ops::sparse::argmax_buckets(buckets[2].data(), proj_q, T, H_cols);
    ops::sparse::argmax_buckets(buckets[3].data(), proj_k, T, H_cols);
    in.argmax_query_bucket = buckets[2], in.argmax_key_bucket = buckets[3];
  }
  in.num_buckets = num_buckets();
}

void SparseBranch::project(float* proj, const float* x, int T, const float* H, double* sums,
                           std::int64_t before) const {
  if (lsh_running_)
    ops::sparse::lsh_projections_running(proj, x, H, T, N_, num_hash_, sums, before);
  else
    ops::sparse::lsh_projections(proj, x, H, T, N_, num_hash_, lsh_semantics());
}

void SparseBranch::ks_features(float* features, const float* Q, const float* K, int T, double* sums) const {
  if (ks_running_)
    ops::sparse::key_selection_features_running(features, Q, K, T, N_, sums, sums + N_);
  else if (ks_semantics() == ops::sparse::Semantics::causal)
    ops::sparse::key_selection_features_continued(features, Q, K, T, N_, sums);
  else
    ops::sparse::key_selection_features(features, Q, K, T, N_, ops::sparse::Semantics::paper);
}

void SparseBranch::forward(float* attn, const float* xc, const PackedBatch& batch, const SparseStep& step,
                           Arena& arena, Saved& s) const {
  const int M = batch.rows(), N = N_, I = I_, F = 2 * N;
  s.xc = xc;
  s.layout = layout_of(batch, step.padded_length);
  const int P = s.layout.rows(), S = batch.num_sequences();
  auto alloc = [&](std::size_t count, const char* what) { return arena.alloc(count, what).data(); };
  s.KQ = alloc(rows_times(M, F), "sparse xx_proj out");
  ops::linear_forward(s.KQ, xc, xx_proj_.value, nullptr, M, I, F);
  s.Q = alloc(rows_times(P, N), "sparse Q");
  s.K = alloc(rows_times(P, N), "sparse K");
  split_queries_keys(s, batch);
  if (paper()) {
    s.V = alloc(rows_times(P, I), "sparse V (padded)");
    copy_rows(s.V, s.layout, xc, batch, I);
  } else {
    s.V = const_cast<float*>(xc);  // read only: V is xc itself
  }
  if (uses(Pattern::key_selection)) {
    s.features = alloc(rows_times(P, F), "key selection features");
    s.hidden1 = alloc(rows_times(P, F), "key scorer hidden 1");
    s.hidden2 = alloc(rows_times(P, F), "key scorer hidden 2");
    s.score = alloc(P, "key scores");
    for_each_sequence(s.layout, [&](int q) {
      const std::size_t at = s.layout.start(q);
      std::vector<double> sums(2 * std::size_t(N), 0.0);  // each sequence from its start
      ks_features(s.features + at * F, s.Q + at * N, s.K + at * N, s.layout.length(q), sums.data());
    });
    ops::sparse::key_scorer_forward(s.score, s.hidden1, s.hidden2, s.features, scorer_weights(), P, N);
  }
  s.probs_at.assign(1, 0);
  for (int q = 0; q < S; ++q)
    s.probs_at.push_back(s.probs_at.back() +
                         rows_times(s.layout.length(q), ops::sparse::max_keys_per_query(arch_, s.layout.length(q))));
  s.probs = alloc(s.probs_at.back(), "sparse attention weights");
  float* attn_layout = paper() ? alloc(rows_times(P, I), "sparse attention out (padded)") : attn;
  select_and_attend(attn_layout, s, step);
  if (paper()) copy_rows(attn, batch, attn_layout, s.layout, I);
  s.has_gate = step.training && uses(Pattern::key_selection);
  s.gate_loss = 0;
  if (s.has_gate) gate_loss_forward(s, batch, step);
}

void SparseBranch::select_and_attend(float* attn_layout, Saved& s, const SparseStep& step) const {
  const int N = N_, I = I_;
  const bool lsh = num_buckets() > 0;
  const std::vector<float> H = lsh ? lsh_projection(step) : std::vector<float>{};
  s.keys.resize(s.layout.num_sequences());  // the mixer keeps `s` between steps: the lists reuse their buffers
  for_each_sequence(s.layout, [&](int q) {
    const int T = s.layout.length(q);
    const std::size_t at = s.layout.start(q);
    ops::sparse::PatternInputs in;
    std::vector<std::int32_t> buckets[4];
    std::vector<double> lsh_sums(lsh_running_ ? 4 * std::size_t(N) : 0, 0.0);  // each sequence from its start
    std::vector<float> proj(lsh ? 2 * rows_times(T, num_hash_) : 0);
    if (lsh) lsh_inputs(in, buckets, s.Q + at * N, s.K + at * N, T, H.data(), lsh_sums.data(), 0, proj.data());
    if (uses(Pattern::key_selection)) in.key_score = {s.score + at, std::size_t(T)};
    ops::sparse::build_sparse_keys(arch_, T, in, s.keys[q]);
    ops::sparse::sparse_attention_forward(attn_layout + at * I, s.probs + s.probs_at[q], s.Q + at * N, s.K + at * N,
                                          s.V + at * I, s.keys[q], N, I, attention_semantics());
  });
}

SparseState SparseBranch::start_state() const {
  check(!paper(), "streaming inference (prefill in chunks, decoding) needs `causal` semantics: under `paper` the LSH "
        "and key-selection statistics and the empty-row attention look at the whole padded sequence");
  check(num_buckets() == 0 || lsh_resample_ != "every_forward",
        "streaming inference needs fixed LSH projections: this model redraws them every forward (lsh_resample "
        "every_forward); use \"never\" or \"training\"");
  SparseState state{
      ops::sparse::SparseKeyStream(arch_, num_buckets()), ops::sparse::KeyValueCache(N_, I_), {}, {}, {}, {}, {}};
  state.query_sum.assign(2 * std::size_t(N_), 0.0);
  if (lsh_running_) state.lsh_sums.assign(4 * std::size_t(N_), 0.0);
  return state;
}

std::size_t SparseBranch::chunk_arena_floats(int T, int position) const {
  const std::size_t F = 2 * N_, pad = AlignedBuffer::kAlignFloats;
  const std::size_t scorer = uses(Pattern::key_selection) ? std::size_t(T) * (3 * F + 1) : 0;
  const std::size_t lsh = num_buckets() > 0 ? 2 * std::size_t(T) * num_hash_ : 0;
  const std::size_t k_max = ops::sparse::max_keys_per_query(arch_, position + T);
  return std::size_t(T) * (F + 2 * N_ + k_max) + scorer + lsh + 9 * pad;
}

void SparseBranch::forward_chunk(float* attn, const float* xc, int T, SparseState& st, Arena& arena) const {
  check(!paper(), "SparseBranch::forward_chunk needs `causal` semantics");
  const int N = N_, I = I_, F = 2 * N, first = st.position();
  const std::size_t mark = arena.mark();
  auto alloc = [&](std::size_t count, const char* what) { return arena.alloc(count, what).data(); };
  float* KQ = alloc(rows_times(T, F), "chunk xx_proj out");
  ops::linear_forward(KQ, xc, xx_proj_.value, nullptr, T, I, F);
  float* Q = alloc(rows_times(T, N), "chunk Q");
  float* K = alloc(rows_times(T, N), "chunk K");
  for (int t = 0; t < T; ++t) {
    split_row(K + rows_times(t, N), Q + rows_times(t, N), KQ + rows_times(t, F), N);
    st.cache.append(first + t, K + rows_times(t, N), xc + rows_times(t, I));
  }
  ops::sparse::PatternInputs in;
  // The saved projection: start_state() refused one redrawn every forward, and inference is not training.
  if (num_buckets() > 0)
    lsh_inputs(in, st.chunk_buckets, Q, K, T, saved_lsh_projection_, st.lsh_sums.data(), first,
               alloc(2 * rows_times(T, num_hash_), "chunk LSH projections"));
  if (uses(Pattern::key_selection)) {
    float* features = alloc(rows_times(T, F), "chunk key selection features");
    float* hidden1 = alloc(rows_times(T, F), "chunk key scorer hidden 1");
    float* hidden2 = alloc(rows_times(T, F), "chunk key scorer hidden 2");
    float* score = alloc(T, "chunk key scores");
    ks_features(features, Q, K, T, st.query_sum.data());
    ops::sparse::key_scorer_forward(score, hidden1, hidden2, features, scorer_weights(), T, N);
    in.key_score = {score, std::size_t(T)};
  }
  ops::sparse::SparseKeys& keys = st.chunk_keys;
  st.keys.advance(T, in, keys, st.chunk_holds);  // indices are positions in the whole sequence
  st.cache.to_slots(keys);                        // now rows of the cache
  float* probs = alloc(rows_times(T, keys.k_max), "chunk attention weights");
  ops::sparse::sparse_attention_forward(attn, probs, Q, st.cache.keys(), st.cache.values(), keys, N, I, semantics_);
  st.cache.apply(st.chunk_holds, first);  // only now: the chunk's attention read positions its steps let go of
  arena.release(mark);
}

int SparseBranch::ranked_candidates(int real_length, int layout_length) const {
  // The reference ranks budget-many positions of the padded row (padding last); `causal` ranks real ones only.
  return std::min(arch_.budget, gate_counts_padding() ? layout_length : real_length);
}

void SparseBranch::gate_loss_forward(Saved& s, const PackedBatch& batch, const SparseStep& step) const {
  const int S = batch.num_sequences(), N = N_;
  s.candidates.assign(S, {});
  s.targets.assign(S, {});
  const Rng root(step.noise_seed);
  double sum = 0, pairs = 0;
  for (int q = 0; q < S; ++q) {
    const int T = s.layout.length(q), real = batch.length(q);
    const int k = ranked_candidates(real, T);
    if (k == 0) continue;
    Rng rng = root.fork(1 + std::uint64_t(q));
    s.candidates[q] = draw_candidates(k, real, rng);
    s.targets[q].resize(k);
    const std::size_t at = s.layout.start(q);
    // `paper` counts every padded query (0.5 each, Q = 0 there); `causal` (and `paper` without gate_padding) the
    // real ones only.
    ops::sparse::gate_loss_targets(s.targets[q].data(), s.Q + at * N, s.K + at * N, s.candidates[q].data(), k,
                                   gate_counts_padding() ? T : real, N);
    std::vector<float> pred(k);
    for (int j = 0; j < k; ++j) pred[j] = s.score[at + s.candidates[q][j]];
    sum += double(ops::sparse::gate_loss_forward(pred.data(), s.targets[q].data(), k)) * k * k;
    pairs += double(k) * k;
  }
  s.gate_loss = pairs > 0 ? sum / pairs : 0.0;  // the mean over all (sequence, i, j) entries
}

void SparseBranch::backward(float* dxc, const float* dattn, const PackedBatch& batch, const Saved& s,
                            float gate_weight, Arena& arena) const {
  const int M = batch.rows(), N = N_, I = I_, F = 2 * N, P = s.layout.rows();
  const std::size_t mark = arena.mark();
  auto alloc = [&](std::size_t count, const char* what) { return arena.alloc(count, what).data(); };
  float* dQ = alloc(rows_times(P, N), "sparse dQ");
  float* dK = alloc(rows_times(P, N), "sparse dK");
  const float* dattn_layout = dattn;
  float* dV = dxc;  // V is xc: under `causal` its gradient goes straight into dxc
  if (paper()) {
    float* padded = alloc(rows_times(P, I), "sparse d attn (padded)");
    copy_rows(padded, s.layout, dattn, batch, I);
    dattn_layout = padded;
    dV = alloc(rows_times(P, I), "sparse dV (padded)");
  }
  // The attention backward's working memory, from the arena (sparse_attention.h says why): sequence q's takes
  // its probs' size (score gradients) plus N + I floats per row (per-key sums), so it starts at the sum of those
  // of the sequences before it.
  const std::size_t scratch_floats = s.probs_at.back() + rows_times(P, N + I);
  float* scratch = arena.alloc_uninitialized(scratch_floats, "sparse attention backward scratch").data();
  for_each_sequence(s.layout, [&](int q) {
    const std::size_t at = s.layout.start(q);
    ops::sparse::sparse_attention_backward_with_scratch(
        dQ + at * N, dK + at * N, dV + at * I, dattn_layout + at * I, s.probs + s.probs_at[q], s.Q + at * N,
        s.K + at * N, s.V + at * I, s.keys[q], N, I, attention_semantics(), scratch + s.probs_at[q] + at * (N + I));
  });
  if (paper()) add_rows(dxc, batch, dV, s.layout, I);  // padding rows of xc are masked to zero: drop theirs
  float* dKQ = alloc(rows_times(M, F), "sparse d xx_proj out");
  const float scale = std::sqrt(float(N));
  for (int q = 0; q < batch.num_sequences(); ++q)
    for (int t = 0; t < batch.length(q); ++t) {
      float* d = dKQ + rows_times(batch.start(q) + t, F);
      const std::size_t at = rows_times(s.layout.start(q) + t, N);
      for (int n = 0; n < N; ++n) d[n] = dK[at + n] / scale, d[N + n] = dQ[at + n];
    }
  ops::linear_backward(dxc, xx_proj_.grad, nullptr, dKQ, s.xc, xx_proj_.value, M, I, F);
  if (s.has_gate) gate_loss_backward(s, gate_weight, arena);
  arena.release(mark);
}

void SparseBranch::gate_loss_backward(const Saved& s, float gate_weight, Arena& arena) const {
  const int P = s.layout.rows();
  float* dscore = arena.alloc(P, "d key scores").data();
  double pairs = 0;
  for (const auto& c : s.candidates) pairs += double(c.size()) * c.size();
  if (pairs == 0 || gate_weight == 0) return;
  for (std::size_t q = 0; q < s.candidates.size(); ++q) {
    const int k = int(s.candidates[q].size());
    if (k == 0) continue;
    const std::size_t at = s.layout.start(int(q));
    std::vector<float> pred(k), dpred(k, 0.0f);
    for (int j = 0; j < k; ++j) pred[j] = s.score[at + s.candidates[q][j]];
    // This sequence's mean covers k^2 of the layer's `pairs` entries.
    ops::sparse::gate_loss_backward(dpred.data(), float(gate_weight * k * k / pairs), pred.data(),
                                    s.targets[q].data(), k);
    for (int j = 0; j < k; ++j) dscore[at + s.candidates[q][j]] += dpred[j];
  }
  const ops::sparse::ScorerGradients<float> g{w1_.grad, b1_.grad, w2_.grad, b2_.grad, w3_.grad, b3_.grad};
  float* scratch = arena.alloc_uninitialized(rows_times(P, 4 * N_), "key scorer backward scratch").data();
  ops::sparse::key_scorer_backward_with_scratch(g, dscore, s.features, s.hidden1, s.hidden2, scorer_weights(), P, N_,
                                                scratch);
}

}  // namespace hax::layers
