#include "hax/ops/sparse/sparse_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "hax/engine/error.h"
#include "hax/ops/parallel.h"

namespace hax::ops::sparse {
namespace {

float dot(const float* a, const float* b, int n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y (n) += a x (n).
void axpy(float* y, float a, const float* x, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

bool any_empty_row(const SparseKeys& keys) {
  return std::find(keys.count.begin(), keys.count.end(), 0) != keys.count.end();
}

// The mean over all T rows of x (T, width): the output of a `paper` empty row. Summed in double.
std::vector<float> mean_rows(const float* x, int T, int width) {
  const std::vector<double> sums = parallel_row_sums(T, width, width, [&](int t, double* acc) {
    for (int c = 0; c < width; ++c) acc[c] += x[std::size_t(t) * width + c];
  });
  std::vector<float> mean(width);
  for (int c = 0; c < width; ++c) mean[c] = float(sums[c] / T);
  return mean;
}

// Asks for the `floats` floats at row into cache (a gathered row: the hardware prefetcher cannot guess it). Rows
// come from anywhere in the sequence, and at long lengths most are not in cache: without this each costs its
// cache misses one after the other.
inline void prefetch_row(const float* row, int floats) {
  for (int c = 0; c < floats; c += 16) __builtin_prefetch(row + c);
}

// How many gathered rows ahead of use a loop asks for.
constexpr std::size_t kPrefetchAhead = 8;

// One query's softmax weights p (count) over its keys and its output o (I).
void attend(float* o, float* p, const float* q, const std::int32_t* list, int count, const float* K, const float* V,
            int N, int I) {
  float max_score = -INFINITY;
  for (int j = 0; j < count; ++j) prefetch_row(K + std::size_t(list[j]) * N, N);
  for (int j = 0; j < count; ++j) {
    prefetch_row(V + std::size_t(list[j]) * I, I);  // read below, once all scores are in
    p[j] = dot(q, K + std::size_t(list[j]) * N, N);
    max_score = std::max(max_score, p[j]);
  }
  float sum = 0.0f;
  for (int j = 0; j < count; ++j) sum += p[j] = std::exp(p[j] - max_score);
  const float inv_sum = 1.0f / sum;
  std::fill(o, o + I, 0.0f);
  for (int j = 0; j < count; ++j) {
    p[j] *= inv_sum;
    axpy(o, p[j], V + std::size_t(list[j]) * I, I);
  }
}

// dscore (T, k_max) = d loss / d(Q_t · K_{s_j}) = p_j (dout_t · V_{s_j} - sum_i p_i dout_t · V_{s_i}); dQ += the
// query-side gradient, which each query owns.
void score_gradients(float* dscore, float* dQ, const float* dout, const float* probs, const float* K, const float* V,
                     const SparseKeys& keys, int N, int I) {
#pragma omp parallel if (worth_threads(keys.total() * (N + I)))
  {
    std::vector<float> dq(N);  // summed apart, then added once: a pre-filled dQ sees one rounding
#pragma omp for schedule(static)
    for (int t = 0; t < keys.T; ++t) {
      const auto list = keys.keys_of(t);
      const float* p = probs + std::size_t(t) * keys.k_max;
      float* ds = dscore + std::size_t(t) * keys.k_max;
      const float* g = dout + std::size_t(t) * I;
      float p_dot_dp = 0.0f;
      for (std::size_t j = 0; j < list.size(); ++j) prefetch_row(K + std::size_t(list[j]) * N, N);
      for (std::size_t j = 0; j < list.size() && j < kPrefetchAhead; ++j) prefetch_row(V + std::size_t(list[j]) * I, I);
      for (std::size_t j = 0; j < list.size(); ++j) {
        if (j + kPrefetchAhead < list.size()) prefetch_row(V + std::size_t(list[j + kPrefetchAhead]) * I, I);
        ds[j] = dot(g, V + std::size_t(list[j]) * I, I);
        p_dot_dp += p[j] * ds[j];
      }
      for (std::size_t j = 0; j < list.size(); ++j) ds[j] = p[j] * (ds[j] - p_dot_dp);
      if (!dQ) continue;
      std::fill(dq.begin(), dq.end(), 0.0f);
      for (std::size_t j = 0; j < list.size(); ++j) axpy(dq.data(), ds[j], K + std::size_t(list[j]) * N, N);
      axpy(dQ + std::size_t(t) * N, 1.0f, dq.data(), N);
    }
  }
}

// Key rows are dealt to the threads in blocks of this many (round-robin), for key_gradients.
constexpr int kKeyRowBlock = 16;

// dK_s += sum over entries (t, j) selecting s of dscore * Q_t; dV_s += sum of p * dout_t. The entries are visited
// query by query, in increasing t: each query's dout row and its probs and dscore rows are read once, in order, and
// the writes go to the rows of its keys (recent positions, or key selection's few long-lived ones), which stay in
// cache. Walking key by key instead (the key lists transposed) gathers probs and dscore entries and dout rows from
// all over the sequence, which stops fitting in cache as T grows (at T = 64k, 3x the time per token of T = 4k).
// Each key row is summed by one thread (its owner: blocks of kKeyRowBlock rows dealt round-robin), in increasing t,
// into a zeroed accumulator (dk_sum (rows, N), dv_sum (rows, I); the owner zeroes its rows) that is then added to
// dK / dV once: the same bits whatever the thread count.
void key_gradients(float* dK, float* dV, float* dk_sum, float* dv_sum, const float* dscore, const float* probs,
                   const float* Q, const float* dout, const SparseKeys& keys, int N, int I) {
  const int rows = keys.key_rows();
#pragma omp parallel if (worth_threads(keys.total() * (N + I)))
  {
    const int owner = omp_get_thread_num(), owners = omp_get_num_threads();
    auto for_owned_rows = [&](auto&& fn) {
      for (int s = owner * kKeyRowBlock; s < rows; s += owners * kKeyRowBlock)
        for (int r = s; r < std::min(s + kKeyRowBlock, rows); ++r) fn(std::size_t(r));
    };
    for_owned_rows([&](std::size_t r) {
      if (dK) std::fill_n(dk_sum + r * N, N, 0.0f);
      if (dV) std::fill_n(dv_sum + r * I, I, 0.0f);
    });
    for (int t = 0; t < keys.T; ++t) {
      const auto list = keys.keys_of(t);
      const float* ds = dscore + std::size_t(t) * keys.k_max;
      const float* p = probs + std::size_t(t) * keys.k_max;
      for (std::size_t j = 0; j < list.size(); ++j) {
        const std::size_t s = std::size_t(list[j]);
        if (int(s / kKeyRowBlock) % owners != owner) continue;
        if (dV && j + kPrefetchAhead < list.size()) prefetch_row(dv_sum + list[j + kPrefetchAhead] * std::size_t(I), I);
        if (dK) axpy(dk_sum + s * N, ds[j], Q + std::size_t(t) * N, N);
        if (dV) axpy(dv_sum + s * I, p[j], dout + std::size_t(t) * I, I);
      }
    }
    for_owned_rows([&](std::size_t r) {
      if (dK) axpy(dK + r * N, 1.0f, dk_sum + r * N, N);
      if (dV) axpy(dV + r * I, 1.0f, dv_sum + r * I, I);
    });
  }
}

// `paper` empty rows give every position weight 1/T: dV_s += (sum of their dout) / T for every s.
void uniform_row_gradients(float* dV, const float* dout, const SparseKeys& keys, int I) {
  std::vector<double> dout_sum(I, 0.0);
  for (int t = 0; t < keys.T; ++t)
    if (keys.count[t] == 0)
      for (int c = 0; c < I; ++c) dout_sum[c] += dout[std::size_t(t) * I + c];
  std::vector<float> share(I);
  for (int c = 0; c < I; ++c) share[c] = float(dout_sum[c] / keys.T);
  parallel_for(keys.T, worth_threads(std::size_t(keys.T) * I),
               [&](int s) { axpy(dV + std::size_t(s) * I, 1.0f, share.data(), I); });
}

}  // namespace

void check_chunk(const SparseKeys& keys, Semantics semantics) {
  check(keys.query_offset == 0 || semantics == Semantics::causal,
        "sparse attention over a chunk of a sequence (query offset ", keys.query_offset,
        ") needs `causal` semantics: a `paper` empty row averages the values of the whole sequence");
}

void check_positions(const SparseKeys& keys) {
  check(keys.slot_rows == 0, "sparse attention backward over key lists of cache slots: it needs positions");
}

void sparse_attention_forward(float* out, float* probs, const float* Q, const float* K, const float* V,
                              const SparseKeys& keys, int N, int I, Semantics semantics) {
  check_chunk(keys, semantics);
  const bool uniform_rows = semantics == Semantics::paper && any_empty_row(keys);
  // Only `paper`'s empty rows need the mean (so a `causal` decoded token allocates nothing here).
  const std::vector<float> mean_v = uniform_rows ? mean_rows(V, keys.T, I) : std::vector<float>{};
  parallel_for(keys.T, worth_threads(keys.total() * (N + I)), [&](int t) {
    float* o = out + std::size_t(t) * I;
    if (keys.count[t] == 0 && uniform_rows)
      std::copy(mean_v.begin(), mean_v.end(), o);
    else if (keys.count[t] == 0)
      std::fill(o, o + I, 0.0f);  // `causal`: an empty row attends to nothing
    else
      attend(o, probs + std::size_t(t) * keys.k_max, Q + std::size_t(t) * N, keys.keys_of(t).data(), keys.count[t], K,
             V, N, I);
  });
}

std::size_t sparse_attention_backward_scratch_floats(const SparseKeys& keys, int N, int I) {
  return std::size_t(keys.T) * keys.k_max + std::size_t(keys.key_rows()) * (N + I);
}

void sparse_attention_backward(float* dQ, float* dK, float* dV, const float* dout, const float* probs, const float* Q,
                               const float* K, const float* V, const SparseKeys& keys, int N, int I,
                               Semantics semantics) {
  std::vector<float> scratch(sparse_attention_backward_scratch_floats(keys, N, I));
  sparse_attention_backward_with_scratch(dQ, dK, dV, dout, probs, Q, K, V, keys, N, I, semantics, scratch.data());
}

void sparse_attention_backward_with_scratch(float* dQ, float* dK, float* dV, const float* dout, const float* probs,
                                            const float* Q, const float* K, const float* V, const SparseKeys& keys,
                                            int N, int I, Semantics semantics, float* scratch) {
  check_chunk(keys, semantics);
  check_positions(keys);
  float* dscore = scratch;  // every entry read is written first
  float* dk_sum = dscore + std::size_t(keys.T) * keys.k_max;
  float* dv_sum = dk_sum + std::size_t(keys.key_rows()) * N;
  if (dQ || dK) score_gradients(dscore, dQ, dout, probs, K, V, keys, N, I);
  if (dK || dV) key_gradients(dK, dV, dk_sum, dv_sum, dscore, probs, Q, dout, keys, N, I);
  if (dV && semantics == Semantics::paper && any_empty_row(keys)) uniform_row_gradients(dV, dout, keys, I);
}

}  // namespace hax::ops::sparse
