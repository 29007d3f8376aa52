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

// Whether work worth sharing (`worth`) gets a team of threads here: not inside another team's active region (nested
// regions are inactive) and not when this thread is the only one. Where it does not, the helpers below run the work
// directly, without opening a region at all: even a team of one pays libgomp's futex wake-up, a system call, at each
// barrier and at its end, which on a virtual machine was about 40% of decoding a small model token by token.
inline bool opens_team(bool worth) { return worth && !omp_in_parallel() && omp_get_max_threads() > 1; }

// fn(i) for i in [0, n): split statically over a team when it opens_team(worth), else in order on this thread.
template <class Index, class Fn>
void parallel_for(Index n, bool worth, Fn&& fn) {
  if (!opens_team(worth)) {
    for (Index i = 0; i < n; ++i) fn(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < n; ++i) fn(i);
}

// fn(begin, end) over [0, n) in one contiguous block per thread (for element-wise loops that fn vectorizes with
// `omp simd`), in parallel when n elements are worth_threads, else once for the whole range.
template <class Fn>
void parallel_range(std::size_t n, Fn&& fn) {
  if (!opens_team(worth_threads(n))) {
    fn(std::size_t(0), n);
    return;
  }
#pragma omp parallel
  {
    const std::size_t threads = omp_get_num_threads(), thread = omp_get_thread_num();
    fn(n * thread / threads, n * (thread + 1) / threads);
  }
}

// body() once per thread of a parallel region when it opens_team(worth); body shares its work out with `omp for`,
// `omp barrier` or the thread number. Otherwise body() runs once on this thread: outside any region directly (its
// work-sharing constructs, orphaned, then run whole and their barriers cost nothing), and inside another team's
// region in a nested region of its own (an orphaned `omp for` there would bind to the outer team).
template <class Body>
void parallel_region(bool worth, Body&& body) {
  if (opens_team(worth)) {
#pragma omp parallel
    body();
  } else if (omp_in_parallel()) {
#pragma omp parallel num_threads(1)
    body();
  } else {
    body();
  }
}

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
