// Op cases (see op_harness.h) for the Samba model's attention and MLP ops: rotary embedding, sliding-window
// attention and SwiGLU, with their own parameterized suite running every harness check on every case; then the
// properties the harness cannot state: a chunk after a key cache gives the parallel forward's rows bit for bit,
// a window covering the sequence is full causal attention, and the thread count does not change a bit.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/ops/rotary.h"
#include "hax/ops/rotary_ref.h"
#include "hax/ops/swiglu.h"
#include "hax/ops/swiglu_ref.h"
#include "hax/ops/window_attention.h"
#include "hax/ops/window_attention_ref.h"
#include "op_harness.h"

namespace hax::ops::testing {
namespace {

std::size_t size(int a, int b = 1, int c = 1) { return std::size_t(a) * b * c; }

constexpr float kTheta = 10000.0f;  // Samba's rotary base

// In place (out == in) or not.
class RotaryCase : public OpCaseOf<RotaryCase> {
 public:
  RotaryCase(std::uint64_t seed, int T, int H, int P, int position0, bool in_place)
      : OpCaseOf(cat("rotary_T", T, "_H", H, "_P", P, "_pos", position0, in_place ? "_inplace" : "", "_seed", seed),
                 seed),
        T_(T),
        H_(H),
        P_(P),
        position0_(position0),
        in_place_(in_place) {
    add_input({.name = "x", .size = size(T, H, P), .lo = -2.0f, .hi = 2.0f});
    set_out_size(size(T, H, P));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    const Real* in = b.input(0);
    if (in_place_) {
      std::copy(b.in[0].begin(), b.in[0].end(), b.out.begin());
      in = b.out.data();
    }
    kernel<Real>(rotary_forward, ref::rotary_forward<Real>)(b.out.data(), in, T_, H_, P_, position0_, kTheta);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(rotary_backward, ref::rotary_backward<Real>)(b.gradient(0), b.dout.data(), T_, H_, P_, position0_,
                                                              kTheta);
  }

 private:
  int T_, H_, P_, position0_;
  bool in_place_;
};

WindowAttentionShape attention_shape(int Tq, int Tk, int H, int P, int window) {
  return {.queries = Tq, .keys = Tk, .query_offset = Tk - Tq, .heads = H, .head_dim = P, .window = window};
}

std::string attention_name(const char* op, const WindowAttentionShape& s) {
  return cat(op, "_Tq", s.queries, "_Tk", s.keys, "_H", s.heads, "_P", s.head_dim, "_W", s.window);
}

// The parallel case (Tq == Tk), forward and backward; lse is the saved tensor.
class WindowAttentionCase : public OpCaseOf<WindowAttentionCase> {
 public:
  WindowAttentionCase(std::uint64_t seed, int T, int H, int P, int window)
      : OpCaseOf(cat(attention_name("window_attention", attention_shape(T, T, H, P, window)), "_seed", seed), seed),
        s_(attention_shape(T, T, H, P, window)) {
    // Scores up to ~P / sqrt(P): peaked softmaxes as well as flat ones.
    add_input({.name = "q", .size = size(T, H, P), .lo = -2.0f, .hi = 2.0f, .grad_optional = true});
    add_input({.name = "k", .size = size(T, H, P), .lo = -2.0f, .hi = 2.0f, .grad_optional = true});
    add_input({.name = "v", .size = size(T, H, P), .grad_optional = true});
    set_out_size(size(T, H, P));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    b.saved.resize(size(s_.queries, s_.heads));
    kernel<Real>(window_attention_forward, ref::window_attention_forward<Real>)(s_, b.out.data(), b.saved.data(),
                                                                                b.input(0), b.input(1), b.input(2));
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(window_attention_backward, ref::window_attention_backward<Real>)(
        s_, b.gradient(0), b.gradient(1), b.gradient(2), b.dout.data(), b.out.data(), b.saved.data(), b.input(0),
        b.input(1), b.input(2));
  }
  double tolerance() const override { return 5e-5; }

 private:
  WindowAttentionShape s_;
};

// A chunk of Tq queries after a cache of Tk - Tq keys (forward only: the backward is for the parallel case). Output:
// out (Tq, H*P), then lse (Tq, H).
class WindowAttentionChunkCase : public OpCaseOf<WindowAttentionChunkCase> {
 public:
  WindowAttentionChunkCase(std::uint64_t seed, int Tq, int Tk, int H, int P, int window)
      : OpCaseOf(cat(attention_name("window_attention_chunk", attention_shape(Tq, Tk, H, P, window)), "_seed", seed),
                 seed),
        s_(attention_shape(Tq, Tk, H, P, window)) {
    add_input({.name = "q", .size = size(Tq, H, P), .lo = -2.0f, .hi = 2.0f, .differentiable = false});
    add_input({.name = "k", .size = size(Tk, H, P), .lo = -2.0f, .hi = 2.0f, .differentiable = false});
    add_input({.name = "v", .size = size(Tk, H, P), .differentiable = false});
    set_out_size(size(Tq, H, P) + size(Tq, H));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    Real* out = b.out.data();
    kernel<Real>(window_attention_forward, ref::window_attention_forward<Real>)(
        s_, out, out + size(s_.queries, s_.heads, s_.head_dim), b.input(0), b.input(1), b.input(2));
  }
  template <class Real>
  void run_backward(Buffers<Real>&) const {}

