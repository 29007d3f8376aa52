#include "hax/ops/window_attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/engine/error.h"
#include "hax/ops/fast_math.h"
#include "hax/ops/parallel.h"

namespace hax::ops {
namespace {

// Rows per task: queries in the forward and the dq pass, keys in the dk/dv pass. A task loads the columns its rows
// see (up to kBlock + window - 1 of them) once and every row reads them from there.
constexpr int kBlock = 64;

int round_up(int n, int to) { return (n + to - 1) / to * to; }

// The inner loops run over a row's run of consecutive columns (a query's keys, or a key's queries), kVecWidth at a
// time, with explicit vectors: their sums then go in a fixed order (lane j of every vector, then the lanes in order)
// that depends only on the run's length, not on where it starts in memory or on what the compiler peels for
// alignment. That is what gives a query the same bits in every way of calling.
const Vec8 kLaneIndex = {0, 1, 2, 3, 4, 5, 6, 7};

// v with the lanes from `count` on replaced by fill (count >= kVecWidth keeps all).
Vec8 keep_first(Vec8 v, int count, float fill) { return select(kLaneIndex < float(count), v, splat<Vec8>(fill)); }

float sum_lanes(Vec8 v) {
  float sum = 0.0f;
  for (int i = 0; i < kVecWidth; ++i) sum += v[i];
  return sum;
}

float max_lanes(Vec8 v) {
  float m = v[0];
  for (int i = 1; i < kVecWidth; ++i) m = std::max(m, v[i]);
  return m;
}

// Columns [first, first + count) of one head of a row-major matrix x (rows of `stride` floats, the head's `width`
// elements from `offset`), transposed and multiplied by `scale`: run(column) points at element 0 of that column,
// element d of the same column is ld() floats further, and the following columns come next, contiguously. Each row
// of the copy ends in kVecWidth - 1 zeros or more, so a run can be read in whole vectors past its last column.
class Transposed {
 public:
  void load(const float* x, int stride, int offset, int width, int first, int count, float scale = 1.0f) {
    first_ = first;
    ld_ = round_up(count + kVecWidth - 1, kVecWidth);
    data_.resize(std::size_t(width) * ld_);
    for (int c = 0; c < count; ++c) {
      const float* src = x + std::size_t(first + c) * stride + offset;
      for (int d = 0; d < width; ++d) data_[std::size_t(d) * ld_ + c] = scale * src[d];
    }
    for (int d = 0; d < width; ++d) std::fill_n(data_.data() + std::size_t(d) * ld_ + count, ld_ - count, 0.0f);
  }
  const float* run(int column) const { return data_.data() + (column - first_); }
  std::size_t ld() const { return ld_; }

 private:
  std::vector<float> data_;
  int first_ = 0, ld_ = 0;
};

// s[j] = sum_d x[d] * column (first + j)[d] for j < count, written in whole vectors (the lanes past count are
// garbage).
void project(float* s, const float* x, const Transposed& cols, int first, int count, int width) {
  const float* c = cols.run(first);
  const std::size_t ld = cols.ld();
  for (int j = 0; j < count; j += kVecWidth) {
    Vec8 acc{};
    for (int d = 0; d < width; ++d) acc += splat<Vec8>(x[d]) * load_vec(c + d * ld + j);
    store_vec(s + j, acc);
  }
}

// y[d] = sum_{j < count} w[j] * column (first + j)[d], d < width. The lanes past count are masked out, so that
// nothing there (the columns after the run) can reach y, not even a NaN through 0 * NaN.
void weighted_sum(float* y, const float* w, const Transposed& cols, int first, int count, int width) {
  const float* c = cols.run(first);
  const std::size_t ld = cols.ld();
  const int whole = count / kVecWidth * kVecWidth;
  for (int d = 0; d < width; ++d) {
    const float* cd = c + d * ld;
    Vec8 acc{};
    for (int j = 0; j < whole; j += kVecWidth) acc += load_vec(w + j) * load_vec(cd + j);
    if (whole < count) acc += keep_first(load_vec(w + whole) * load_vec(cd + whole), count - whole, 0.0f);
    y[d] = sum_lanes(acc);
  }
}

// A softmax statistic of the far side of a row's pairs (lse, or D): one value for the whole run (the query's own, in
// the query pass) or one per column (the queries', in the key pass; padded like the Transposed rows).
struct Statistic {
  const float* per_column = nullptr;  // at the run's first column
  float value = 0.0f;
  Vec8 at(int j) const { return per_column ? load_vec(per_column + j) : splat<Vec8>(value); }
};

// A thread's working memory, reused by its tasks.
struct Scratch {
  Transposed a, b;             // the columns a task's rows pair with
  std::vector<float> p, ds;    // one row's run: probabilities, and score gradients
  std::vector<float> lse, D;   // the key pass: the statistics of the task's columns (queries)
  std::vector<float> x, y, z;  // one row: scaled query, and two gradient sums (head_dim each)

