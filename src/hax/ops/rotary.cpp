#include "hax/ops/rotary.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "hax/engine/error.h"
#include "hax/ops/parallel.h"
#include "hax/ops/thread_scratch.h"

namespace hax::ops {
namespace {

// Positions between two exact sincos evaluations (see rotary.h). A batch of 64 sequences of 1057 rows needs 4 x 1057
// x 64 cos/sin pairs per call: in exact double sincos that alone would cost more than the rotation.
constexpr int kAnchorSpacing = 64;

// Tags of the per-thread scratch (thread_scratch.h): the frequencies, and one block's angles in double and float.
struct FrequencyTable;
struct BlockAngles;
struct BlockAnglesFloat;

// Per frequency d < P/2: inv_freq[d], and cos and sin of the angle one position adds (in the calling thread's
// scratch: one Frequencies per thread at a time).
struct Frequencies {
  int half;
  double *inv, *step_cos, *step_sin;

  Frequencies(int head_dim, float theta) : half(head_dim / 2) {
    inv = thread_scratch<double, FrequencyTable>(3 * std::size_t(half));
    step_cos = inv + half;
    step_sin = step_cos + half;
    for (int d = 0; d < half; ++d) {
      inv[d] = 1.0 / std::pow(double(theta), 2.0 * d / head_dim);
      step_cos[d] = std::cos(inv[d]);
      step_sin[d] = std::sin(inv[d]);
    }
  }
  int count() const { return half; }
};

// cos and sin (P/2) of position * inv_freq, exactly (to double rounding).
void exact_angles(double* c, double* s, const Frequencies& f, std::int64_t position) {
  for (int d = 0; d < f.count(); ++d) {
    const double angle = double(position) * f.inv[d];
    c[d] = std::cos(angle);
    s[d] = std::sin(angle);
  }
}

// From the angles of one position to those of the next: cos(a + b), sin(a + b) by the addition formulas.
void step_angles(double* c, double* s, const Frequencies& f) {
  for (int d = 0; d < f.count(); ++d) {
    const double c0 = c[d];
    c[d] = c0 * f.step_cos[d] - s[d] * f.step_sin[d];
    s[d] = s[d] * f.step_cos[d] + c0 * f.step_sin[d];
  }
}

// One row of `heads` heads: y = the pairs of x rotated by the angles whose cos and sin are c, s (P/2 each), stored,
// or added to y (accumulate). y may equal x when storing: each pair is read before it is written.
void rotate_row(float* y, const float* x, const float* c, const float* s, int heads, int head_dim, bool accumulate) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    const float* xh = x + std::size_t(h) * head_dim;
    float* yh = y + std::size_t(h) * head_dim;
    for (int d = 0; d < half; ++d) {
      const float x1 = xh[d], x2 = xh[d + half];
      const float y1 = x1 * c[d] - x2 * s[d], y2 = x2 * c[d] + x1 * s[d];
      yh[d] = accumulate ? yh[d] + y1 : y1;
      yh[d + half] = accumulate ? yh[d + half] + y2 : y2;
    }
  }
}

// out = R in (sign 1, stored) or out += R^T in (sign -1, accumulated). Rows go in blocks of the kAnchorSpacing
// positions between two anchors (multiples of kAnchorSpacing), one block per task: each block starts from the exact
// angles of its anchor and steps through its positions, including those before position0 in the first block, so
// that the angles of a position never depend on where the call starts.
void rotary_apply(float* out, const float* in, int T, int heads, int head_dim, int position0, float theta, float sign,
                  bool accumulate) {
  check_rotary(T, heads, head_dim, position0, theta);
  if (T == 0) return;
  const Frequencies f(head_dim, theta);
  const std::size_t row = std::size_t(heads) * head_dim;
  const std::int64_t begin = position0, end = std::int64_t(position0) + T;
  const std::int64_t first_anchor = begin / kAnchorSpacing, blocks = (end - 1) / kAnchorSpacing - first_anchor + 1;
  parallel_region(worth_threads(T * row), [&] {
    double* c = thread_scratch<double, BlockAngles>(2 * std::size_t(f.count()));
    double* s = c + f.count();
    float* cf = thread_scratch<float, BlockAnglesFloat>(2 * std::size_t(f.count()));
    float* sf = cf + f.count();
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t anchor = (first_anchor + b) * kAnchorSpacing;
      exact_angles(c, s, f, anchor);
      for (std::int64_t pos = anchor; pos < std::min(anchor + kAnchorSpacing, end); ++pos) {
        if (pos >= begin) {
          for (int d = 0; d < f.count(); ++d) {
            cf[d] = float(c[d]);
            sf[d] = sign * float(s[d]);
          }
          const std::size_t offset = std::size_t(pos - begin) * row;
          rotate_row(out + offset, in + offset, cf, sf, heads, head_dim, accumulate);
        }
        step_angles(c, s, f);
      }
    }
  });
}

}  // namespace

void check_rotary(int T, int heads, int head_dim, int position0, float theta) {
  check(T >= 0 && heads >= 0 && position0 >= 0, "rotary embedding: bad shape (T ", T, ", heads ", heads,
        ", position0 ", position0, ")");
  check(head_dim > 0 && head_dim % 2 == 0, "rotary embedding: head_dim must be even and positive, got ", head_dim);
  check(theta > 0.0f, "rotary embedding: theta must be positive, got ", theta);
}

void rotary_forward(float* out, const float* in, int T, int heads, int head_dim, int position0, float theta) {
  rotary_apply(out, in, T, heads, head_dim, position0, theta, 1.0f, false);
}

void rotary_backward(float* din, const float* dout, int T, int heads, int head_dim, int position0, float theta) {
  rotary_apply(din, dout, T, heads, head_dim, position0, theta, -1.0f, true);
}

}  // namespace hax::ops
