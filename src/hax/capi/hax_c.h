/* hax's C ABI: the kernels of the engine behind plain float pointers and sizes, for callers in other languages (the
 * PyTorch package under python/ calls it through ctypes). No C++ type crosses this boundary.
 *
 * Conventions:
 *  - Every array is float32, dense and row-major in the layout given beside it (the caller makes it contiguous).
 *  - Optional inputs may be NULL. Gradient outputs are OVERWRITTEN (not accumulated); a NULL gradient is not wanted.
 *  - Functions return 0 on success and -1 on failure; hax_last_error() then gives a message naming the argument
 *    (per thread, valid until the next call on that thread). Nothing is written to outputs on a failed check.
 *  - Threads: OpenMP, as many as OMP_NUM_THREADS / hax_set_num_threads say.
 *  - Layouts are those of mamba_ssm's ops (selective_scan_fn, causal_conv1d_fn, mamba_chunk_scan_combined), so a
 *    PyTorch wrapper passes its tensors through unchanged. */
#ifndef HAX_C_H
#define HAX_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAX_C_ABI_VERSION 3

/* Only these functions leave the shared library (it is built with hidden visibility). */
#if defined(HAX_C_BUILDING)
#define HAX_C_API __attribute__((visibility("default")))
#else
#define HAX_C_API
#endif

HAX_C_API int hax_abi_version(void);
HAX_C_API const char* hax_last_error(void);
HAX_C_API void hax_set_num_threads(int threads);
HAX_C_API int hax_get_num_threads(void);

/* ---- Mamba-1 selective scan (mamba_ssm selective_scan_fn) ---------------------------------------------------------
 * For channel c of group g = c / (dim / groups), state n:
 *   d[t] = delta[t] + delta_bias[c], softplus'ed when delta_softplus; requires d >= 0 and A < 0 (decaying state)
 *   h[t, n] = exp(d[t] A[c, n]) h[t-1, n] + d[t] B[g, n, t] u[t],   h[-1] = 0
 *   out[t] = (sum_n C[g, n, t] h[t, n] + D[c] u[t]) * silu(z[t])    (no silu factor without z)            */
typedef struct {
  int batch, dim, seq_len, dstate, groups; /* groups >= 1; B and C are (batch, groups, dstate, seq_len) */
  int delta_softplus;
  const float* u;          /* (batch, dim, seq_len) */
  const float* delta;      /* (batch, dim, seq_len) */
  const float* A;          /* (dim, dstate), all < 0 */
  const float* B;          /* (batch, groups, dstate, seq_len) */
  const float* C;          /* (batch, groups, dstate, seq_len) */
  const float* D;          /* (dim) or NULL */
  const float* z;          /* (batch, dim, seq_len) or NULL */
  const float* delta_bias; /* (dim) or NULL */
} hax_scan_args;

/* Floats the forward saves for the backward (state checkpoints; the inputs themselves are not copied). */
HAX_C_API size_t hax_selective_scan_saved_floats(const hax_scan_args* args);
/* out (batch, dim, seq_len); last_state (batch, dim, dstate) or NULL; saved or NULL (no backward to follow). */
HAX_C_API int hax_selective_scan_forward(const hax_scan_args* args, float* out, float* last_state, float* saved);
/* dout (batch, dim, seq_len); dlast_state (batch, dim, dstate) or NULL. Gradients in the inputs' layouts. */
HAX_C_API int hax_selective_scan_backward(const hax_scan_args* args, const float* saved, const float* dout,
                                const float* dlast_state, float* du, float* ddelta, float* dA, float* dB, float* dC,
                                float* dD, float* dz, float* ddelta_bias);

/* ---- Causal depthwise conv1d (causal_conv1d_fn without the activation) -----------------------------------------
 * out[c, t] = bias[c] + sum_k weight[c, k] x[c, t - width + 1 + k]   (x = 0 before t = 0)                   */
HAX_C_API int hax_causal_conv1d_forward(int batch, int dim, int seq_len, int width, const float* x /* (batch, dim, seq_len) */,
                              const float* weight /* (dim, width) */, const float* bias /* (dim) or NULL */,
                              float* out /* (batch, dim, seq_len) */);
HAX_C_API int hax_causal_conv1d_backward(int batch, int dim, int seq_len, int width, const float* x, const float* weight,
                               const float* dout, float* dx, float* dweight, float* dbias);

/* ---- Mamba2 SSD scan (mamba_ssm mamba_chunk_scan_combined, without z and with a per-head D) ---------------------
 * For head h of group g = h / (heads / groups): dt' = dt + dt_bias[h] (softplus'ed when dt_softplus; >= 0), A < 0,
 *   S[t] = exp(dt'[t] A[h]) S[t-1] + dt'[t] x[t] (outer) B[t, g],   y[t] = S[t] C[t, g] + D[h] x[t]           */
typedef struct {
  int batch, seq_len, heads, head_dim, groups, dstate, chunk_size;
  int dt_softplus;
  const float* x;             /* (batch, seq_len, heads, head_dim) */
  const float* dt;            /* (batch, seq_len, heads) */
  const float* A;             /* (heads), all < 0 */
  const float* B;             /* (batch, seq_len, groups, dstate) */
  const float* C;             /* (batch, seq_len, groups, dstate) */
  const float* D;             /* (heads) or NULL */
  const float* dt_bias;       /* (heads) or NULL */
  const float* initial_state; /* (batch, heads, head_dim, dstate) or NULL */
} hax_ssd_args;

