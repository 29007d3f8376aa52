// Linear layer in PyTorch's layout, and the tied output layer built on it.
#pragma once

namespace hax::ops {

// y (M,N) = x (M,K) W^T + b, with W (N,K) as in torch.nn.Linear and b (N) optional (null: no bias).
void linear_forward(float* y, const float* x, const float* W, const float* b, int M, int K, int N);

// dx (M,K) += dy W, dW (N,K) += dy^T x, db (N) += sum over rows of dy. Any of dx, dW, db may be null (not wanted).
void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const float* W, int M, int K,
                     int N);

// y (rows) = W (rows, K) x (K) + b, with b (rows) optional: one row of linear_forward, on the calling thread only, so
// that the threads of a parallel region can each take a share of the rows (a decoded token, layers/mamba_token.cpp).
// BLAS is not called from there: inside a region that is inactive (one thread) it would start a team of its own.
void gemv_rows(float* y, const float* W, const float* x, const float* b, int rows, int K);

// Adds the column sums of a (rows, cols) to out (cols): deterministic for a given thread count.
void add_column_sums(float* out, const float* a, int rows, int cols);

// Tied output layer (reference §2.2): logits (M,V) = h (M,D) E^T, where E (V,D) is the input embedding table.
inline void tied_output_forward(float* logits, const float* h, const float* E, int M, int D, int V) {
  linear_forward(logits, h, E, nullptr, M, D, V);
}

// dh (M,D) += dlogits E, dE (V,D) += dlogits^T h (dE is the embedding table's gradient: both uses add into it).
inline void tied_output_backward(float* dh, float* dE, const float* dlogits, const float* h, const float* E, int M,
                                 int D, int V) {
  linear_backward(dh, dE, nullptr, dlogits, h, E, M, D, V);
}

}  // namespace hax::ops
