#include "hax/engine/arena.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "hax/engine/error.h"

namespace hax {

Arena::Arena(std::size_t capacity_floats)
    // Sized for the largest call, of which most calls use a part: only the pages written cost memory.
    : buffer_(AlignedBuffer::zero_pages(round_up_to_alignment(capacity_floats), "the activation arena")) {}

std::span<float> Arena::alloc(std::size_t count, const char* what) {
  const std::span<float> block = alloc_uninitialized(count, what);
  if (count != 0) std::memset(block.data(), 0, count * sizeof(float));
  return block;
}

std::span<float> Arena::alloc_uninitialized(std::size_t count, const char* what) {
  const std::size_t need = round_up_to_alignment(count);
  check(need <= buffer_.size() - used_, "activation arena full: ", what, " needs ", count, " floats, ",
        buffer_.size() - used_, " of ", buffer_.size(), " are free");
  float* p = buffer_.data() + used_;
  used_ += need;
  peak_ = std::max(peak_, used_);
#ifndef NDEBUG
  std::fill_n(p, count, std::numeric_limits<float>::quiet_NaN());
#endif
  return {p, count};
}

void Arena::release(std::size_t mark) {
  check(mark <= used_, "arena release to mark ", mark, " beyond the ", used_, " floats in use");
  used_ = mark;
}

}  // namespace hax