  void reserve(int run, int head_dim) {
    p.resize(round_up(run, kVecWidth));
    ds.resize(p.size());
    x.resize(head_dim);
    y.resize(head_dim);
    z.resize(head_dim);
  }
};

// Runs task(first_row, end_row, head, scratch) for every block of kBlock rows and every head, in parallel when
// `work` is worth it. Tasks write disjoint rows, so their results do not depend on which thread runs them.
template <class Task>
void for_each_block(int rows, int heads, std::size_t work, Task&& task) {
  const int blocks = (rows + kBlock - 1) / kBlock;
  parallel_region(worth_threads(work), [&] {
    // The thread's own, kept from call to call: streaming attends once per decoded token, which must not allocate.
    static thread_local Scratch scratch;
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < blocks; ++b)
      for (int h = 0; h < heads; ++h) task(b * kBlock, std::min(rows, (b + 1) * kBlock), h, scratch);
  });
}

// One query of one head over its keys [first, first + count) of the block: out (P) and the log-sum-exp of the scaled
// scores. q_scaled = q / sqrt(P).
void attend(float* out, float* lse, const float* q_scaled, const Transposed& keys, const Transposed& values,
            int first, int count, int P, Scratch& scratch) {
  float* p = scratch.p.data();
  project(p, q_scaled, keys, first, count, P);
  Vec8 vmax = splat<Vec8>(-INFINITY);
  for (int j = 0; j < count; j += kVecWidth) {
    const Vec8 s = keep_first(load_vec(p + j), count - j, -INFINITY);
    vmax = select(s > vmax, s, vmax);
  }
  const float max_score = max_lanes(vmax);
  Vec8 vsum{};
  for (int j = 0; j < count; j += kVecWidth) {
    const Vec8 e = keep_first(fast_exp_nonpositive(load_vec(p + j) - max_score), count - j, 0.0f);
    store_vec(p + j, e);
    vsum += e;
  }
  const float sum = sum_lanes(vsum);
  weighted_sum(out, p, values, first, count, P);
  for (int d = 0; d < P; ++d) out[d] /= sum;
  if (lse) *lse = max_score + std::log(sum);
}

// The backward treats a row (a query in the query pass, a key in the key pass) against its run of columns [first,
// first + count) (the other side). a · A_j is the row's scaled score with column j (one of a, A holds q / sqrt(P)).

// p_j = exp(a · A_j - lse_j) into scratch.p (zero past count).
void probabilities(const float* a, const Transposed& A, int first, int count, Statistic lse, int width,
                   Scratch& scratch) {
  float* p = scratch.p.data();
  project(p, a, A, first, count, width);
  for (int j = 0; j < count; j += kVecWidth)  // the score minus lse is <= 0 but for rounding: no overflow
    store_vec(p + j, keep_first(fast_exp_nonpositive(load_vec(p + j) - lse.at(j)), count - j, 0.0f));
}

// scratch.ds = dout_t · v_s for every pair (b · B_j: one of b, B is dout, the other v).
void value_products(const float* b, const Transposed& B, int first, int count, int width, Scratch& scratch) {
  project(scratch.ds.data(), b, B, first, count, width);
}

// scratch.ds = d loss / d score = p_j (dout_t · v_s - D_j), from value_products' dout_t · v_s, where D_j =
// sum_s p_ts dout_t · v_s for the query t of the pair.
void score_gradients(int count, Statistic D, Scratch& scratch) {
  float* ds = scratch.ds.data();
  for (int j = 0; j < count; j += kVecWidth)
    store_vec(ds + j, load_vec(scratch.p.data() + j) * (load_vec(ds + j) - D.at(j)));
}

// y (n) += scale * x.
void add_scaled(float* y, float scale, const float* x, int n) {
  for (int i = 0; i < n; ++i) y[i] += scale * x[i];
}

float softmax_scale(int head_dim) { return 1.0f / std::sqrt(float(head_dim)); }

// The forward's and the query pass's tasks: the keys and values [first, end) that their queries see, for head h,
// into scratch.a and scratch.b.
void load_keys(Scratch& scratch, const float* k, const float* v, int first, int end, int h, int P, int stride) {
  scratch.a.load(k, stride, h * P, P, first, end - first);
  scratch.b.load(v, stride, h * P, P, first, end - first);
}

// scratch.x = one head of a query row / sqrt(P).
const float* scaled_query(Scratch& scratch, const float* q, float scale, int P) {
  for (int d = 0; d < P; ++d) scratch.x[d] = scale * q[d];
  return scratch.x.data();
}

// The query pass: each task owns a block of queries and reads the keys and values they see. It computes D (T, H) =
// sum_s p_ts dout_t · v_s for the key pass (mathematically dout_t · out_t; summed from the very terms it balances,
// a query whose only key is itself gets ds = 0 exactly, as it should), and dq when dq is not null.
std::vector<float> query_gradients(const WindowAttentionShape& shape, int window, float* dq, const float* dout,
                                   const float* lse, const float* q, const float* k, const float* v) {
  const int T = shape.queries, H = shape.heads, P = shape.head_dim, stride = H * P;
  const float scale = softmax_scale(P);
  std::vector<float> D(std::size_t(T) * H);
  for_each_block(T, H, std::size_t(T) * window * stride, [&](int t0, int t1, int h, Scratch& scratch) {
    load_keys(scratch, k, v, std::max(0, t0 - window + 1), t1, h, P, stride);
    scratch.reserve(window, P);
    for (int t = t0; t < t1; ++t) {
      const std::size_t at = std::size_t(t) * stride + h * P, stat = std::size_t(t) * H + h;
      const int lo = std::max(0, t - window + 1), count = t - lo + 1;
      probabilities(scaled_query(scratch, q + at, scale, P), scratch.a, lo, count, {.value = lse[stat]}, P, scratch);
      value_products(dout + at, scratch.b, lo, count, P, scratch);
      Vec8 sum{};
      for (int j = 0; j < count; j += kVecWidth)
        sum += keep_first(load_vec(scratch.p.data() + j) * load_vec(scratch.ds.data() + j), count - j, 0.0f);
      D[stat] = sum_lanes(sum);
      if (!dq) continue;
      score_gradients(count, {.value = D[stat]}, scratch);
      weighted_sum(scratch.y.data(), scratch.ds.data(), scratch.a, lo, count, P);
      add_scaled(dq + at, scale, scratch.y.data(), P);
    }
  });
  return D;
}

// The key pass: each task owns a block of keys and reads the queries that see them (with their lse and D), so
// every key row is summed by one task, in increasing query order. dk_s = scale sum_t ds_ts q_t, dv_s = sum_t p_ts
// dout_t.
void key_gradients(const WindowAttentionShape& shape, int window, float* dk, float* dv, const float* dout,
                   const float* lse, const std::vector<float>& D, const float* q, const float* k, const float* v) {
  const int T = shape.keys, H = shape.heads, P = shape.head_dim, stride = H * P;
  const float scale = softmax_scale(P);
  for_each_block(T, H, std::size_t(T) * window * stride, [&](int s0, int s1, int h, Scratch& scratch) {
    const int last = std::min(T - 1, s1 - 1 + window - 1), count = last - s0 + 1;
    scratch.a.load(q, stride, h * P, P, s0, count, scale);
    scratch.b.load(dout, stride, h * P, P, s0, count);
    scratch.lse.assign(count + kVecWidth - 1, 0.0f);  // padded like the Transposed rows: runs are read in vectors
    scratch.D.assign(scratch.lse.size(), 0.0f);
    for (int j = 0; j < count; ++j) {
      scratch.lse[j] = lse[std::size_t(s0 + j) * H + h];
      if (dk) scratch.D[j] = D[std::size_t(s0 + j) * H + h];  // D is only computed when dk (or dq) is wanted
    }
    scratch.reserve(window, P);
    for (int s = s0; s < s1; ++s) {
      const std::size_t at = std::size_t(s) * stride + h * P;
      const int run = std::min(T - 1, s + window - 1) - s + 1;
      probabilities(k + at, scratch.a, s, run, {.per_column = scratch.lse.data() + (s - s0)}, P, scratch);
      if (dv) {
        weighted_sum(scratch.z.data(), scratch.p.data(), scratch.b, s, run, P);
        add_scaled(dv + at, 1.0f, scratch.z.data(), P);
      }
      if (dk) {
        value_products(v + at, scratch.b, s, run, P, scratch);
        score_gradients(run, {.per_column = scratch.D.data() + (s - s0)}, scratch);
        weighted_sum(scratch.y.data(), scratch.ds.data(), scratch.a, s, run, P);
        add_scaled(dk + at, 1.0f, scratch.y.data(), P);
      }
    }
  });
}

}  // namespace

