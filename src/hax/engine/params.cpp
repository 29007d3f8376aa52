#include "hax/engine/params.h"

#include <cmath>
#include <limits>

#include "hax/engine/error.h"

namespace hax {

namespace {

// Whether v[0, n) are all finite, at memory speed: x * 0 is 0 for every finite x and NaN for NaN and infinity, and a
// sum of those vectorizes where a test per element would branch (loading a 365 MB checkpoint checks every weight).
bool all_finite(const float* v, std::size_t n) {
  float zero_unless_nonfinite = 0.0f;
#pragma omp simd reduction(+ : zero_unless_nonfinite)
  for (std::size_t i = 0; i < n; ++i) zero_unless_nonfinite += v[i] * 0.0f;
  return zero_unless_nonfinite == 0.0f;
}

}  // namespace

std::optional<NonFinite> first_nonfinite(const ParamStore& layout, std::span<const float> values) {
  for (const TensorInfo& t : layout.tensors()) {
    const float* v = values.data() + t.offset;
    if (all_finite(v, t.numel)) continue;
    for (std::size_t i = 0; i < t.numel; ++i)
      if (!std::isfinite(v[i])) return NonFinite{t.name, i, v[i]};
  }
  return std::nullopt;
}

std::size_t shape_numel(const std::vector<std::int64_t>& shape) {
  std::size_t n = 1;
  for (std::int64_t d : shape) {
    check(d >= 0, "negative dimension ", d, " in shape ", shape_string(shape));
    // A product that wraps around would make a huge shape look small (and match a short file).
    check(d == 0 || n <= std::numeric_limits<std::size_t>::max() / static_cast<std::size_t>(d), "shape ",
          shape_string(shape), " has more elements than any memory");
    n *= static_cast<std::size_t>(d);
  }
  return n;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::size_t ParamStore::add(std::string name, std::vector<std::int64_t> shape) {
  check(!allocated_, "parameter '", name, "' declared after the parameter buffer was allocated");
  check(!name.empty(), "parameter with an empty name");
  check(!index_.contains(name), "parameter '", name, "' declared twice");
  TensorInfo t{std::move(name), std::move(shape), total_, 0};
  t.numel = shape_numel(t.shape);
  total_ += round_up_to_alignment(t.numel);
  index_.emplace(t.name, tensors_.size());
  tensors_.push_back(std::move(t));
  return tensors_.back().offset;
}

void ParamStore::allocate() {
  check(!allocated_, "parameter buffer allocated twice");
  params_ = AlignedBuffer(total_, "the model's parameters");
  grads_ = AlignedBuffer(total_, "the model's gradients");
  allocated_ = true;
}

void ParamStore::use_params(AlignedBuffer values) {
  check(allocated_, "parameter buffer replaced before it was allocated");
  check(values.size() == total_, "parameter buffer of ", values.size(), " floats for a layout of ", total_);
  params_ = std::move(values);
}

bool ParamStore::contains(std::string_view name) const { return index_.contains(name); }

const TensorInfo& ParamStore::checked(std::string_view name) const {
  auto it = index_.find(name);
  check(it != index_.end(), "no parameter named '", name, "'");
  check(allocated_, "parameter '", name, "' read before the parameter buffer was allocated");
  return tensors_[it->second];
}

const TensorInfo& ParamStore::info(std::string_view name) const {
  auto it = index_.find(name);
  check(it != index_.end(), "no parameter named '", name, "'");
  return tensors_[it->second];
}

std::span<float> ParamStore::param(std::string_view name) {
  const TensorInfo& t = checked(name);
  return params_.span().subspan(t.offset, t.numel);
}
std::span<const float> ParamStore::param(std::string_view name) const {
  const TensorInfo& t = checked(name);
  return params_.span().subspan(t.offset, t.numel);
}
std::span<float> ParamStore::grad(std::string_view name) {
  const TensorInfo& t = checked(name);
  return grads_.span().subspan(t.offset, t.numel);
}
std::span<const float> ParamStore::grad(std::string_view name) const {
  const TensorInfo& t = checked(name);
  return grads_.span().subspan(t.offset, t.numel);
}

std::size_t ParamStore::num_parameters() const {
  std::size_t n = 0;
  for (const TensorInfo& t : tensors_) n += t.numel;
  return n;
}

}  // namespace hax
