#include "op_harness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "hax/engine/rng.h"

namespace hax::ops::testing {
namespace {

constexpr std::size_t kMaxProbes = 64;               // finite differences per input tensor
constexpr double kFiniteDifferenceTolerance = 1e-6;  // double, central differences with h = 1e-5 |x|

// Pre-filled + fresh gradient against backward into the pre-filled buffer: only the rounding of one addition.
template <class Real>
constexpr double accumulate_tolerance() {
  return std::is_same_v<Real, float> ? 1e-6 : 1e-12;
}

template <class Real>
const char* version_name() {
  return std::is_same_v<Real, float> ? "fast" : "reference";
}

std::vector<std::vector<float>> draw_inputs(const OpCase& op) {
  Rng rng = Rng(op.seed()).fork(kFloatInputs);
  std::vector<std::vector<float>> values;
  for (const InputSpec& spec : op.inputs()) {
    std::vector<float> v(spec.size);
    rng.fill_uniform(v, spec.lo, spec.hi);
    values.push_back(std::move(v));
  }
  op.adjust_inputs(values);
  return values;
}

template <class Real>
std::vector<Real> random_vector(std::size_t n, Rng rng) {
  std::vector<float> v(n);
  rng.fill_uniform(v, -1.0f, 1.0f);
  return {v.begin(), v.end()};
}

// The inputs; the output pre-filled with NaN (a forward must write every element and read none); zeroed gradients
// for the differentiable inputs; dout = the random loss weights.
template <class Real>
Buffers<Real> make_buffers(const OpCase& op, const std::vector<std::vector<float>>& inputs) {
  Buffers<Real> b;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    b.in.emplace_back(inputs[i].begin(), inputs[i].end());
    b.grad.emplace_back(op.inputs()[i].differentiable ? inputs[i].size() : 0, Real(0));
  }
  b.out.assign(op.out_size(), std::numeric_limits<Real>::quiet_NaN());
  b.dout = random_vector<Real>(op.out_size(), Rng(op.seed()).fork(kLossWeights));
  return b;
}

// Compares two tensors element by element: |actual - expected| <= tolerance * (|expected| + rms(expected)), so
// elements that cancel to near zero are judged on the tensor's scale. NaN in both is a match (an undefined value,
// such as the accuracy of an unscored sequence); NaN in one only is a mismatch. Reports the worst element.
template <class A, class E>
void expect_close(const OpCase& op, const std::string& what, const std::vector<A>& actual,
                  const std::vector<E>& expected, double tolerance) {
  ASSERT_EQ(actual.size(), expected.size()) << op.name() << ": " << what;
  double sum_sq = 0.0;
  for (E e : expected)
    if (!std::isnan(e)) sum_sq += double(e) * double(e);
  const double rms = std::sqrt(sum_sq / std::max<std::size_t>(expected.size(), 1));
  double worst_ratio = 0.0;
  std::size_t worst = 0;
  for (std::size_t j = 0; j < actual.size(); ++j) {
    const double a = actual[j], e = expected[j];
    if (std::isnan(a) && std::isnan(e)) continue;
    const double limit = std::max(tolerance * (std::abs(e) + rms), std::numeric_limits<double>::min());
    const double ratio = std::abs(a - e) / limit;
    if (!(ratio <= worst_ratio)) {  // also catches NaN
      worst_ratio = std::isnan(ratio) ? std::numeric_limits<double>::infinity() : ratio;
      worst = j;
    }
  }
  if (worst_ratio > 1.0)
    ADD_FAILURE() << op.name() << ": " << what << "[" << worst << "] = " << double(actual[worst]) << ", expected "
                  << double(expected[worst]) << " (error " << worst_ratio << "x the tolerance " << tolerance
                  << " * (|expected| + rms " << rms << "))";
}

double weighted_sum(const std::vector<double>& out, const std::vector<double>& weights) {
  double sum = 0.0;
  for (std::size_t j = 0; j < out.size(); ++j) sum += out[j] * weights[j];
  return sum;
}

// d(sum(out * dout)) / d(input i, element j) by central differences on the reference.
double central_difference(const OpCase& op, Buffers<double>& b, std::size_t i, std::size_t j) {
  double& x = b.in[i][j];
  const double x0 = x, h = 1e-5 * std::max(1.0, std::abs(x0));
  const double up = x0 + h, down = x0 - h;
  x = up;
  op.forward(b);
  const double loss_up = weighted_sum(b.out, b.dout);
  x = down;
  op.forward(b);
  const double loss_down = weighted_sum(b.out, b.dout);
  x = x0;
  return (loss_up - loss_down) / (up - down);
}

// All indices of a small tensor; for a large one the first, the last and random ones in between.
std::vector<std::size_t> probe_indices(std::size_t n, Rng& rng) {
  std::vector<std::size_t> indices;
  if (n <= kMaxProbes) {
    for (std::size_t j = 0; j < n; ++j) indices.push_back(j);
    return indices;
  }
  indices = {0, n - 1};
  while (indices.size() < kMaxProbes) indices.push_back(rng.below(n));
  return indices;
}

std::string gradient_name(const OpCase& op, std::size_t i) { return "d" + op.inputs()[i].name; }

template <class Real>
void check_accumulates_in(const OpCase& op) {
  const auto inputs = draw_inputs(op);
  Buffers<Real> b = make_buffers<Real>(op, inputs);
  op.forward(b);
  op.backward(b);
  const std::vector<std::vector<Real>> fresh = b.grad;
  std::vector<std::vector<Real>> expected = fresh;
  const Rng rng = Rng(op.seed()).fork(kPrefill);
  for (std::size_t i = 0; i < b.grad.size(); ++i) {
    b.grad[i] = random_vector<Real>(b.grad[i].size(), rng.fork(i));
    for (std::size_t j = 0; j < b.grad[i].size(); ++j) expected[i][j] = b.grad[i][j] + fresh[i][j];
  }
  op.backward(b);
  for (std::size_t i = 0; i < b.grad.size(); ++i)
    if (!b.grad[i].empty())
      expect_close(op, std::string(version_name<Real>()) + " " + gradient_name(op, i) + " added to a pre-filled buffer",
                   b.grad[i], expected[i], accumulate_tolerance<Real>());
}

template <class Real>
void check_null_gradients_in(const OpCase& op) {
  const auto inputs = draw_inputs(op);
  Buffers<Real> b = make_buffers<Real>(op, inputs);
  op.forward(b);
  op.backward(b);
  const std::vector<std::vector<Real>> all = b.grad;
  for (std::size_t skipped = 0; skipped < all.size(); ++skipped) {
    if (!op.inputs()[skipped].grad_optional) continue;
    for (std::size_t i = 0; i < all.size(); ++i) b.grad[i].assign(i == skipped ? 0 : all[i].size(), Real(0));
    op.backward(b);
    for (std::size_t i = 0; i < all.size(); ++i)
      if (i != skipped && !all[i].empty())
        expect_close(op,
                     std::string(version_name<Real>()) + " " + gradient_name(op, i) + " with " +
                         gradient_name(op, skipped) + " null",
                     b.grad[i], all[i], accumulate_tolerance<Real>());
  }
}

}  // namespace

