// Op behaviour that the generic harness (op_cases.cpp) does not pin down: errors, PyTorch semantics at edges,
// streaming through the conv state, ties, empty masks, determinism.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../support/expect_error.h"
#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/ops/accuracy.h"
#include "hax/ops/activations.h"
#include "hax/ops/activations_ref.h"
#include "hax/ops/conv1d.h"
#include "hax/ops/cross_entropy.h"
#include "hax/ops/embedding.h"
#include "hax/ops/embedding_ref.h"
#include "hax/ops/rmsnorm.h"

namespace hax::ops {
namespace {


std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  Rng(seed).fill_uniform(v, lo, hi);
  return v;
}

using testing::expect_error_naming;

TEST(Embedding, OutOfRangeIdNamesTheIdAndItsPosition) {
  const std::vector<float> table(10 * 4, 1.0f);
  std::vector<float> out(3 * 4), dtable(10 * 4);
  const std::vector<std::int32_t> too_large{0, 9, 10}, negative{-1, 0, 1};
  expect_error_naming([&] { embedding_forward(out.data(), too_large.data(), table.data(), 3, 10, 4); },
                      {"10", "position 2"});
  expect_error_naming([&] { embedding_forward(out.data(), negative.data(), table.data(), 3, 10, 4); },
                      {"-1", "position 0"});
  expect_error_naming([&] { embedding_backward(dtable.data(), out.data(), too_large.data(), 3, 10, 4); },
                      {"10", "position 2"});
}

TEST(Embedding, BackwardWithManyRepeatsAddsInRowOrderLikeTheReference) {
  // Thousands of rows onto 7 table rows: each table row must get its updates in the order of m, so the parallel
  // result is bit for bit the plain loop's.
  constexpr int M = 5000, V = 7, D = 33;
  std::vector<std::int32_t> ids(M);
  Rng rng(3);
  for (auto& id : ids) id = static_cast<std::int32_t>(rng.below(V));
  const std::vector<float> dout = random_floats(std::size_t(M) * D, 4);
  std::vector<float> fast(V * D, 0.5f), plain(V * D, 0.5f);
  embedding_backward(fast.data(), dout.data(), ids.data(), M, V, D);
  ref::embedding_backward(plain.data(), dout.data(), ids.data(), M, V, D);
  EXPECT_EQ(fast, plain);
}

TEST(CrossEntropy, KnownValuesAndTheMeanOverMaskedRowsOnly) {
  // Row 0: uniform over 4 classes, loss log 4. Row 1: unmasked (its label may be anything, even invalid).
  // Row 2: logits (0, log 3, 0, 0), label 1: p = 3/6, loss log 2.
  const float log3 = std::log(3.0f);
  const std::vector<float> logits{0, 0, 0, 0, 5, 5, 5, 5, 0, log3, 0, 0};
  const std::vector<std::int32_t> labels{2, -7, 1};
  const std::vector<std::uint8_t> mask{1, 0, 1};
  const double loss = cross_entropy_forward(logits.data(), labels.data(), mask.data(), 3, 4);
  EXPECT_NEAR(loss, (std::log(4.0) + std::log(2.0)) / 2, 1e-6);

  std::vector<float> dlogits(12, 0.0f);
  cross_entropy_backward(dlogits.data(), 2.0f, logits.data(), labels.data(), mask.data(), 3, 4);
  // dloss * (p - onehot) / count with dloss = 2, count = 2.
  EXPECT_NEAR(dlogits[2], 0.25f - 1.0f, 1e-6);
  EXPECT_NEAR(dlogits[0], 0.25f, 1e-6);
  for (int j = 4; j < 8; ++j) EXPECT_EQ(dlogits[j], 0.0f) << "unmasked row got a gradient";
  EXPECT_NEAR(dlogits[9], 0.5f - 1.0f, 1e-6);
  EXPECT_NEAR(dlogits[8], 1.0f / 6, 1e-6);
}

TEST(CrossEntropy, HugeLogitsStayFinite) {
  const std::vector<float> logits{1000.0f, 0.0f, -1000.0f, 3e38f, -3e38f, 0.0f};
  const std::vector<std::int32_t> labels{1, 2};
  const std::vector<std::uint8_t> mask{1, 1};
  const double loss = cross_entropy_forward(logits.data(), labels.data(), mask.data(), 2, 3);
  EXPECT_NEAR(loss, (1000.0 + 3e38) / 2, 1e-6 * 3e38);
  std::vector<float> dlogits(6, 0.0f);
  cross_entropy_backward(dlogits.data(), 1.0f, logits.data(), labels.data(), mask.data(), 2, 3);
  for (float g : dlogits) EXPECT_TRUE(std::isfinite(g));
  EXPECT_NEAR(dlogits[0], 0.5f, 1e-6);
  EXPECT_NEAR(dlogits[1], -0.5f, 1e-6);
}

TEST(CrossEntropy, NoMaskedRowMeansZeroLossAndNoGradient) {
  const std::vector<float> logits = random_floats(5 * 3, 1);
  const std::vector<std::int32_t> labels{0, 1, 2, 99, -1};  // never read
  const std::vector<std::uint8_t> mask(5, 0);
  EXPECT_EQ(cross_entropy_forward(logits.data(), labels.data(), mask.data(), 5, 3), 0.0);
  std::vector<float> dlogits(15, 0.25f);
  cross_entropy_backward(dlogits.data(), 1.0f, logits.data(), labels.data(), mask.data(), 5, 3);
  for (float g : dlogits) EXPECT_EQ(g, 0.25f);
}

TEST(CrossEntropy, MaskedLabelOutOfRangeNamesLabelAndPosition) {
  const std::vector<float> logits(2 * 3, 0.0f);
  const std::vector<std::int32_t> labels{0, 3};
  const std::vector<std::uint8_t> mask{1, 1};
  expect_error_naming([&] { cross_entropy_forward(logits.data(), labels.data(), mask.data(), 2, 3); },
                      {"label 3", "position 1"});
}

TEST(Accuracy, FirstIndexWinsTiesAndUnscoredSequencesAreLeftOut) {
  // B=3, T=2, V=3. Sequence 0: both rows tie between classes 0 and 2 (argmax 0); labels 0 and 2 -> 1/2.
  // Sequence 1: nothing masked -> NaN, not in the mean. Sequence 2: one masked row, argmax 1 = label -> 1.
  const std::vector<float> logits{4, 1, 4, 4, 1, 4, 0, 0, 0, 0, 0, 0, 1, 2, 1, 9, 0, 0};
  const std::vector<std::int32_t> labels{0, 2, 0, 0, 1, 2};
  const std::vector<std::uint8_t> mask{1, 1, 0, 0, 1, 0};
  std::vector<double> per_sequence(3);
  const double mean = sequence_accuracy(per_sequence.data(), logits.data(), labels.data(), mask.data(), 3, 2, 3);
  EXPECT_EQ(per_sequence[0], 0.5);
  EXPECT_TRUE(std::isnan(per_sequence[1]));
  EXPECT_EQ(per_sequence[2], 1.0);
  EXPECT_EQ(mean, 0.75);
  EXPECT_EQ(sequence_accuracy(nullptr, logits.data(), labels.data(), mask.data(), 3, 2, 3), 0.75);
}

TEST(Accuracy, NoScoredSequenceGivesZero) {
  const std::vector<float> logits(2 * 3, 0.0f);
  const std::vector<std::int32_t> labels{0, 0};
  const std::vector<std::uint8_t> mask{0, 0};
  EXPECT_EQ(sequence_accuracy(nullptr, logits.data(), labels.data(), mask.data(), 2, 1, 3), 0.0);
}

// Fast SiLU and softplus against the double formulas on a dense grid, including softplus's threshold (PyTorch:
// x > 20 passes x through, x = 20 still goes through log1p(exp(x))) and the far negative tail.
TEST(Activations, MatchTheDoubleFormulasOverTheWholeRange) {
  std::vector<float> x;
  for (float v = -87.0f; v <= 87.0f; v += 0.01953125f) x.push_back(v);
  for (float v : {19.999998f, 20.0f, 20.000002f, 0.0f, -0.0f, 1e-30f, -1e-30f}) x.push_back(v);
  const std::size_t n = x.size();
  std::vector<float> silu(n), softplus(n), dsilu(n, 0.0f), dsoftplus(n, 0.0f);
  const std::vector<float> ones(n, 1.0f);
  silu_forward(silu.data(), x.data(), n);
  softplus_forward(softplus.data(), x.data(), n);
  silu_backward(dsilu.data(), ones.data(), x.data(), n);
  softplus_backward(dsoftplus.data(), ones.data(), x.data(), n);
  for (std::size_t i = 0; i < n; ++i) {
    const double v = x[i], s = ref::sigmoid(v);
    const double expect_softplus = v > 20.0 ? v : std::log1p(std::exp(v));
    const double expect_dsilu = s * (1 + v * (1 - s));
    // Relative 1e-6, plus an absolute floor for SiLU's far negative tail where the value underflows to ~0.
    EXPECT_NEAR(silu[i], v * s, 1e-6 * std::abs(v * s) + 1e-30) << "silu(" << v << ")";
    EXPECT_NEAR(softplus[i], expect_softplus, 1e-6 * expect_softplus) << "softplus(" << v << ")";
    // silu' crosses zero near -1.28 by cancellation in 1 + v (1 - s): judge it on the size of its terms, s.
    EXPECT_NEAR(dsilu[i], expect_dsilu, 1e-6 * (std::abs(expect_dsilu) + s) + 1e-30) << "silu'(" << v << ")";
    EXPECT_NEAR(dsoftplus[i], v > 20.0 ? 1.0 : s, 1e-6 * s) << "softplus'(" << v << ")";
  }
  const float above[] = {25.0f, 1e30f};
  float out[2];
  softplus_forward(out, above, 2);
  EXPECT_EQ(out[0], 25.0f);
  EXPECT_EQ(out[1], 1e30f);
}

TEST(Conv1d, ChunksWithCarriedStateEqualTheWholeSequence) {
  // T = 11 split as 5 + 6 with K = 4: the second chunk's x_prev is the last K-1 inputs of the first. Forward
  // outputs must match the unsplit run, and the gradients must too once dx_prev is added back to those inputs.
  constexpr int B = 2, T = 11, T1 = 5, T2 = T - T1, C = 9, K = 4;
  const std::vector<float> x = random_floats(std::size_t(B) * T * C, 1), w = random_floats(C * K, 2),
                           b = random_floats(C, 3), dy = random_floats(std::size_t(B) * T * C, 4);
  auto rows = [&](const std::vector<float>& v, int first, int count) {  // time rows [first, first+count) of each seq
    std::vector<float> out;
    for (int s = 0; s < B; ++s)
      out.insert(out.end(), v.begin() + (std::size_t(s) * T + first) * C,
                 v.begin() + (std::size_t(s) * T + first + count) * C);
    return out;
  };
  std::vector<float> y(x.size()), dx(x.size(), 0.0f), dw(C * K, 0.0f), db(C, 0.0f);
  conv1d_causal_forward(y.data(), x.data(), w.data(), b.data(), nullptr, B, T, C, K);
  conv1d_causal_backward(dx.data(), dw.data(), db.data(), nullptr, dy.data(), x.data(), w.data(), nullptr, B, T, C, K);

  const std::vector<float> x1 = rows(x, 0, T1), x2 = rows(x, T1, T2), state = rows(x, T1 - (K - 1), K - 1);
  const std::vector<float> dy1 = rows(dy, 0, T1), dy2 = rows(dy, T1, T2);
  std::vector<float> y1(x1.size()), y2(x2.size()), dx1(x1.size(), 0.0f), dx2(x2.size(), 0.0f);
  std::vector<float> dstate(state.size(), 0.0f), dw_chunks(C * K, 0.0f), db_chunks(C, 0.0f);
  conv1d_causal_forward(y1.data(), x1.data(), w.data(), b.data(), nullptr, B, T1, C, K);
  conv1d_causal_forward(y2.data(), x2.data(), w.data(), b.data(), state.data(), B, T2, C, K);
  conv1d_causal_backward(dx1.data(), dw_chunks.data(), db_chunks.data(), nullptr, dy1.data(), x1.data(), w.data(),
                         nullptr, B, T1, C, K);
  conv1d_causal_backward(dx2.data(), dw_chunks.data(), db_chunks.data(), dstate.data(), dy2.data(), x2.data(), w.data(),
                         state.data(), B, T2, C, K);

  const std::vector<float> y_whole1 = rows(y, 0, T1), y_whole2 = rows(y, T1, T2);
  for (std::size_t i = 0; i < y1.size(); ++i) EXPECT_NEAR(y1[i], y_whole1[i], 1e-6);
  for (std::size_t i = 0; i < y2.size(); ++i) EXPECT_NEAR(y2[i], y_whole2[i], 1e-6);
  for (int s = 0; s < B; ++s)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c) {
        float expect = t < T1 ? dx1[(std::size_t(s) * T1 + t) * C + c] : dx2[(std::size_t(s) * T2 + t - T1) * C + c];
        if (t >= T1 - (K - 1) && t < T1) expect += dstate[(std::size_t(s) * (K - 1) + t - (T1 - (K - 1))) * C + c];
        EXPECT_NEAR(dx[(std::size_t(s) * T + t) * C + c], expect, 1e-5) << "s=" << s << " t=" << t << " c=" << c;
      }
  for (int i = 0; i < C * K; ++i) EXPECT_NEAR(dw_chunks[i], dw[i], 1e-5);
  for (int c = 0; c < C; ++c) EXPECT_NEAR(db_chunks[c], db[c], 1e-5);
}

