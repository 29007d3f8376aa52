// A layer's view of one of its parameters: the value and the gradient, both inside the model's flat buffers.
#pragma once

#include <string>

#include "hax/engine/params.h"

namespace hax::layers {

struct BoundTensor {
  float* value = nullptr;
  float* grad = nullptr;
};

// The tensor `name` of an allocated store; an empty view when the config leaves it out (`present` false).
inline BoundTensor bind_tensor(ParamStore& store, const std::string& name, bool present = true) {
  if (!present) return {};
  return {store.param(name).data(), store.grad(name).data()};
}

inline std::size_t rows_times(std::size_t rows, std::size_t width) { return rows * width; }

}  // namespace hax::layers