 private:
  WindowAttentionShape s_;
};

class SwigluCase : public OpCaseOf<SwigluCase> {
 public:
  SwigluCase(std::uint64_t seed, int n) : OpCaseOf(cat("swiglu_n", n, "_seed", seed), seed), n_(n) {
    add_input({.name = "gate", .size = size(n), .lo = -12.0f, .hi = 12.0f, .grad_optional = true});
    add_input({.name = "up", .size = size(n), .lo = -2.0f, .hi = 2.0f, .grad_optional = true});
    set_out_size(size(n));
  }
  template <class Real>
  void run_forward(Buffers<Real>& b) const {
    kernel<Real>(swiglu_forward, ref::swiglu_forward<Real>)(b.out.data(), b.input(0), b.input(1), n_);
  }
  template <class Real>
  void run_backward(Buffers<Real>& b) const {
    kernel<Real>(swiglu_backward, ref::swiglu_backward<Real>)(b.gradient(0), b.gradient(1), b.dout.data(),
                                                              b.input(0), b.input(1), n_);
  }

 private:
  std::size_t n_;
};

// Random odd shapes per seed (sizes drawn into named locals, one per statement: argument order is unspecified).
void add_random_cases(std::vector<OpCasePtr>& cases, std::uint64_t seed) {
  Rng rng = Rng(seed).fork(99);
  constexpr int kRows[] = {1, 3, 7, 17, 33, 70};
  constexpr int kHeads[] = {1, 2, 3, 4};
  constexpr int kHeadDims[] = {1, 3, 8, 13};
  constexpr int kEvenHeadDims[] = {2, 6, 8, 18};
  constexpr int kWindows[] = {1, 2, 5, 17, 64, 1000};  // 1: each query sees itself only; 1000 > every T here
  constexpr int kPositions[] = {0, 5, 63, 1000, 123457};
  auto pick = [&](const auto& values) { return values[rng.below(std::size(values))]; };
  const int T = pick(kRows), Tq = pick(kRows), H = pick(kHeads), P = pick(kHeadDims), window = pick(kWindows);
  const int even_P = pick(kEvenHeadDims), position0 = pick(kPositions), n = pick(kRows) * pick(kRows);
  const int cache = pick(kRows);
  cases.push_back(std::make_shared<RotaryCase>(seed, T, H, even_P, position0, seed % 2 == 0));
  cases.push_back(std::make_shared<WindowAttentionCase>(seed, T, H, P, window));
  cases.push_back(std::make_shared<WindowAttentionChunkCase>(seed, Tq, Tq + cache, H, P, window));
  cases.push_back(std::make_shared<SwigluCase>(seed, n));
}

// Samba's shapes (reference.md §5.3: H = 4, P = 8, window 64; MLP width 256) and the edge cases.
void add_model_cases(std::vector<OpCasePtr>& cases) {
  constexpr std::uint64_t seed = 100;
  cases.push_back(std::make_shared<RotaryCase>(seed, 9, 4, 8, 0, false));
  cases.push_back(std::make_shared<RotaryCase>(seed, 3, 4, 8, 1054, true));      // the last rows of a sequence
  cases.push_back(std::make_shared<RotaryCase>(seed, 1, 1, 2, 0, false));        // position 0: the identity
  cases.push_back(std::make_shared<WindowAttentionCase>(seed, 70, 4, 8, 64));    // past the first window
  cases.push_back(std::make_shared<WindowAttentionCase>(seed, 64, 4, 8, 64));    // exactly one window
  cases.push_back(std::make_shared<WindowAttentionCase>(seed, 1, 4, 8, 64));     // one position
  cases.push_back(std::make_shared<WindowAttentionCase>(seed, 29, 2, 8, 1));     // out = v
  cases.push_back(std::make_shared<WindowAttentionCase>(seed, 29, 2, 8, 29));    // window = T: full causal
  cases.push_back(std::make_shared<WindowAttentionChunkCase>(seed, 1, 100, 4, 8, 64));  // decoding one token
  cases.push_back(std::make_shared<WindowAttentionChunkCase>(seed, 9, 9, 4, 8, 64));    // a first chunk: no cache
  cases.push_back(std::make_shared<SwigluCase>(seed, 5 * 256));
}

// Above kMinParallelElements (ops/parallel.h), so that the multi-threaded paths run too.
void add_threaded_cases(std::vector<OpCasePtr>& cases) {
  constexpr std::uint64_t seed = 200;
  cases.push_back(std::make_shared<RotaryCase>(seed, 1100, 4, 8, 37, false));  // many 64-position anchor blocks
  cases.push_back(std::make_shared<RotaryCase>(seed, 1100, 4, 8, 0, true));
  cases.push_back(std::make_shared<WindowAttentionCase>(seed, 301, 4, 8, 64));
  cases.push_back(std::make_shared<WindowAttentionCase>(seed, 203, 2, 16, 1000));  // window > T
  cases.push_back(std::make_shared<WindowAttentionCase>(seed, 257, 3, 33, 100));   // window > one block of rows
  cases.push_back(std::make_shared<WindowAttentionChunkCase>(seed, 130, 400, 4, 8, 64));
  cases.push_back(std::make_shared<SwigluCase>(seed, (1 << 15) + 17));
}

std::vector<OpCasePtr> samba_op_cases() {
  std::vector<OpCasePtr> cases;
  for (std::uint64_t seed = 1; seed <= 8; ++seed) add_random_cases(cases, seed);
  add_model_cases(cases);
  add_threaded_cases(cases);
  return cases;
}

class SambaOpTest : public ::testing::TestWithParam<OpCasePtr> {};

TEST_P(SambaOpTest, PassesAllChecks) {
  check_all(*GetParam());
}

INSTANTIATE_TEST_SUITE_P(SambaOps, SambaOpTest, ::testing::ValuesIn(samba_op_cases()),
                         [](const ::testing::TestParamInfo<OpCasePtr>& info) { return info.param->name(); });

// ---- Properties beyond the harness -------------------------------------------------------------------------------

std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::vector<float> v(n);
  Rng(seed).fill_uniform(v, lo, hi);
  return v;
}

struct Qkv {
  std::vector<float> q, k, v;
  Qkv(int T, int H, int P, std::uint64_t seed)
      : q(random_floats(size(T, H, P), seed)),
        k(random_floats(size(T, H, P), seed + 1)),
        v(random_floats(size(T, H, P), seed + 2, -1.0f, 1.0f)) {}
};

struct Forward {
  std::vector<float> out, lse;
};

// The fast forward of the queries [Tk - Tq, Tk) against keys [0, Tk) of x.
Forward forward_chunk(const Qkv& x, int Tq, int Tk, int H, int P, int window) {
  const WindowAttentionShape shape = attention_shape(Tq, Tk, H, P, window);
  Forward f{std::vector<float>(size(Tq, H, P)), std::vector<float>(size(Tq, H))};
  window_attention_forward(shape, f.out.data(), f.lse.data(), x.q.data() + size(Tk - Tq, H, P), x.k.data(),
                           x.v.data());
  return f;
}

// Chunks after a key cache of every size (including a first chunk and one decoded token) give exactly the rows of
// the parallel forward: the layer's streaming inference relies on it.
TEST(WindowAttention, ChunkAfterKeyCacheEqualsParallelRows) {
  constexpr int T = 150, H = 3, P = 8;
  const Qkv x(T, H, P, 7);
  for (int window : {1, 7, 64, 1000}) {
    const Forward whole = forward_chunk(x, T, T, H, P, window);
    for (int Tk : {T, 97, 5})
      for (int Tq : {1, 5, 33, Tk}) {
        if (Tq > Tk) continue;
        SCOPED_TRACE(cat("window ", window, ", keys ", Tk, ", queries ", Tq));
        const Forward chunk = forward_chunk(x, Tq, Tk, H, P, window);
        const auto first = Tk - Tq;
        EXPECT_EQ(chunk.out, std::vector<float>(whole.out.begin() + size(first, H, P),
                                                whole.out.begin() + size(Tk, H, P)));
        EXPECT_EQ(chunk.lse, std::vector<float>(whole.lse.begin() + size(first, H), whole.lse.begin() + size(Tk, H)));
      }
  }
}

// Dense causal softmax attention, computed the plain way over the whole T x T score matrix, in double.
std::vector<double> dense_causal_attention(const Qkv& x, int T, int H, int P) {
  std::vector<double> out(size(T, H, P), 0.0);
  std::vector<double> scores(size(T, T));
  const std::size_t row = size(H, P);
  for (int h = 0; h < H; ++h) {
    for (int t = 0; t < T; ++t)
      for (int s = 0; s < T; ++s) {
        double dot = 0.0;
        for (int d = 0; d < P; ++d) dot += double(x.q[t * row + h * P + d]) * x.k[s * row + h * P + d];
        scores[size(t, T) + s] = s <= t ? dot / std::sqrt(double(P)) : -INFINITY;  // the causal mask
      }
    for (int t = 0; t < T; ++t) {
      const double* r = scores.data() + size(t, T);
      const double max_score = *std::max_element(r, r + T);
      double sum = 0.0;
      for (int s = 0; s < T; ++s) sum += std::exp(r[s] - max_score);
      for (int s = 0; s < T; ++s)
        for (int d = 0; d < P; ++d)
          out[t * row + h * P + d] += std::exp(r[s] - max_score) / sum * x.v[s * row + h * P + d];
    }
  }
  return out;
}

TEST(WindowAttention, WindowCoveringTheSequenceIsFullCausalAttention) {
  constexpr int T = 45, H = 2, P = 5;
  const Qkv x(T, H, P, 11);
  const std::vector<double> dense = dense_causal_attention(x, T, H, P);
  for (int window : {T, T + 1, 1 << 30}) {
    SCOPED_TRACE(cat("window ", window));
    const Forward f = forward_chunk(x, T, T, H, P, window);
    for (std::size_t i = 0; i < dense.size(); ++i) ASSERT_NEAR(f.out[i], dense[i], 1e-6) << "element " << i;
  }
}

// Output and gradients of a threaded size, with one thread and with three: the same bits.
TEST(WindowAttention, ThreadCountDoesNotChangeAnyBit) {
  constexpr int T = 333, H = 4, P = 8, window = 64;
  const Qkv x(T, H, P, 13);
  const std::vector<float> dout = random_floats(size(T, H, P), 17, -1.0f, 1.0f);
  const WindowAttentionShape shape = attention_shape(T, T, H, P, window);
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    Forward f{std::vector<float>(size(T, H, P)), std::vector<float>(size(T, H))};
    window_attention_forward(shape, f.out.data(), f.lse.data(), x.q.data(), x.k.data(), x.v.data());
    std::vector<float> grads(3 * size(T, H, P), 0.0f);
    float* dq = grads.data();
    window_attention_backward(shape, dq, dq + size(T, H, P), dq + 2 * size(T, H, P), dout.data(), f.out.data(),
                              f.lse.data(), x.q.data(), x.k.data(), x.v.data());
    omp_set_num_threads(saved);
    f.out.insert(f.out.end(), grads.begin(), grads.end());
    return f.out;
  };
  EXPECT_EQ(run(1), run(3));
}

