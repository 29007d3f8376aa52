// Key-selection scorer (reference.md §3.7): a score per position from detached features, by a 3-layer MLP
// dx_proj_1..3 (2N -> 2N ReLU -> 2N ReLU -> 1, PyTorch Linear layout). Its gradients come only from the gate loss
// (gate_loss.h); nothing flows back into Q or K.
#pragma once

#include "hax/ops/sparse/semantics.h"

namespace hax::ops::sparse {

// features (T, 2N) = [K_t, normalize(c_t)] with c_t = sum_{p <= t} Q_p, from Q, K (T, N) (K already / sqrt(N)):
//   paper : c divided per feature by max(its L2 norm over ALL t, 1e-12) (whole sequence, padding included);
//   causal: c_t divided by max(||c_t||_2 over the N features, 1e-12), which depends on the prefix only.
void key_selection_features(float* features, const float* Q, const float* K, int T, int N, Semantics semantics);

// The `causal` features of a chunk of T positions that continues a sequence (streaming inference): running (N)
// holds sum_p Q_p over the positions before the chunk on entry, and over those up to its end on return. The running
// sum is kept in double, as key_selection_features keeps it, so a sequence fed in chunks of any size gets the same
// features bit for bit.
void key_selection_features_continued(float* features, const float* Q, const float* K, int T, int N, double* running);

// Running normalization (`causal`, hax_ks_normalization "running"): `paper`'s per-feature division by the L2 norm
// over time, taken over the prefix: c_{t,n} / max(sqrt(sum_{p <= t} c_{p,n}^2), 1e-12). running (N) is the sum of
// Q and squares (N) the sum of c^2 over the positions before the chunk, both advanced (zeros for a whole sequence).
void key_selection_features_running(float* features, const float* Q, const float* K, int T, int N, double* running,
                                    double* squares);

// W1, W2 (2N, 2N), b1, b2 (2N), W3 (1, 2N), b3 (1).
template <class Real>
struct ScorerWeights {
  const Real *W1, *b1, *W2, *b2, *W3, *b3;
};
// Same shapes; any pointer may be null (that gradient is not wanted).
template <class Real>
struct ScorerGradients {
  Real *W1, *b1, *W2, *b2, *W3, *b3;
};

// score (T) = W3 h2 + b3, h2 = relu(W2 h1 + b2), h1 = relu(W1 f + b1) per row f of features (T, 2N). hidden1 and
// hidden2 (T, 2N) receive h1 and h2 for the backward.
void key_scorer_forward(float* score, float* hidden1, float* hidden2, const float* features,
                        const ScorerWeights<float>& w, int T, int N);

// Adds d(sum dscore * score) / d(weights) to g; dscore (T).
void key_scorer_backward(const ScorerGradients<float>& g, const float* dscore, const float* features,
                         const float* hidden1, const float* hidden2, const ScorerWeights<float>& w, int T, int N);
// The same with `scratch` (4 T N floats, contents ignored) as its working memory, the two hidden layers' gradients:
// a caller that runs every step passes memory it keeps (an arena), as for sparse_attention_backward's scratch.
void key_scorer_backward_with_scratch(const ScorerGradients<float>& g, const float* dscore, const float* features,
                                      const float* hidden1, const float* hidden2, const ScorerWeights<float>& w, int T,
                                      int N, float* scratch);

}  // namespace hax::ops::sparse
