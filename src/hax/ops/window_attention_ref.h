// Reference sliding-window attention: the plain loop over queries, heads and each query's keys, any scalar type.
// Same contract as window_attention.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/ops/window_attention.h"

namespace hax::ops::ref {

namespace window_detail {

template <class Real>
Real dot(const Real* a, const Real* b, int n) {
  Real sum = 0;
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// The first key position the query at key position `position` sees.
inline int first_key(const WindowAttentionShape& shape, int position) {
  return std::max(0, position - shape.window + 1);
}

}  // namespace window_detail

template <class Real>
void window_attention_forward(const WindowAttentionShape& shape, Real* out, Real* lse, const Real* q, const Real* k,
                              const Real* v) {
  using window_detail::dot;
  check_window_attention(shape, false);
  const int H = shape.heads, P = shape.head_dim;
  const std::size_t row = std::size_t(H) * P;
  const Real scale = Real(1) / std::sqrt(Real(P));
  std::vector<Real> p;
  for (int i = 0; i < shape.queries; ++i)
    for (int h = 0; h < H; ++h) {
      const int position = shape.query_offset + i, first = window_detail::first_key(shape, position);
      const Real* qi = q + i * row + h * P;
      p.assign(position - first + 1, Real(0));
      for (int s = first; s <= position; ++s) p[s - first] = scale * dot(qi, k + s * row + h * P, P);
      const Real max_score = *std::max_element(p.begin(), p.end());
      Real sum = 0;
      for (Real& x : p) sum += x = std::exp(x - max_score);
      Real* o = out + i * row + h * P;
      for (int d = 0; d < P; ++d) {
        Real acc = 0;
        for (int s = first; s <= position; ++s) acc += p[s - first] * v[s * row + h * P + d];
        o[d] = acc / sum;
      }
      if (lse) lse[std::size_t(i) * H + h] = max_score + std::log(sum);
    }
}

// With p_ts = exp(scale q_t · k_s - lse_t) and ds_ts = p_ts (dout_t · v_s - dout_t · out_t):
// dq_t += scale sum_s ds_ts k_s, dk_s += scale sum_t ds_ts q_t, dv_s += sum_t p_ts dout_t.
template <class Real>
void window_attention_backward(const WindowAttentionShape& shape, Real* dq, Real* dk, Real* dv, const Real* dout,
                               const Real* out, const Real* lse, const Real* q, const Real* k, const Real* v) {
  using window_detail::dot;
  check_window_attention(shape, true);
  const int H = shape.heads, P = shape.head_dim;
  const std::size_t row = std::size_t(H) * P;
  const Real scale = Real(1) / std::sqrt(Real(P));
  for (int t = 0; t < shape.queries; ++t)
    for (int h = 0; h < H; ++h) {
      const std::size_t at = t * row + h * P;
      const Real D = dot(dout + at, out + at, P);
      for (int s = window_detail::first_key(shape, t); s <= t; ++s) {
        const std::size_t key_at = s * row + h * P;
        const Real p = std::exp(scale * dot(q + at, k + key_at, P) - lse[std::size_t(t) * H + h]);
        const Real ds = p * (dot(dout + at, v + key_at, P) - D);
        for (int d = 0; d < P; ++d) {
          if (dq) dq[at + d] += scale * ds * k[key_at + d];
          if (dk) dk[key_at + d] += scale * ds * q[at + d];
          if (dv) dv[key_at + d] += p * dout[at + d];
        }
      }
    }
}

}  // namespace hax::ops::ref