// A row of the rotary embedding gets the same bits in a whole sequence as in a chunk or a single decoded row.
TEST(Rotary, ChunksGiveTheRowsOfTheWholeSequence) {
  constexpr int T = 300, H = 3, P = 8, start = 40;
  const std::vector<float> x = random_floats(size(T, H, P), 19);
  std::vector<float> whole(x.size());
  rotary_forward(whole.data(), x.data(), T, H, P, start, kTheta);
  for (int first : {0, 1, 63, 64, 65, 250, T - 1})
    for (int rows : {1, 7, 64, 130}) {
      if (first + rows > T) continue;
      std::vector<float> chunk(size(rows, H, P));
      rotary_forward(chunk.data(), x.data() + size(first, H, P), rows, H, P, start + first, kTheta);
      EXPECT_EQ(chunk, std::vector<float>(whole.begin() + size(first, H, P), whole.begin() + size(first + rows, H, P)))
          << "rows " << first << " .. " << first + rows - 1;
    }
}

TEST(SambaOps, BadShapesAreErrors) {
  std::vector<float> buf(64, 0.0f);
  EXPECT_THROW(rotary_forward(buf.data(), buf.data(), 2, 1, 3, 0, kTheta), Error);  // odd head_dim
  const WindowAttentionShape chunk = attention_shape(2, 5, 1, 4, 3);
  EXPECT_THROW(window_attention_backward(chunk, buf.data(), nullptr, nullptr, buf.data(), buf.data(), buf.data(),
                                         buf.data(), buf.data(), buf.data()),
               Error);  // backward of a chunk
  WindowAttentionShape too_many_queries = attention_shape(4, 4, 1, 4, 3);
  too_many_queries.query_offset = 1;
  EXPECT_THROW(window_attention_forward(too_many_queries, buf.data(), nullptr, buf.data(), buf.data(), buf.data()),
               Error);
  WindowAttentionShape no_window = attention_shape(2, 2, 1, 4, 0);
  EXPECT_THROW(window_attention_forward(no_window, buf.data(), nullptr, buf.data(), buf.data(), buf.data()), Error);
}

}  // namespace
}  // namespace hax::ops::testing
