// Column bookkeeping shared by the mixers: splitting a fused GEMM output (M, sum of widths) into contiguous pieces and
// back, and summing per-sequence gradient blocks in a fixed order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <utility>

#include "hax/layers/bound_tensor.h"
#include "hax/ops/parallel.h"

namespace hax::layers {

// For each (destination, size) piece, in order, of `blocks` (S blocks of `width` floats, laid out as the pieces):
// destination += the sum over the S blocks, added in block order so the result does not depend on the threads.
inline void add_sequence_blocks(const float* blocks, int S, std::size_t width,
                         std::initializer_list<std::pair<float*, std::size_t>> pieces) {
  std::size_t at = 0;
  for (const auto& [destination, size] : pieces) {
    if (destination != nullptr) {
      ops::parallel_for(size, size * S > (1u << 15), [&](std::size_t j) {
        float sum = 0;
        for (int q = 0; q < S; ++q) sum += blocks[width * q + at + j];
        destination[j] += sum;
      });
    }
    at += size;
  }
}

// The rows (M, sum of widths) of `fused` are the pieces side by side: copies each piece's columns to its own
// contiguous (M, width) array.
inline void split_columns(const float* fused, int M, std::initializer_list<std::pair<float*, int>> pieces) {
  int P = 0;
  for (const auto& piece : pieces) P += piece.second;
  ops::parallel_for(M, ops::worth_threads(rows_times(M, P)), [&](int m) {
    const float* row = fused + rows_times(m, P);
    for (const auto& [dst, width] : pieces) {
      std::copy_n(row, width, dst + rows_times(m, width));
      row += width;
    }
  });
}

// The reverse of split_columns for the columns [at, P) of `fused` (M, P): each contiguous (M, width) piece is copied
// into its columns, side by side from column `at`.
inline void join_columns(float* fused, int M, int at, std::initializer_list<std::pair<const float*, int>> pieces) {
  int P = at;
  for (const auto& piece : pieces) P += piece.second;
  ops::parallel_for(M, ops::worth_threads(rows_times(M, P)), [&](int m) {
    float* row = fused + rows_times(m, P) + at;
    for (const auto& [src, width] : pieces) {
      std::copy_n(src + rows_times(m, width), width, row);
      row += width;
    }
  });
}

}  // namespace hax::layers