TEST(RmsNorm, UsesEpsAndZeroRowsStayZero) {
  const std::vector<float> x(2 * 5, 0.0f), w(5, 2.0f);
  std::vector<float> y(10, 1.0f), rstd(2);
  rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), 2, 5, 1e-2f);
  EXPECT_FLOAT_EQ(rstd[0], 10.0f);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), 2, 5);
  EXPECT_FLOAT_EQ(rstd[1], 1.0f / std::sqrt(1e-5f));
}

TEST(RmsNorm, WeightGradientIsRepeatable) {
  // dw sums over many rows on several threads; partial sums are combined in a fixed order, so runs agree exactly.
  constexpr int M = 4099, D = 64;
  const std::vector<float> x = random_floats(std::size_t(M) * D, 1), w = random_floats(D, 2),
                           dy = random_floats(std::size_t(M) * D, 3);
  std::vector<float> y(x.size()), rstd(M), dw1(D, 0.0f), dw2(D, 0.0f);
  rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), M, D);
  rmsnorm_backward(nullptr, dw1.data(), dy.data(), x.data(), w.data(), rstd.data(), M, D);
  rmsnorm_backward(nullptr, dw2.data(), dy.data(), x.data(), w.data(), rstd.data(), M, D);
  EXPECT_EQ(dw1, dw2);
}

}  // namespace
}  // namespace hax::ops
