"""hax's CPU kernels as PyTorch autograd functions with mamba_ssm's signatures and semantics:
selective_scan_fn, causal_conv1d_fn and mamba_chunk_scan_combined; and sparse_attention over context-dependent key
sets. Inputs may be any floating dtype (computed in float32 and cast back, as mamba_ssm does) and any strides (made
contiguous); they must be on the CPU."""
import ctypes

import torch
import torch.nn.functional as F

from hax import _capi
from hax.torch._tensors import check_tensor, f32, like, ptr, spec


def silu(x):
    """silu in float32 for the half types (PyTorch 1.13 has no CPU silu for float16), cast back."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return F.silu(x.float()).to(x.dtype)
    return F.silu(x)


def save_inputs(ctx, inputs):
    """Keeps the kernels' inputs through save_for_backward (absent ones as None), so that changing one in place
    before the backward is an error, as with PyTorch's own ops."""
    ctx.save_for_backward(*inputs)


# --------------------------------------------------------------------------------------------------------------
# selective_scan_fn

class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        batch, dim, L = u.shape
        N = A.shape[1]
        groups = 1 if B.dim() == 3 else B.shape[1]
        ctx.set_materialize_grads(False)
        originals = (u, delta, A, B, C, D, z, delta_bias)
        inputs = [f32(t) for t in originals]
        args = _scan_args(inputs, batch, dim, L, N, groups, delta_softplus)
        saved = torch.empty(_capi.lib().hax_selective_scan_saved_floats(ctypes.byref(args)), dtype=torch.float32)
        out = torch.empty(batch, dim, L, dtype=torch.float32)
        last_state = torch.empty(batch, dim, N, dtype=torch.float32)
        _capi.call("hax_selective_scan_forward", ctypes.byref(args), ptr(out), ptr(last_state), ptr(saved))
        save_inputs(ctx, inputs)
        ctx.saved, ctx.sizes = saved, (batch, dim, L, N, groups, delta_softplus)
        ctx.originals = [spec(t) for t in originals]
        return out.to(u.dtype), last_state.to(u.dtype)

    @staticmethod
    def backward(ctx, dout, dlast_state):
        batch, dim, L, N, groups, delta_softplus = ctx.sizes
        inputs = ctx.saved_tensors
        args = _scan_args(inputs, batch, dim, L, N, groups, delta_softplus)
        dout = torch.zeros(batch, dim, L) if dout is None else f32(dout)
        dlast_state = f32(dlast_state)  # kept in a name: a temporary's memory could go before the call
        grads = [None if t is None else torch.empty_like(t) for t in inputs]
        _capi.call("hax_selective_scan_backward", ctypes.byref(args), ptr(ctx.saved), ptr(dout), ptr(dlast_state),
                   *(ptr(g) for g in grads))
        return (*(like(g, t) for g, t in zip(grads, ctx.originals)), None)


def _scan_args(inputs, batch, dim, L, N, groups, delta_softplus):
    u, delta, A, B, C, D, z, delta_bias = inputs
    return _capi.ScanArgs(batch, dim, L, N, groups, int(bool(delta_softplus)), ptr(u), ptr(delta), ptr(A), ptr(B),
                          ptr(C), ptr(D), ptr(z), ptr(delta_bias))