bool OpCase::has_gradient() const {
  return std::any_of(inputs_.begin(), inputs_.end(), [](const InputSpec& s) { return s.differentiable; });
}

int OpCase::add_input(InputSpec spec) {
  inputs_.push_back(std::move(spec));
  return static_cast<int>(inputs_.size()) - 1;
}

void check_gradients_against_finite_differences(const OpCase& op) {
  Buffers<double> b = make_buffers<double>(op, draw_inputs(op));
  op.forward(b);
  op.backward(b);
  Rng rng = Rng(op.seed()).fork(kProbes);
  for (std::size_t i = 0; i < b.in.size(); ++i) {
    if (!op.inputs()[i].differentiable) continue;
    // Unprobed elements keep the analytic value, so the comparison's scale is the whole gradient's.
    std::vector<double> numeric = b.grad[i];
    for (std::size_t j : probe_indices(b.in[i].size(), rng)) numeric[j] = central_difference(op, b, i, j);
    expect_close(op, "reference " + gradient_name(op, i) + " vs finite differences", b.grad[i], numeric,
                 kFiniteDifferenceTolerance);
  }
}

void check_fast_against_reference(const OpCase& op) {
  const auto inputs = draw_inputs(op);
  Buffers<double> ref = make_buffers<double>(op, inputs);
  Buffers<float> fast = make_buffers<float>(op, inputs);
  op.forward(ref);
  op.forward(fast);
  expect_close(op, "fast output", fast.out, ref.out, op.tolerance());
  if (!op.has_gradient()) return;
  op.backward(ref);
  op.backward(fast);
  for (std::size_t i = 0; i < ref.grad.size(); ++i)
    if (!ref.grad[i].empty())
      expect_close(op, "fast " + gradient_name(op, i), fast.grad[i], ref.grad[i], op.tolerance());
}

void check_backward_accumulates(const OpCase& op) {
  check_accumulates_in<float>(op);
  check_accumulates_in<double>(op);
}

void check_null_gradients_are_skipped(const OpCase& op) {
  check_null_gradients_in<float>(op);
  check_null_gradients_in<double>(op);
}

void check_all(const OpCase& op) {
  check_fast_against_reference(op);
  if (!op.has_gradient()) return;
  check_gradients_against_finite_differences(op);
  check_backward_accumulates(op);
  check_null_gradients_are_skipped(op);
}

}  // namespace hax::ops::testing
