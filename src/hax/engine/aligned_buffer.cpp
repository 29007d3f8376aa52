#include "hax/engine/aligned_buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace hax {

void AlignedBuffer::Free::operator()(float* p) const { std::free(p); }

AlignedBuffer::AlignedBuffer(std::size_t count) : size_(count) {
  if (count == 0) return;
  const std::size_t bytes = round_up_to_alignment(count) * sizeof(float);
  void* p = std::aligned_alloc(kAlignBytes, bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  data_.reset(static_cast<float*>(p));
}

void AlignedBuffer::fill_zero() {
  if (size_ != 0) std::memset(data_.get(), 0, size_ * sizeof(float));
}

}  // namespace hax
