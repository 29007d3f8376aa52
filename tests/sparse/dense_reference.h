// The T x T construction of the reference code (reference.md §3.5-3.8), written independently of the sparse
// kernels: a boolean mask per pattern straight from its definition, their union, and a masked softmax over all T
// keys with the empty-row rule. The tests hold the streaming key lists and the sparse attention against it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "hax/ops/sparse/semantics.h"
#include "hax/ops/sparse/sparse_keys.h"

namespace hax::ops::sparse::testing {

// mask[t * T + s] = 1 when query t may attend to key s.
using DenseMask = std::vector<std::uint8_t>;

// Key s is among the w most recent keys s' <= t whose bucket equals the query's.
inline bool among_recent_same_bucket(int t, int s, int w, std::span<const std::int32_t> query_bucket,
                                     std::span<const std::int32_t> key_bucket) {
  if (key_bucket[s] != query_bucket[t]) return false;
  int newer = 0;
  for (int r = s + 1; r <= t; ++r) newer += key_bucket[r] == query_bucket[t];
  return newer < w;
}

// Key s is in the cumulative top-w of the scores over s' <= t, ties going to the lower position.
inline bool in_cumulative_top(int t, int s, int w, std::span<const float> score) {
  if (t + 1 <= w) return true;
  int ranked_above = 0;
  for (int r = 0; r <= t; ++r) ranked_above += score[r] > score[s] || (score[r] == score[s] && r < s);
  return ranked_above < w;
}

inline bool dense_pattern_allows(Pattern p, const SparseArch& arch, int t, int s, const PatternInputs& in) {
  const int w = arch.budget, d = arch.dilation;
  switch (p) {
    case Pattern::sliding_window:
      return t - w < s;
    case Pattern::sink:
      return s < w;
    case Pattern::dilated:
      return s % d == d - 1;
    case Pattern::sign_bin_lsh:
      return among_recent_same_bucket(t, s, w, in.sign_bin_query_bucket, in.sign_bin_key_bucket);
    case Pattern::argmax_lsh:
      return among_recent_same_bucket(t, s, w, in.argmax_query_bucket, in.argmax_key_bucket);
    case Pattern::key_selection:
      return in_cumulative_top(t, s, w, in.key_score);
    case Pattern::full:
      return true;
  }
  return false;
}

// The union (logical OR) of the arch's pattern masks, all restricted to s <= t.
inline DenseMask dense_union_mask(const SparseArch& arch, int T, const PatternInputs& in) {
  DenseMask mask(std::size_t(T) * T, 0);
  for (int t = 0; t < T; ++t)
    for (int s = 0; s <= t; ++s)
      for (Pattern p : arch.patterns) mask[std::size_t(t) * T + s] |= dense_pattern_allows(p, arch, t, s, in);
  return mask;
}

// The attention weights P (T, T): masked softmax of Q K^T per row; a row with no allowed key is uniform 1/T
// (paper: every entry is the same finfo.min) or all zero (causal).
inline std::vector<double> dense_attention_weights(const DenseMask& mask, const double* Q, const double* K, int T,
                                                   int N, Semantics semantics) {
  std::vector<double> P(std::size_t(T) * T, 0.0);
  for (int t = 0; t < T; ++t) {
    double* row = P.data() + std::size_t(t) * T;
    const std::uint8_t* allowed = mask.data() + std::size_t(t) * T;
    if (std::none_of(allowed, allowed + T, [](std::uint8_t a) { return a != 0; })) {
      if (semantics == Semantics::paper) std::fill(row, row + T, 1.0 / T);
      continue;
    }
    double max_score = -INFINITY, sum = 0.0;
    for (int s = 0; s < T; ++s) {
      if (!allowed[s]) continue;
      for (int n = 0; n < N; ++n) row[s] += Q[std::size_t(t) * N + n] * K[std::size_t(s) * N + n];
      max_score = std::max(max_score, row[s]);
    }
    for (int s = 0; s < T; ++s) sum += row[s] = allowed[s] ? std::exp(row[s] - max_score) : 0.0;
    for (int s = 0; s < T; ++s) row[s] /= sum;
  }
  return P;
}

struct DenseAttention {
  std::vector<double> out, dQ, dK, dV;
};

// out = P V and the gradients of sum(out * dout). A row with no allowed key has constant weights, so it sends no
// gradient to Q or K; otherwise dS = P (dP - rowsum(P dP)) with dP = dout V^T.
inline DenseAttention dense_attention(const DenseMask& mask, const double* Q, const double* K, const double* V,
                                      const double* dout, int T, int N, int I, Semantics semantics) {
  const std::vector<double> P = dense_attention_weights(mask, Q, K, T, N, semantics);
  DenseAttention r{std::vector<double>(std::size_t(T) * I, 0.0), std::vector<double>(std::size_t(T) * N, 0.0),
                   std::vector<double>(std::size_t(T) * N, 0.0), std::vector<double>(std::size_t(T) * I, 0.0)};
  for (int t = 0; t < T; ++t) {
    std::vector<double> dP(T, 0.0);
    double p_dot_dp = 0.0;
    for (int s = 0; s < T; ++s) {
      const double p = P[std::size_t(t) * T + s];
      for (int c = 0; c < I; ++c) {
        r.out[std::size_t(t) * I + c] += p * V[std::size_t(s) * I + c];
        r.dV[std::size_t(s) * I + c] += p * dout[std::size_t(t) * I + c];
        dP[s] += dout[std::size_t(t) * I + c] * V[std::size_t(s) * I + c];
      }
      p_dot_dp += p * dP[s];
    }
    for (int s = 0; s < T; ++s) {
      if (!mask[std::size_t(t) * T + s]) continue;
      const double dS = P[std::size_t(t) * T + s] * (dP[s] - p_dot_dp);
      for (int n = 0; n < N; ++n) {
        r.dQ[std::size_t(t) * N + n] += dS * K[std::size_t(s) * N + n];
        r.dK[std::size_t(s) * N + n] += dS * Q[std::size_t(t) * N + n];
      }
    }
  }
  return r;
}

}  // namespace hax::ops::sparse::testing
