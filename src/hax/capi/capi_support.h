// What every C entry point shares: the per-thread last error, the exception barrier, argument checks that name the
// argument, and the layout moves between mamba_ssm's layouts and the engine's.
#pragma once

#include <cstddef>
#include <exception>
#include <new>
#include <string>

#include "hax/engine/error.h"

namespace hax::capi {

void set_last_error(std::string message);

// Runs fn; any exception becomes -1 and the last error (no exception crosses the C boundary).
template <class Fn>
int guarded(const char* function, Fn&& fn) {
  try {
    fn();
    return 0;
  } catch (const std::bad_alloc&) {
    set_last_error(std::string(function) + ": out of memory");
  } catch (const std::exception& e) {
    set_last_error(std::string(function) + ": " + e.what());
  } catch (...) {
    set_last_error(std::string(function) + ": unknown error");
  }
  return -1;
}

inline void require(const void* pointer, const char* name) { check(pointer != nullptr, name, " is required (NULL)"); }
inline void positive(long value, const char* name) { check(value >= 1, name, " must be >= 1, got ", value); }

// (outer, rows, cols) -> (outer, cols, rows), blocked so that both sides are read and written in cache lines.
void transpose_last_two(const float* in, float* out, std::size_t outer, std::size_t rows, std::size_t cols);

// mamba_ssm's channel-major (batch, groups, X, L) <-> the engine's group-major, time-major (groups, batch, L, X):
// each group's slab is then a contiguous (batch, L, X) problem for a kernel.
void to_group_major(const float* in, float* out, int batch, int groups, int X, int L);
void from_group_major(const float* in, float* out, int batch, int groups, int X, int L);

}  // namespace hax::capi