def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                      return_last_state=False):
    """mamba_ssm's selective scan on hax's CPU kernel. u, delta, z: (batch, dim, L); A: (dim, N), all < 0; B, C:
    (batch, N, L) or (batch, G, N, L) with dim divisible by G; D, delta_bias: (dim,). With d = delta + delta_bias
    (softplus'ed when delta_softplus; it must be >= 0):
        h_t = exp(d_t A) h_{t-1} + d_t B_t u_t,   y_t = C_t . h_t + D u_t,   out = y * silu(z) (y without z).
    Returns out (batch, dim, L), and with return_last_state also the last state (batch, dim, N). Differentiable in
    every tensor argument, the last state included."""
    check_tensor(u, "u", 3, (None, None, None))
    batch, dim, L = u.shape
    check_tensor(delta, "delta", 3, (batch, dim, L))
    check_tensor(A, "A", 2, (dim, None))
    N = A.shape[1]
    check_tensor(B, "B", B.dim() if isinstance(B, torch.Tensor) and B.dim() in (3, 4) else 3)
    groups = 1 if B.dim() == 3 else B.shape[1]
    bc_shape = (batch, N, L) if B.dim() == 3 else (batch, groups, N, L)
    check_tensor(B, "B", len(bc_shape), bc_shape)
    check_tensor(C, "C", len(bc_shape), bc_shape)
    if groups < 1 or dim % groups:
        raise ValueError(f"B: dim {dim} must be divisible by the number of groups {groups}")
    check_tensor(D, "D", 1, (dim,), optional=True)
    check_tensor(z, "z", 3, (batch, dim, L), optional=True)
    check_tensor(delta_bias, "delta_bias", 1, (dim,), optional=True)
    out, last_state = _SelectiveScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return (out, last_state) if return_last_state else out


# --------------------------------------------------------------------------------------------------------------
# causal_conv1d_fn

class _CausalConv1d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        batch, dim, L = x.shape
        ctx.originals = [spec(t) for t in (x, weight, bias)]
        xs, ws, bs = f32(x), f32(weight.reshape(dim, -1)), f32(bias)
        out = torch.empty(batch, dim, L, dtype=torch.float32)
        _capi.call("hax_causal_conv1d_forward", batch, dim, L, ws.shape[1], ptr(xs), ptr(ws), ptr(bs), ptr(out))
        ctx.save_for_backward(xs, ws)
        ctx.has_bias = bias is not None
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, dout):
        xs, ws = ctx.saved_tensors
        x, weight, bias = ctx.originals
        batch, dim, L = xs.shape
        dx, dw = torch.empty_like(xs), torch.empty_like(ws)
        db = torch.empty(dim) if ctx.has_bias else None
        dout = f32(dout)
        _capi.call("hax_causal_conv1d_backward", batch, dim, L, ws.shape[1], ptr(xs), ptr(ws), ptr(dout), ptr(dx),
                   ptr(dw), ptr(db))
        return like(dx, x), like(dw, weight), like(db, bias)


def causal_conv1d_fn(x, weight, bias=None, activation=None, seq_idx=None):
    """The causal depthwise convolution of causal_conv1d: x (batch, dim, L), weight (dim, width) (or a Conv1d's
    (dim, 1, width)), bias (dim,), activation None, "silu" or "swish". out[c, t] = bias[c] + sum_k weight[c, k]
    x[c, t - width + 1 + k], zeros before the start."""
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"activation must be None, 'silu' or 'swish', got {activation!r}")
    if seq_idx is not None:
        raise NotImplementedError("causal_conv1d_fn: seq_idx is not supported by hax's CPU kernel")
    check_tensor(x, "x", 3)
    batch, dim, L = x.shape
    if isinstance(weight, torch.Tensor) and weight.dim() == 3:
        check_tensor(weight, "weight", 3, (dim, 1, None))
    else:
        check_tensor(weight, "weight", 2, (dim, None))
    check_tensor(bias, "bias", 1, (dim,), optional=True)
    out = _CausalConv1d.apply(x, weight, bias)
    return silu(out) if activation else out


# --------------------------------------------------------------------------------------------------------------
# mamba_chunk_scan_combined