void check_window_attention(const WindowAttentionShape& shape, bool backward) {
  check(shape.heads > 0 && shape.head_dim > 0 && shape.window > 0 && shape.queries >= 0 && shape.query_offset >= 0,
        "window attention: bad shape (heads ", shape.heads, ", head_dim ", shape.head_dim, ", window ", shape.window,
        ", queries ", shape.queries, ", query_offset ", shape.query_offset, ")");
  check(std::size_t(shape.query_offset) + shape.queries <= std::size_t(std::max(shape.keys, 0)),
        "window attention: queries ", shape.query_offset, " .. ", shape.query_offset + shape.queries - 1,
        " need their own keys, but there are only ", shape.keys);
  check(!backward || (shape.query_offset == 0 && shape.queries == shape.keys),
        "window attention backward: only for the parallel case (query_offset 0, queries == keys), got query_offset ",
        shape.query_offset, ", ", shape.queries, " queries, ", shape.keys, " keys");
}

void window_attention_forward(const WindowAttentionShape& shape, float* out, float* lse, const float* q, const float* k,
                              const float* v) {
  check_window_attention(shape, false);
  const int H = shape.heads, P = shape.head_dim, stride = H * P, offset = shape.query_offset;
  const int window = std::min(shape.window, shape.keys);  // no query has more keys than that
  const float scale = softmax_scale(P);
  const std::size_t work = std::size_t(shape.queries) * window * stride;
  for_each_block(shape.queries, H, work, [&](int i0, int i1, int h, Scratch& scratch) {
    load_keys(scratch, k, v, std::max(0, offset + i0 - window + 1), offset + i1, h, P, stride);
    scratch.reserve(window, P);
    for (int i = i0; i < i1; ++i) {
      const std::size_t at = std::size_t(i) * stride + h * P;
      const int position = offset + i, lo = std::max(0, position - window + 1);
      attend(out + at, lse ? lse + std::size_t(i) * H + h : nullptr, scaled_query(scratch, q + at, scale, P),
             scratch.a, scratch.b, lo, position - lo + 1, P, scratch);
    }
  });
}

void window_attention_backward(const WindowAttentionShape& shape, float* dq, float* dk, float* dv, const float* dout,
                               const float* /*out: D comes from the recomputed probabilities*/, const float* lse,
                               const float* q, const float* k, const float* v) {
  check_window_attention(shape, true);
  const int window = std::min(shape.window, shape.keys);
  const std::vector<float> D = dq || dk ? query_gradients(shape, window, dq, dout, lse, q, k, v) : std::vector<float>{};
  if (dk || dv) key_gradients(shape, window, dk, dv, dout, lse, D, q, k, v);
}

}  // namespace hax::ops
