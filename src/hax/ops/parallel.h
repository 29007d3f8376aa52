// Deterministic parallel reductions over rows (for gradients of weights shared by all rows: biases, norm weights,
// conv taps). A plain `omp reduction` adds the per-thread partials in whatever order threads arrive, so the last
// bits change from run to run; here rows are split statically and partials are added in thread order, so a run
// is bit-for-bit repeatable for a given thread count.
#pragma once

#include <omp.h>

#include <cstddef>
#include <vector>

namespace hax::ops {

// Loops that touch fewer elements than this run on one thread: starting a parallel region would cost more than it
// saves (and decoding runs every op on a handful of rows).
inline constexpr std::size_t kMinParallelElements = std::size_t(1) << 15;
inline bool worth_threads(std::size_t elements) { return elements >= kMinParallelElements; }

// out[j] += sums[j] for every j, rounding once per element.
inline void add_sums(float* out, const std::vector<double>& sums) {
  for (std::size_t j = 0; j < sums.size(); ++j) out[j] = static_cast<float>(out[j] + sums[j]);
}

// Calls row_fn(m, acc) for every row m in [0, rows), in parallel when rows * elements_per_row is worth it; acc is a
// zeroed, thread-private array of `width` doubles that row_fn adds its row's contributions to. Returns the sum of
// all threads' arrays (width doubles).
template <class RowFn>
std::vector<double> parallel_row_sums(int rows, int width, std::size_t elements_per_row, RowFn&& row_fn) {
  const int threads = worth_threads(rows * elements_per_row) ? omp_get_max_threads() : 1;
  // Partials are whole multiples of 8 doubles (a 64-byte cache line), so threads hardly ever write to shared lines.
  const std::size_t stride = (static_cast<std::size_t>(width) + 7) / 8 * 8;
  std::vector<double> partials(stride * threads, 0.0);
#pragma omp parallel num_threads(threads)
  {
    double* acc = partials.data() + stride * omp_get_thread_num();
#pragma omp for schedule(static)
    for (int m = 0; m < rows; ++m) row_fn(m, acc);
  }
  std::vector<double> total(width, 0.0);
  for (int t = 0; t < threads; ++t)
    for (int j = 0; j < width; ++j) total[j] += partials[stride * t + j];
  return total;
}

}  // namespace hax::ops