class _ChunkScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, dt_bias, initial_states, chunk_size, dt_softplus):
        batch, L, H, P = x.shape
        G, N = B.shape[2], B.shape[3]
        ctx.set_materialize_grads(False)
        originals = (x, dt, A, B, C, D, dt_bias, initial_states)
        ctx.originals = [spec(t) for t in originals]
        inputs = [f32(t) for t in originals]
        args = _ssd_args(inputs, batch, L, H, P, G, N, chunk_size, dt_softplus)
        saved = torch.empty(_capi.lib().hax_ssd_saved_floats(ctypes.byref(args)), dtype=torch.float32)
        y = torch.empty(batch, L, H, P, dtype=torch.float32)
        final = torch.empty(batch, H, P, N, dtype=torch.float32)
        _capi.call("hax_ssd_forward", ctypes.byref(args), ptr(y), ptr(final), ptr(saved))
        save_inputs(ctx, inputs)
        ctx.saved, ctx.sizes = saved, (batch, L, H, P, G, N, chunk_size, dt_softplus)
        return y.to(x.dtype), final.to(x.dtype)

    @staticmethod
    def backward(ctx, dy, dfinal):
        batch, L, H, P, G, N, chunk_size, dt_softplus = ctx.sizes
        inputs = ctx.saved_tensors
        args = _ssd_args(inputs, *ctx.sizes)
        dy = torch.zeros(batch, L, H, P) if dy is None else f32(dy)
        dfinal = f32(dfinal)
        grads = [None if t is None else torch.empty_like(t) for t in inputs]
        _capi.call("hax_ssd_backward", ctypes.byref(args), ptr(ctx.saved), ptr(dy), ptr(dfinal),
                   *(ptr(g) for g in grads))
        return (*(like(g, t) for g, t in zip(grads, ctx.originals)), None, None)


def _ssd_args(inputs, batch, L, H, P, G, N, chunk_size, dt_softplus):
    x, dt, A, B, C, D, dt_bias, initial_states = inputs
    return _capi.SsdArgs(batch, L, H, P, G, N, chunk_size, int(bool(dt_softplus)), ptr(x), ptr(dt), ptr(A), ptr(B),
                         ptr(C), ptr(D), ptr(dt_bias), ptr(initial_states))


def mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
                              seq_idx=None, dt_softplus=False, dt_limit=(0.0, float("inf")),
                              return_final_states=False):
    """mamba_ssm's Mamba2 SSD scan on hax's CPU kernel. x (batch, L, H, P); dt (batch, L, H); A (H,), all < 0; B, C
    (batch, L, G, N) with H divisible by G; D (H,) or (H, P); z (batch, L, H, P); dt_bias (H,); initial_states
    (batch, H, P, N). With d = dt + dt_bias (softplus'ed when dt_softplus; it must be >= 0), per head h of group g:
        S_t = exp(d_t A_h) S_{t-1} + d_t x_t (outer) B_t[g],   y_t = S_t C_t[g] + D x_t,   out = y * silu(z).
    chunk_size only chooses how the kernel evaluates it (any value gives the same result up to rounding). Returns
    out (batch, L, H, P), and with return_final_states also the final states (batch, H, P, N)."""
    if seq_idx is not None:
        raise NotImplementedError("mamba_chunk_scan_combined: seq_idx is not supported by hax's CPU kernel")
    if tuple(dt_limit) != (0.0, float("inf")):
        raise NotImplementedError(f"mamba_chunk_scan_combined: dt_limit must be the default (0, inf), got {dt_limit}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    check_tensor(x, "x", 4)
    batch, L, H, P = x.shape
    check_tensor(dt, "dt", 3, (batch, L, H))
    check_tensor(A, "A", 1, (H,))
    check_tensor(B, "B", 4, (batch, L, None, None))
    G, N = B.shape[2], B.shape[3]
    if H % G:
        raise ValueError(f"B: the number of heads {H} must be divisible by the number of groups {G}")
    check_tensor(C, "C", 4, (batch, L, G, N))
    if D is not None:
        check_tensor(D, "D", D.dim() if isinstance(D, torch.Tensor) and D.dim() in (1, 2) else 1,
                     (H,) if not isinstance(D, torch.Tensor) or D.dim() != 2 else (H, P))
    check_tensor(z, "z", 4, (batch, L, H, P), optional=True)
    check_tensor(dt_bias, "dt_bias", 1, (H,), optional=True)
    check_tensor(initial_states, "initial_states", 4, (batch, H, P, N), optional=True)
    head_D = D if D is not None and D.dim() == 1 else None
    y, final = _ChunkScan.apply(x, dt, A, B, C, head_D, dt_bias, initial_states, chunk_size, dt_softplus)
    if D is not None and D.dim() == 2:  # a D per channel: the skip term outside the kernel
        y = y + x * D
    if z is not None:
        y = y * silu(z)
    return (y, final) if return_final_states else y


# --------------------------------------------------------------------------------------------------------------
# sparse_attention

SEMANTICS = {"causal": 0, "paper": 1}


def semantics_code(semantics):
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be 'causal' or 'paper', got {semantics!r}")
    return SEMANTICS[semantics]


class _SparseAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, key_scores, lsh_projection, settings):
        ctx.originals = [spec(t) for t in (q, k, v)]
        inputs = [f32(t) for t in (q, k, v, key_scores, lsh_projection)]
        args = _sparse_args(inputs, settings)
        out = torch.empty(q.shape[0], q.shape[1], v.shape[2], dtype=torch.float32)
        context = _capi.Context()
        _capi.call("hax_sparse_attention_forward", ctypes.byref(args), ptr(out), ctypes.byref(context.handle))
        save_inputs(ctx, inputs)
        ctx.settings, ctx.context = settings, context
        return out.to(v.dtype)

    @staticmethod
    def backward(ctx, dout):
        inputs = ctx.saved_tensors
        args = _sparse_args(inputs, ctx.settings)
        q, k, v = inputs[:3]
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        dout = f32(dout)
        _capi.call("hax_sparse_attention_backward", ctypes.byref(args), ctx.context.handle, ptr(dout), ptr(dq),
                   ptr(dk), ptr(dv))
        return (*(like(g, t) for g, t in zip((dq, dk, dv), ctx.originals)), None, None, None)


