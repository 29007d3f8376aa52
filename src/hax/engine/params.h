// Parameters and gradients, llm.c style: each lives in ONE flat fp32 buffer, and every tensor is a named view
// into it (offset + shape), named exactly as in the reference PyTorch models ("layers.0.mixer.in_proj.weight").
// One buffer makes the optimizer a single loop, zeroing gradients a memset, and checkpoints a straight copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hax/engine/aligned_buffer.h"

namespace hax {

struct TensorInfo {
  std::string name;
  std::vector<std::int64_t> shape;
  std::size_t offset = 0;  // in floats, from the start of the flat buffer; 64-byte aligned
  std::size_t numel = 0;
};

std::size_t shape_numel(const std::vector<std::int64_t>& shape);
std::string shape_string(const std::vector<std::int64_t>& shape);  // "(2, 3, 4)"

// Where a buffer laid out as a ParamStore holds its first NaN or infinity: the tensor and the flat index within it.
struct NonFinite {
  std::string tensor;
  std::size_t index = 0;
  float value = 0;
};

class ParamStore;
// The first non-finite value of `values` (the params() or grads() buffer of `layout`, or one laid out like it, such
// as an optimizer moment), in the order of the tensors; none when every value is finite.
std::optional<NonFinite> first_nonfinite(const ParamStore& layout, std::span<const float> values);

class ParamStore {
 public:
  // Layout phase: declare every tensor once, before allocate(). Returns its offset.
  std::size_t add(std::string name, std::vector<std::int64_t> shape);
  // Allocates the parameter and gradient buffers, both zero-filled. No add() after this. Large buffers take memory
  // only where they are written (aligned_buffer.h): a model that never computes a gradient never pays for them.
  void allocate();
  // Replaces the (allocated) parameter buffer by `values` of the same size, laid out as this store: a checkpoint's
  // file mapping (io::load_params), so loading copies nothing.
  void use_params(AlignedBuffer values);
  std::size_t total_floats() const { return total_; }  // the flat buffers' size, padding included
  bool params_are_file_mapping() const { return params_.is_file_mapping(); }
  bool allocated() const { return allocated_; }

  bool contains(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }

  std::span<float> param(std::string_view name);
  std::span<const float> param(std::string_view name) const;
  std::span<float> grad(std::string_view name);
  std::span<const float> grad(std::string_view name) const;

  // The whole flat buffers, padding between tensors included (always zero in both).
  std::span<float> params() { return params_.span(); }
  std::span<const float> params() const { return params_.span(); }
  std::span<float> grads() { return grads_.span(); }
  std::span<const float> grads() const { return grads_.span(); }

  std::size_t num_parameters() const;  // sum of numel, without alignment padding
  void zero_grad() { grads_.fill_zero(); }

 private:
  const TensorInfo& checked(std::string_view name) const;

  std::vector<TensorInfo> tensors_;
  // Looked up by string_view without building a std::string: a decoded token reads parameters by name and must
  // not allocate.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::size_t, NameHash, std::equal_to<>> index_;
  std::size_t total_ = 0;
  bool allocated_ = false;
  AlignedBuffer params_;
  AlignedBuffer grads_;
};

}  // namespace hax
