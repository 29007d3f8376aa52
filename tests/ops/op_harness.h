// A test harness for ops in the spirit of ggml's test-backend-ops: every op is an OpCase (inputs, output size, and
// how to call its fp32 fast kernels and its reference templates), the cases sit in one registry (all_op_cases, with
// random odd shapes and several seeds), and the same checks run on every case:
//   - the reference's gradients, in double, against central finite differences of loss = sum(out * random weights);
//   - the fast fp32 kernels against the double reference, forward output and every gradient;
//   - backward adds into pre-filled gradient buffers instead of overwriting them;
//   - gradients the op allows to be null are skipped without changing the others.
// Inputs are drawn in float and widened, so both versions see the same values and differences are the kernels'.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

namespace hax::ops::testing {

// Rng streams forked from a case's seed. Cases draw their integer inputs (ids, labels, masks) from kIntegerInputs.
enum RngStream : std::uint64_t { kFloatInputs = 0, kLossWeights = 1, kIntegerInputs = 2, kProbes = 3, kPrefill = 4 };

struct InputSpec {
  std::string name;
  std::size_t size = 0;
  float lo = -1.0f, hi = 1.0f;  // drawn uniformly from [lo, hi)
  bool differentiable = true;
  bool grad_optional = false;  // the op accepts a null gradient pointer for this input
};

// The tensors of one run, in Real = float (fast kernels) or double (reference).
template <class Real>
struct Buffers {
  std::vector<std::vector<Real>> in;    // one per InputSpec
  std::vector<std::vector<Real>> grad;  // one per InputSpec; empty = no gradient wanted, passed as null
  std::vector<Real> out;
  std::vector<Real> dout;
  std::vector<Real> saved;  // what a forward keeps for its backward (RMSNorm's rstd)

  // Null for an absent input (i < 0: the case was built without it) or an empty one.
  const Real* input(int i) const { return i < 0 || in[i].empty() ? nullptr : in[i].data(); }
  Real* gradient(int i) { return i < 0 || grad[i].empty() ? nullptr : grad[i].data(); }
};

// The fast kernel for Real = float, the reference for Real = double: lets one templated call site serve both.
template <class Real, class Fast, class Ref>
auto kernel(Fast fast, Ref ref) {
  if constexpr (std::is_same_v<Real, float>)
    return fast;
  else
    return ref;
}

class OpCase {
 public:
  OpCase(std::string name, std::uint64_t seed) : name_(std::move(name)), seed_(seed) {}
  virtual ~OpCase() = default;

  const std::string& name() const { return name_; }
  std::uint64_t seed() const { return seed_; }
  const std::vector<InputSpec>& inputs() const { return inputs_; }
  std::size_t out_size() const { return out_size_; }
  bool has_gradient() const;

  virtual void forward(Buffers<float>& b) const = 0;
  virtual void forward(Buffers<double>& b) const = 0;
  virtual void backward(Buffers<float>& b) const = 0;
  virtual void backward(Buffers<double>& b) const = 0;

  // Called on the freshly drawn inputs: moves values off kinks, or makes ties on purpose.
  virtual void adjust_inputs(std::vector<std::vector<float>>& /*inputs*/) const {}
  // Allowed fp32 error, relative to |reference| + rms(reference tensor).
  virtual double tolerance() const { return 2e-5; }

 protected:
  int add_input(InputSpec spec);  // returns its index
  void set_out_size(std::size_t n) { out_size_ = n; }

 private:
  std::string name_;
  std::uint64_t seed_;
  std::vector<InputSpec> inputs_;
  std::size_t out_size_ = 0;
};

// Implements OpCase's four run methods with Derived's templates run_forward<Real>(b) and run_backward<Real>(b).
template <class Derived>
class OpCaseOf : public OpCase {
 public:
  using OpCase::OpCase;
  void forward(Buffers<float>& b) const override { self().template run_forward<float>(b); }
  void forward(Buffers<double>& b) const override { self().template run_forward<double>(b); }
  void backward(Buffers<float>& b) const override { self().template run_backward<float>(b); }
  void backward(Buffers<double>& b) const override { self().template run_backward<double>(b); }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

using OpCasePtr = std::shared_ptr<const OpCase>;
void PrintTo(const OpCasePtr& op, std::ostream* os);  // gtest prints a case by its name

// Every registered case: each op on random odd shapes (1, 3, 7, 17, 33, ...) for several seeds, plus model shapes.
std::vector<OpCasePtr> all_op_cases();

// The checks. Each reports at most one gtest failure per tensor (its worst element), naming case, tensor and index.
void check_gradients_against_finite_differences(const OpCase& op);
void check_fast_against_reference(const OpCase& op);
void check_backward_accumulates(const OpCase& op);
void check_null_gradients_are_skipped(const OpCase& op);
// All of the above (the gradient checks only for a case with gradients): what each op suite's test runs per case.
void check_all(const OpCase& op);

}  // namespace hax::ops::testing
