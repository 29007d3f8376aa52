// Per-thread working memory that outlives the call: streaming runs every op once per decoded token, and an op that
// allocated its scratch per call would allocate per token. The buffer only grows, so after the first call of the
// largest size it never touches the heap again.
#pragma once

#include <cstddef>
#include <vector>

namespace hax::ops {

// `count` elements of T owned by the calling thread, valid until its next call with the same Tag (one tag per use, so
// that two scratches of one op never share a buffer). The contents are whatever the last user left.
template <class T, class Tag>
T* thread_scratch(std::size_t count) {
  static thread_local std::vector<T> storage;
  if (storage.size() < count) storage.resize(count);
  return storage.data();
}

}  // namespace hax::ops