def _sparse_args(inputs, settings):
    q, k, v, key_scores, lsh_projection = inputs
    arch, total_keys, max_length, semantics = settings
    num_hash = 0 if lsh_projection is None else lsh_projection.shape[1]
    return _capi.SparseArgs(q.shape[0], q.shape[1], q.shape[2], v.shape[2], arch.encode(), total_keys, max_length,
                            semantics, ptr(q), ptr(k), ptr(v), ptr(key_scores), ptr(lsh_projection), num_hash)


def sparse_attention(q, k, v, sparse_arch, *, key_scores=None, lsh_projection=None, semantics="causal",
                     total_keys=64, max_length=2048):
    """Softmax attention of each query over its own key set: q, k (batch, T, N), v (batch, T, I) -> (batch, T, I).
    Query t attends to the union of the patterns of sparse_arch ("+"-joined: sliding_window, sink, dilated,
    sign_bin_lsh, argmax_lsh, key_selection, full), each with w = total_keys // (number of patterns) keys, with
    weights softmax(q_t . k_s / sqrt(N)). The LSH patterns bucket q and k by their projections on lsh_projection
    (N, num_hash); key_selection keeps the w best key_scores (batch, T) so far. The key sets are discrete: gradients
    reach q, k and v, not key_scores. semantics: "causal" (an empty key set gives 0) or "paper" (the paper's
    whole-sequence statistics; an empty set averages all values)."""
    check_tensor(q, "q", 3)
    batch, T, N = q.shape
    check_tensor(k, "k", 3, (batch, T, N))
    check_tensor(v, "v", 3, (batch, T, None))
    check_tensor(key_scores, "key_scores", 2, (batch, T), optional=True)
    check_tensor(lsh_projection, "lsh_projection", 2, (N, None), optional=True)
    if not isinstance(sparse_arch, str) or not sparse_arch:
        raise ValueError(f"sparse_arch must be a non-empty string such as 'sign_bin_lsh+key_selection', "
                         f"got {sparse_arch!r}")
    settings = (sparse_arch, int(total_keys), int(max_length), semantics_code(semantics))
    return _SparseAttention.apply(q, k, v, key_scores, lsh_projection, settings)