HAX_C_API size_t hax_ssd_saved_floats(const hax_ssd_args* args);
/* y (batch, seq_len, heads, head_dim); final_state (batch, heads, head_dim, dstate) or NULL; saved or NULL. */
HAX_C_API int hax_ssd_forward(const hax_ssd_args* args, float* y, float* final_state, float* saved);
HAX_C_API int hax_ssd_backward(const hax_ssd_args* args, const float* saved, const float* dy, const float* dfinal_state,
                     float* dx, float* ddt, float* dA, float* dB, float* dC, float* dD, float* ddt_bias,
                     float* dinitial_state);

/* ---- Sparse attention over context-dependent key sets (ops/sparse) ----------------------------------------------
 * Per sequence, each query t attends to the union of the patterns of `sparse_arch` ("sliding_window",
 * "sign_bin_lsh+key_selection", ...; budget total_keys split over the patterns; dilation max_length / budget) with
 * softmax(q k / sqrt(N)). LSH buckets come from q and k projected on lsh_projection (N, num_hash); key selection
 * from key_scores. semantics: 0 = causal, 1 = paper (semantics.md). A context keeps the key lists and weights from
 * the forward for the backward; free it with hax_context_free. */
typedef struct hax_context hax_context;

typedef struct {
  int batch, seq_len, qk_dim, v_dim; /* qk_dim N, v_dim I */
  const char* sparse_arch;
  int total_keys, max_length, semantics;
  const float* q;              /* (batch, seq_len, N) */
  const float* k;              /* (batch, seq_len, N), not yet scaled */
  const float* v;              /* (batch, seq_len, I) */
  const float* key_scores;     /* (batch, seq_len), needed with key_selection */
  const float* lsh_projection; /* (N, num_hash), needed with an LSH pattern */
  int num_hash;
} hax_sparse_args;

/* out (batch, seq_len, I). *context receives the state for the backward (NULL context pointer: none kept). */
HAX_C_API int hax_sparse_attention_forward(const hax_sparse_args* args, float* out, hax_context** context);
/* The same args as the forward. dq, dk (batch, seq_len, N) (dk with respect to the unscaled k), dv (batch, seq_len, I). */
HAX_C_API int hax_sparse_attention_backward(const hax_sparse_args* args, const hax_context* context, const float* dout,
                                  float* dq, float* dk, float* dv);
/* How many (query, key) pairs the forward attended over (for tests and statistics). */
HAX_C_API int64_t hax_context_pairs(const hax_context* context);

/* ---- The HAX branch of a Mamba mixer (layers/sparse_branch.h): xx_proj, LSH, key selection, gate loss ------------
 * attn (batch, seq_len, I) from xc (batch, seq_len, I), sequences all seq_len long. The caller applies E and the
 * silu(z) gate. Parameters (the checkpoint's names): xx_proj (2N, I); with key selection dx_proj_1/2 weight (2N, 2N)
 * and bias (2N), dx_proj_3 weight (1, 2N) and bias (1); lsh_projection (N, num_hash) (NULL without LSH). With
 * `training` and key selection the forward samples gate-loss candidates from noise_seed and returns the ranking loss
 * in *gate_loss (else 0). */
typedef struct {
  int batch, seq_len, channels, state; /* I, N */
  const char* sparse_arch;
  int total_keys, max_length, num_hash, semantics;
  int lsh_running_statistics, ks_running_normalization; /* causal-only options (hax_lsh_statistics, hax_ks_normalization) */
  const float* xx_proj;
  const float* scorer[6]; /* dx_proj_1.weight, .bias, dx_proj_2.weight, .bias, dx_proj_3.weight, .bias */
  const float* lsh_projection;
  const char* lsh_resample;  /* "never" (NULL), "training" or "every_forward": when H is redrawn from noise_seed */
  const char* paper_without; /* `paper` ablations: comma-separated ingredient names to turn off, or NULL */
} hax_branch_args;

HAX_C_API int hax_branch_forward(const hax_branch_args* args, const float* xc, int training, uint64_t noise_seed, float* attn,
                       double* gate_loss, hax_context** context);
/* dxc (batch, seq_len, I), dxx_proj, dscorer[6] written (NULL: not wanted); gate_weight scales the gate loss's
 * gradient into the scorer (the caller's d(objective)/d(gate_loss)). */
HAX_C_API int hax_branch_backward(const hax_context* context, const float* dattn, float gate_weight, float* dxc,
                        float* dxx_proj, float* const dscorer[6]);

HAX_C_API void hax_context_free(hax_context* context);

/* ---- Model configs ---------------------------------------------------------------------------------------------
 * The config.json at `path`, read and checked as hax reads it (unknown keys, bad values and inconsistent sizes
 * refused, with the file and key named in hax_last_error), as JSON text with every default filled in. Writes the
 * text and a NUL to out when it fits in capacity bytes; returns its length (without the NUL) either way, or -1. */
HAX_C_API int64_t hax_model_config_json(const char* path, char* out, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif /* HAX_C_H */
