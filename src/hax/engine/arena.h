// Activation arena: one aligned block, carved out by a bump pointer. A training step allocates its activations
// in forward order and frees them all at once (reset) or back to a mark, so the hot path never calls malloc and
// peak activation memory is a number we can report.
#pragma once

#include <cstddef>
#include <span>

#include "hax/engine/aligned_buffer.h"

namespace hax {

class Arena {
 public:
  explicit Arena(std::size_t capacity_floats = 0);

  // A 64-byte aligned block of `count` floats, zero-filled. Throws hax::Error naming `what` when full.
  std::span<float> alloc(std::size_t count, const char* what = "activation");
  // The same block without the zero-fill, for one whose every element is written before it is read (a GEMM output
  // with beta 0, an elementwise result): saves a pass over memory. With asserts on (the ASan build) it is filled
  // with NaN instead, so that a read before the write shows up in the tests' results.
  std::span<float> alloc_uninitialized(std::size_t count, const char* what = "activation");

  std::size_t mark() const { return used_; }
  void release(std::size_t mark);  // frees everything allocated after mark()
  void reset() { used_ = 0; }

  std::size_t capacity() const { return buffer_.size(); }
  std::size_t used() const { return used_; }
  std::size_t peak() const { return peak_; }

 private:
  AlignedBuffer buffer_;
  std::size_t used_ = 0;
  std::size_t peak_ = 0;
};

}  // namespace hax
