#include "hax/capi/capi_support.h"

#include <algorithm>
#include <utility>

#include "hax/capi/hax_c.h"

namespace hax::capi {
namespace {
thread_local std::string last_error;
constexpr std::size_t kTile = 32;
}  // namespace

void set_last_error(std::string message) { last_error = std::move(message); }

void transpose_last_two(const float* in, float* out, std::size_t outer, std::size_t rows, std::size_t cols) {
  const std::size_t row_tiles = (rows + kTile - 1) / kTile, col_tiles = (cols + kTile - 1) / kTile;
#pragma omp parallel for collapse(3) schedule(static)
  for (std::size_t o = 0; o < outer; ++o) {
    for (std::size_t rt = 0; rt < row_tiles; ++rt) {
      for (std::size_t ct = 0; ct < col_tiles; ++ct) {
        const float* src = in + o * rows * cols;
        float* dst = out + o * rows * cols;
        const std::size_t r1 = std::min(rows, (rt + 1) * kTile), c1 = std::min(cols, (ct + 1) * kTile);
        for (std::size_t r = rt * kTile; r < r1; ++r)
          for (std::size_t c = ct * kTile; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
      }
    }
  }
}

// A (groups, batch) swap of whole slabs around a transpose of each slab: (batch, groups, X, L) slabs become
// (groups, batch, L, X) ones, or back.
void swap_group_major(const float* in, float* out, int batch, int groups, int X, int L, bool to_group_major) {
  const std::size_t slab = std::size_t(X) * L;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < batch; ++b) {
    for (int g = 0; g < groups; ++g) {
      const std::size_t channel_major = (std::size_t(b) * groups + g) * slab;
      const std::size_t group_major = (std::size_t(g) * batch + b) * slab;
      if (to_group_major)
        transpose_last_two(in + channel_major, out + group_major, 1, X, L);
      else
        transpose_last_two(in + group_major, out + channel_major, 1, L, X);
    }
  }
}

void to_group_major(const float* in, float* out, int batch, int groups, int X, int L) {
  swap_group_major(in, out, batch, groups, X, L, true);
}

void from_group_major(const float* in, float* out, int batch, int groups, int X, int L) {
  swap_group_major(in, out, batch, groups, X, L, false);
}

}  // namespace hax::capi

extern "C" {

int hax_abi_version(void) { return HAX_C_ABI_VERSION; }
const char* hax_last_error(void) { return hax::capi::last_error.c_str(); }
}
