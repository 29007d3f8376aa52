// Reference SSD scan: the plain sequential recurrence of ssd.h with every state kept, any scalar type. Same
// contracts as the fast kernel, without `saved`.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "hax/ops/activations_ref.h"  // sigmoid
#include "hax/ops/ssd.h"

namespace hax::ops::ref {
namespace ssd_detail {

template <class S>
S softplus(S v) {
  return v > S(kSoftplusThreshold) ? v : std::log1p(std::exp(v));
}

// Index helpers for the layouts of ssd.h.
struct Layout {
  int T, H, P, G, N;
  explicit Layout(const SsdShape& s) : T(s.seq_len), H(s.heads), P(s.head_dim), G(s.groups), N(s.state) {}
  int group(int h) const { return h / (H / G); }
  std::size_t x(int t, int h, int p) const { return (std::size_t(t) * H + h) * P + p; }
  std::size_t th(int t, int h) const { return std::size_t(t) * H + h; }
  std::size_t bc(int t, int h, int n) const { return (std::size_t(t) * G + group(h)) * N + n; }
  std::size_t state(int h, int p, int n) const { return (std::size_t(h) * P + p) * N + n; }
  // Index into the (T, H, P, N) array of all states.
  std::size_t all(int t, int h, int p, int n) const { return std::size_t(t) * H * P * N + state(h, p, n); }
};

template <class S>
S initial(const SsdInputs<S>& in, std::size_t i) {
  return in.h0 ? in.h0[i] : S(0);
}

template <class S>
S head_A(const SsdInputs<S>& in, int h) {
  return in.A_log ? -std::exp(in.A_log[h]) : in.A[h];
}
// dt_raw + dt_bias before the softplus.
template <class S>
S dt_input(const SsdInputs<S>& in, std::size_t th, int h) {
  return in.dt_raw[th] + (in.dt_bias ? in.dt_bias[h] : S(0));
}
template <class S>
S dt_of(const SsdInputs<S>& in, S v) {
  return in.dt_softplus ? softplus(v) : v;
}

// S[t] for every t: (T, H, P, N).
template <class S>
std::vector<S> states(const SsdShape& shape, const SsdInputs<S>& in) {
  const Layout l(shape);
  std::vector<S> st(std::size_t(l.T) * l.H * l.P * l.N);
  for (int t = 0; t < l.T; ++t) {
    for (int h = 0; h < l.H; ++h) {
      const S dt = dt_of(in, dt_input(in, l.th(t, h), h));
      const S decay = std::exp(dt * head_A(in, h));
      for (int p = 0; p < l.P; ++p) {
        for (int n = 0; n < l.N; ++n) {
          const S prev = t > 0 ? st[l.all(t - 1, h, p, n)] : initial(in, l.state(h, p, n));
          st[l.all(t, h, p, n)] = decay * prev + dt * in.x[l.x(t, h, p)] * in.Bm[l.bc(t, h, n)];
        }
      }
    }
  }
  return st;
}

}  // namespace ssd_detail

template <class S>
void ssd_forward(const SsdShape& shape, const SsdInputs<S>& in, S* y, S* hT) {
  const ssd_detail::Layout l(shape);
  const std::vector<S> st = ssd_detail::states(shape, in);
  for (int t = 0; t < l.T; ++t) {
    for (int h = 0; h < l.H; ++h) {
      for (int p = 0; p < l.P; ++p) {
        S sum = in.D ? in.D[h] * in.x[l.x(t, h, p)] : S(0);
        for (int n = 0; n < l.N; ++n) sum += st[l.all(t, h, p, n)] * in.Cm[l.bc(t, h, n)];
        y[l.x(t, h, p)] = sum;
      }
    }
  }
  if (!hT) return;
  for (int h = 0; h < l.H; ++h)
    for (int p = 0; p < l.P; ++p)
      for (int n = 0; n < l.N; ++n)
        hT[l.state(h, p, n)] = l.T > 0 ? st[l.all(l.T - 1, h, p, n)] : ssd_detail::initial(in, l.state(h, p, n));
}

// Straight reverse-mode through the recurrence, last step first.
template <class S>
void ssd_backward(const SsdShape& shape, const SsdInputs<S>& in, const S* dy, const S* dhT, const SsdGrads<S>& g) {
  const ssd_detail::Layout l(shape);
  const std::vector<S> st = ssd_detail::states(shape, in);
  auto add = [](S* grad, std::size_t i, S value) {
    if (grad) grad[i] += value;
  };
  std::vector<S> dS(std::size_t(l.P) * l.N);  // dL/dS[t, h] (P, N)
  for (int h = 0; h < l.H; ++h) {
    const S A = ssd_detail::head_A(in, h);
    for (int p = 0; p < l.P; ++p)
      for (int n = 0; n < l.N; ++n) dS[p * l.N + n] = dhT ? dhT[l.state(h, p, n)] : S(0);
    S dA = 0;
    for (int t = l.T - 1; t >= 0; --t) {
      const S v = ssd_detail::dt_input(in, l.th(t, h), h);
      const S dt = ssd_detail::dt_of(in, v), decay = std::exp(dt * A);
      S ddt = 0;
      for (int p = 0; p < l.P; ++p) {
        const S x = in.x[l.x(t, h, p)], dy_p = dy[l.x(t, h, p)];
        if (in.D) add(g.dx, l.x(t, h, p), dy_p * in.D[h]);
        add(g.dD, h, dy_p * x);
        for (int n = 0; n < l.N; ++n) {
          const S prev = t > 0 ? st[l.all(t - 1, h, p, n)] : ssd_detail::initial(in, l.state(h, p, n));
          const S Bn = in.Bm[l.bc(t, h, n)], Cn = in.Cm[l.bc(t, h, n)];
          add(g.dCm, l.bc(t, h, n), dy_p * st[l.all(t, h, p, n)]);
          S& d = dS[p * l.N + n];
          d += dy_p * Cn;  // y[t] reads S[t]
          add(g.dx, l.x(t, h, p), d * dt * Bn);
          add(g.dBm, l.bc(t, h, n), d * dt * x);
          ddt += d * (prev * decay * A + x * Bn);
          dA += d * prev * decay * dt;
          d *= decay;  // on to S[t - 1]
        }
      }
      const S dv = ddt * (!in.dt_softplus || v > S(kSoftplusThreshold) ? S(1) : sigmoid(v));
      add(g.ddt_raw, l.th(t, h), dv);
      add(g.ddt_bias, h, dv);
    }
    if (in.A_log) add(g.dA_log, h, dA * A);  // dA/dA_log = A
    else add(g.dA, h, dA);
    for (int p = 0; p < l.P; ++p)
      for (int n = 0; n < l.N; ++n) add(g.dh0, l.state(h, p, n), dS[p * l.N + n]);
  }
}

}  // namespace hax::ops::ref
