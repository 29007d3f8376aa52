#!/usr/bin/python3
"""The PyTorch baseline of `hax bench train-step`: one training step (forward, backward, AdamW) of the Mamba-1
model of reference.md §3.1-3.4 / §5.1, written the straightforward way the reference runs without the mamba_ssm CUDA
kernels: fp32 on the CPU, every tensor padded to the full length T, and the selective scan as a Python loop over time
(exp(ΔA) and ΔBx for all steps at once, then one state update and one C contraction per step, like the
`slow_forward` fallback of the reference's Mamba layer). It shares no code with hax.

The initialization is not the reference's (matrices and the embedding are Normal(0, 0.1), A_log = log(1..N),
D = 1, dt bias from dt in [1e-3, 0.1]); the shapes are the config's, which is all the timing depends on.

With --sparse-arch it is the baseline of a HAX training step instead: the enhanced mixer of reference.md §3.3 with the
sparse attention of §3.5-3.9 computed the way the paper's code does it, on dense (B, T, T) tensors: every pattern's
allowed set as a T x T boolean mask (sign-bin LSH with the whole-sequence mean and time-axis L2 normalization and a
fresh Gaussian H every forward, the "w most recent" rule by a flipped cumulative count; key selection's cumulative
top-k by a top-k over each row of a (B, T, T) score matrix masked above the diagonal), their union, a dense score
matrix Q K^T with the additive finfo.min mask, the softmax over all T keys, and the gate (ranking) loss on w sampled
positions with weight 0.1. Still fp32 and the Python-loop scan. Without --sparse-arch nothing changes.

The config's "model_type" picks the model, so `hax bench train-step` calls this one script for every model:
- "mamba" (the default): the above.
- "mamba2" (reference.md §4, §5.2): the Mamba2 mixer with its SSD in the chunked matrix-product form a CPU PyTorch
  user runs (mamba_ssm's `ssd_minimal_discrete`, as in transformers' Mamba2 `torch_forward`): segment sums, an
  intra-chunk einsum, state passing between chunks. The chunk is --chunk-size, by default 64, not the config's
  chunk_size (256): the chunk is only an evaluation order (same math), and on the CPU 64 is the fastest (one step of
  mamba2.json at 4 x 1057, one thread: 0.6 s at 64, 0.65 s at 32, 1.3 s at 128, 5 s at 256), so the baseline is
  not slowed by a GPU kernel's choice.
  With --sparse-arch the same dense-mask sparse attention as above, on x (values) with N = state_size, added before
  the gated RMSNorm.
- "samba" (reference.md §5.3): Mamba-1 mixers (the Python-loop scan above) and, at the config's attn.layers,
  multi-head attention with RoPE and a dense (B, H, T, T) sliding-window mask, each block followed by a SwiGLU MLP.

usage: mamba_torch_step.py [--config FILE] [--batch FILE] [--batch-size B] [--seq-len T] [--steps S]
                           [--warmup-steps W] [--threads N] [--seed S]
                           [--sparse-arch A [--sparse-keys K] [--num-hash H] [--data-max-length L]]
                           [--chunk-size C]
  --batch FILE: int32 little-endian array (3, B, T): input ids, next-token labels, scored flags (0/1), padded to T.
                Without it the batch is random tokens with the second half of every sequence scored.
Prints one JSON object on stdout (seconds per timed step and their split). Exits with status 77 when torch or numpy
is missing, so the caller can report that instead of failing.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

MISSING_MODULE = 77
GATE_WEIGHT = 0.1
FASTEST_CPU_CHUNK = 64  # mamba2's SSD chunk (see the docstring)
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"mamba_torch_step.py: {e}", file=sys.stderr)
    sys.exit(MISSING_MODULE)


def normal(*shape, std=0.1):
    return torch.nn.Parameter(torch.randn(*shape) * std)


def rmsnorm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


class Mixer(torch.nn.Module):
    """One Mamba-1 mixer on a padded batch: u (B, T, D) -> (B, T, D)."""

    def __init__(self, cfg):
        super().__init__()
        D, I, N = cfg["hidden_size"], cfg["intermediate_size"], cfg["state_size"]
        R, K = cfg["time_step_rank"], cfg["conv_kernel"]
        self.I, self.N, self.R, self.K = I, N, R, K
        self.in_proj = normal(2 * I, D)
        self.in_proj_b = torch.nn.Parameter(torch.zeros(2 * I)) if cfg.get("use_bias", False) else None
        self.conv_w = torch.nn.Parameter(torch.empty(I, 1, K).uniform_(-0.5, 0.5))
        self.conv_b = torch.nn.Parameter(torch.empty(I).uniform_(-0.5, 0.5)) if cfg.get("use_conv_bias", True) else None
        self.x_proj = normal(R + 2 * N, I)
        self.dt_proj = normal(I, R)
        # dt_proj's bias is softplus^-1 of a dt log-uniform in [1e-3, 0.1], so Δ has realistic magnitudes: the state
        # then decays as in training (a state that underflows to denormals would time the FPU's slow path instead).
        self.dt_bias = dt_bias(I)
        self.A_log = torch.nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(I, 1))
        self.D = torch.nn.Parameter(torch.ones(I))
        self.out_proj = normal(D, I)
        self.out_proj_b = torch.nn.Parameter(torch.zeros(D)) if cfg.get("use_bias", False) else None
        self.sparse = SparseAttention(cfg) if cfg.get("sparse_arch") else None
        if self.sparse is not None:
            self.xx_proj = normal(2 * N, I)               # K first, then Q (reference.md §3.3)
            self.E = torch.nn.Parameter(torch.ones(I))

    def scan(self, delta, A, Bm, Cm, xc):
        """The selective scan, one time step per loop iteration. delta, xc (B, T, I); Bm, Cm (B, T, N)."""
        decay = torch.exp(delta[..., None] * A)                  # (B, T, I, N)
        drive = (delta * xc)[..., None] * Bm[:, :, None, :]      # (B, T, I, N); Δx first: one big product, not two
        h = torch.zeros(delta.shape[0], self.I, self.N)
        ys = []
        # unbind, not decay[:, t]: one backward node for all steps (T index nodes would each scatter into a full-size
        # zero gradient, which is quadratic in T and would make the baseline unfairly slow).
        for a_t, b_t, c_t in zip(decay.unbind(1), drive.unbind(1), Cm.unbind(1)):
            h = a_t * h + b_t                                # (B, I, N)
            ys.append(torch.matmul(h, c_t[:, :, None])[..., 0])
        return torch.stack(ys, dim=1)                        # (B, T, I)

    def forward(self, u, mask):
        I, N, R, K = self.I, self.N, self.R, self.K
        x, z = F.linear(u, self.in_proj, self.in_proj_b).split([I, I], dim=-1)
        x = (x * mask[..., None]).transpose(1, 2)            # (B, I, T): channels first for the depthwise conv
        xc = F.conv1d(F.pad(x, (K - 1, 0)), self.conv_w, self.conv_b, groups=I)  # causal: K-1 zeros in front
        xc = F.silu(xc).transpose(1, 2) * mask[..., None]    # (B, T, I)
        dtl, Bm, Cm = F.linear(xc, self.x_proj).split([R, N, N], dim=-1)
        delta = F.softplus(F.linear(dtl, self.dt_proj, self.dt_bias))
        y = self.scan(delta, -torch.exp(self.A_log), Bm, Cm, xc)
        y = (y + xc * self.D) * F.silu(z)
        gate = None
        if self.sparse is not None:
            K2, Q2 = F.linear(xc, self.xx_proj).split([N, N], dim=-1)
            attn, gate = self.sparse(Q2, K2 / math.sqrt(N), xc, mask.bool())
            y = y + (attn * self.E) * F.silu(z)
        return F.linear(y, self.out_proj, self.out_proj_b), gate


class SparseAttention(torch.nn.Module):
    """The reference's sparse attention (reference.md §3.5-3.9) on a padded batch, with dense (B, T, T) masks."""

    def __init__(self, cfg):
        super().__init__()
        self.patterns = cfg["sparse_arch"].split("+")
        self.w = cfg.get("sparse_keys", 64) // len(self.patterns)
        self.dilation = cfg.get("data_max_length", 2048) // self.w
        self.N, self.num_hash = cfg["state_size"], cfg.get("num_hash", 8)
        if "key_selection" in self.patterns:
            F2 = 2 * self.N
            self.dx_proj_1, self.dx_proj_2 = torch.nn.Linear(F2, F2), torch.nn.Linear(F2, F2)
            self.dx_proj_3 = torch.nn.Linear(F2, 1)
            for layer in (self.dx_proj_1, self.dx_proj_2, self.dx_proj_3):
                torch.nn.init.normal_(layer.weight, std=0.1)
                torch.nn.init.zeros_(layer.bias)

    def lsh_buckets(self, Q2, K2, argmax):
        # Whole-sequence statistics per feature (time axis, padding included), a fresh H every forward.
        NQ = F.normalize(Q2 - Q2.mean(1, keepdim=True), dim=1)
        NK = F.normalize(K2 - K2.mean(1, keepdim=True), dim=1)
        H = torch.randn(self.N, self.num_hash)
        pq, pk = NQ @ H, NK @ H
        if argmax:
            return pq.argmax(-1), pk.argmax(-1)
        weights = 2 ** torch.arange(self.num_hash)
        return ((pq > 0).long() * weights).sum(-1), ((pk > 0).long() * weights).sum(-1)

    def key_scores(self, Q2, K2):
        TQ = F.normalize(torch.cumsum(Q2.detach(), 1), dim=1)  # normalized over time
        f = torch.cat([K2.detach(), TQ], -1)
        f = F.relu(self.dx_proj_1(f))
        f = F.relu(self.dx_proj_2(f))
        return self.dx_proj_3(f)[..., 0]                        # (B, T)

    def forward(self, Q2, K2, V, mask):
        B, T, _ = Q2.shape
        w = self.w
        t = torch.arange(T)
        causal = (t[None, :] <= t[:, None]).repeat(B, 1, 1)    # (B, T, T): [b, query t, key s]
        allowed = torch.zeros(B, T, T, dtype=torch.bool)
        score = None
        for name in self.patterns:
            if name == "full":
                m = causal
            elif name == "sliding_window":
                m = causal & (t[None, :] > t[:, None] - w)
            elif name == "sink":
                m = causal & (t[None, :] < w)
            elif name == "dilated":
                m = causal & (t[None, :] % self.dilation == self.dilation - 1)
            elif name in ("sign_bin_lsh", "argmax_lsh"):
                bq, bk = self.lsh_buckets(Q2.detach(), K2.detach(), name == "argmax_lsh")
                match = (bq[:, :, None] == bk[:, None, :]) & causal
                # the w most recent matches: a count of matches at s' >= s, from the right
                count = torch.flip(torch.cumsum(torch.flip(match, [2]), 2, dtype=torch.int32), [2])
                m = match & (count <= w)
            elif name == "key_selection":
                score = self.key_scores(Q2, K2)
                rows = score.detach()[:, None, :].expand(B, T, T).masked_fill(~causal, float("-inf"))
                top = rows.topk(w, dim=-1).indices              # cumulative top-k, one row per query
                m = torch.zeros(B, T, T, dtype=torch.bool).scatter_(-1, top, True) & causal
            else:
                raise SystemExit(f"mamba_torch_step.py: unknown sparse pattern {name!r}")
            allowed = allowed | m
        scores = Q2 @ K2.transpose(1, 2)                        # (B, T, T)
        bias = torch.zeros((), dtype=scores.dtype).masked_fill(torch.tensor(True), torch.finfo(scores.dtype).min)
        masked = scores + torch.where(allowed, torch.zeros((), dtype=scores.dtype), bias)
        attn = torch.softmax(masked, -1) @ V                    # an empty row is uniform over all T
        gate = self.gate_loss(Q2, K2, score, mask) if self.training and score is not None else None
        return attn, gate

    def gate_loss(self, Q2, K2, score, mask):
        B, T, _ = Q2.shape
        k = self.w
        noise = torch.rand(B, T).masked_fill(~mask, -1.0)
        sel = noise.topk(k, dim=-1).indices                     # (B, k) random non-PAD positions
        pred = score.gather(1, sel)
        with torch.no_grad():
            keys = K2.gather(1, sel[..., None].expand(B, k, self.N))
            t = torch.arange(T)
            a = torch.sigmoid(Q2 @ keys.transpose(1, 2)) * (t[None, :, None] >= sel[:, None, :])  # (B, T, k)
            target = a.sum(1)
            y = ((target[:, :, None] > target[:, None, :]).float() + (target[:, :, None] >= target[:, None, :]).float()) / 2
        x = pred[:, :, None] - pred[:, None, :]
        return F.binary_cross_entropy_with_logits(x, y)         # mean over B * k * k


def dt_bias(n):
    """softplus^-1 of dt log-uniform in [1e-3, 0.1]: realistic decay rates (see Mixer)."""
    dt = torch.exp(torch.rand(n) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    return torch.nn.Parameter(dt + torch.log(-torch.expm1(-dt)))


def segsum(x):
    """(..., T) -> (..., T, T): [i, j] = x[j+1] + ... + x[i] for j <= i, -inf above the diagonal (the stable form:
    masked cumulative sums, no difference of two cumsums)."""
    T = x.shape[-1]
    x = x[..., None].expand(*x.shape, T)
    x = x.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(-1), 0)
    return torch.cumsum(x, dim=-2).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(0), -math.inf)


def ssd_chunked(X, A, Bm, Cm, chunk):
    """mamba_ssm's `ssd_minimal_discrete`: X (b, T, h, p) already times Δ, A (b, T, h) already times Δ, Bm and Cm
    (b, T, h, n) per head. Returns y (b, T, h, p) of S_t = exp(A_t) S_{t-1} + X_t (x) B_t, y_t = S_t C_t. T is
    right-padded to a multiple of chunk with X = A = 0 (no input, no decay), which the causal outputs never see."""
    b, T, h, p = X.shape
    pad = -T % chunk
    if pad:
        X, A, Bm, Cm = (F.pad(M, (0, 0) * (M.dim() - 2) + (0, pad)) for M in (X, A, Bm, Cm))
    c = (T + pad) // chunk
    X, Bm, Cm = (M.reshape(b, c, chunk, h, -1) for M in (X, Bm, Cm))
    A = A.reshape(b, c, chunk, h).permute(0, 3, 1, 2)                    # (b, h, c, l)
    A_cumsum = torch.cumsum(A, dim=-1)
    # 1. within each chunk: the quadratic (masked, decayed) "attention" form
    L = torch.exp(segsum(A))                                             # (b, h, c, l, s)
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", Cm, Bm, L, X)
    # 2. each chunk's final state from its own inputs
    decay_states = torch.exp(A_cumsum[..., -1:] - A_cumsum)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", Bm, decay_states, X)
    # 3. pass the states from chunk to chunk (a c x c recurrence, also as a segment-sum matrix)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cumsum[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)[:, :-1]
    # 4. each chunk's incoming state, read out by C with the decay since the chunk's start
    Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", Cm, states, torch.exp(A_cumsum))
    return (Y_diag + Y_off).reshape(b, c * chunk, h, p)[:, :T]


class Mamba2Mixer(torch.nn.Module):
    """One Mamba2 mixer (reference.md §4.3) on a padded batch: u (B, T, D) -> (B, T, D), chunked SSD."""

    def __init__(self, cfg, chunk):
        super().__init__()
        D = cfg["hidden_size"]
        I = cfg.get("intermediate_size") or cfg["expand"] * D
        H, P, G, N, K = cfg["num_heads"], cfg["head_dim"], cfg.get("n_groups", 1), cfg["state_size"], cfg["conv_kernel"]
        self.I, self.H, self.P, self.G, self.N, self.K, self.chunk = I, H, P, G, N, K, chunk
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)
        conv_dim = I + 2 * G * N
        self.in_proj = normal(I + conv_dim + H, D)                  # z | xBC | dt
        self.conv_w = normal(conv_dim, 1, K)
        self.conv_b = torch.nn.Parameter(torch.zeros(conv_dim))
        self.dt_bias = dt_bias(H)
        self.A_log = torch.nn.Parameter(torch.log(torch.arange(1, H + 1, dtype=torch.float32)))
        self.D = torch.nn.Parameter(torch.ones(H))
        self.norm_w = torch.nn.Parameter(torch.ones(I))
        self.out_proj = normal(D, I)
        self.sparse = SparseAttention(cfg) if cfg.get("sparse_arch") else None
        if self.sparse is not None:
            self.xx_proj = normal(2 * N, I)
            self.E = torch.nn.Parameter(torch.ones(I))

    def forward(self, u, mask):
        I, H, P, G, N, K = self.I, self.H, self.P, self.G, self.N, self.K
        Bt, T, _ = u.shape
        z, xBC, dt = F.linear(u * mask[..., None], self.in_proj).split([I, I + 2 * G * N, H], dim=-1)
        xBC = F.conv1d(F.pad(xBC.transpose(1, 2), (K - 1, 0)), self.conv_w, self.conv_b, groups=xBC.shape[-1])
        xBC = F.silu(xBC).transpose(1, 2) * mask[..., None]
        x, Bm, Cm = xBC.split([I, G * N, G * N], dim=-1)
        delta = F.softplus(dt + self.dt_bias)                      # (B, T, H)
        xh = x.reshape(Bt, T, H, P)
        Bh, Ch = (M.reshape(Bt, T, G, N).repeat_interleave(H // G, dim=2) for M in (Bm, Cm))
        y = ssd_chunked(xh * delta[..., None], -torch.exp(self.A_log) * delta, Bh, Ch, self.chunk)
        y = (y + xh * self.D[:, None]).reshape(Bt, T, I)
        gate = None
        if self.sparse is not None:
            K2, Q2 = F.linear(x, self.xx_proj).split([N, N], dim=-1)
            attn, gate = self.sparse(Q2, K2 / math.sqrt(N), x, mask.bool())
            y = y + attn * self.E
        return F.linear(rmsnorm(y * F.silu(z), self.norm_w, self.eps), self.out_proj), gate


def rope(x, theta):
    """Non-interleaved rotary embedding of x (B, H, T, P) at positions 0..T-1 (pairs (d, d + P/2))."""
    T, P = x.shape[-2], x.shape[-1]
    angle = torch.arange(T, dtype=x.dtype)[:, None] / theta ** (torch.arange(0, P, 2, dtype=x.dtype) / P)
    cos, sin = torch.cos(angle), torch.sin(angle)
    x1, x2 = x[..., :P // 2], x[..., P // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class WindowAttention(torch.nn.Module):
    """Samba's attention layer: MHA with RoPE, causal sliding window as a dense (T, T) additive mask."""

    def __init__(self, cfg):
        super().__init__()
        D, a = cfg["hidden_size"], cfg["attn"]
        self.H = a["num_heads"]
        self.Hkv = a.get("num_kv_heads") or self.H
        self.P, self.theta, self.window = D // self.H, a.get("rope_theta", 10000.0), a.get("window_size")
        self.q_proj, self.o_proj = normal(D, D), normal(D, D)
        self.k_proj, self.v_proj = normal(self.Hkv * self.P, D), normal(self.Hkv * self.P, D)

    def forward(self, u, mask):
        Bt, T, _ = u.shape
        heads = lambda w, n: F.linear(u, w).reshape(Bt, T, n, self.P).transpose(1, 2)   # (B, n, T, P)
        q, k, v = rope(heads(self.q_proj, self.H), self.theta), rope(heads(self.k_proj, self.Hkv), self.theta), \
            heads(self.v_proj, self.Hkv)
        k, v = (M.repeat_interleave(self.H // self.Hkv, dim=1) for M in (k, v))
        t = torch.arange(T)
        allowed = t[None, :] <= t[:, None]
        if self.window:
            allowed = allowed & (t[None, :] > t[:, None] - self.window)
        bias = torch.zeros(T, T).masked_fill(~allowed, -math.inf)   # PAD keys are trailing: causality hides them
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.P) + bias
        o = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(Bt, T, self.H * self.P)
        return F.linear(o, self.o_proj), None


class SwiGLU(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D = cfg["hidden_size"]
        width = 256 * math.ceil(int(D * cfg.get("hidden_ratio", 4) * 2 / 3) / 256)   # fla's GatedMLP
        self.gate_proj, self.up_proj, self.down_proj = normal(width, D), normal(width, D), normal(D, width)

    def forward(self, x):
        return F.linear(F.silu(F.linear(x, self.gate_proj)) * F.linear(x, self.up_proj), self.down_proj)


class Model(torch.nn.Module):
    def __init__(self, cfg, chunk=0):
        super().__init__()
        D, L = cfg["hidden_size"], cfg["num_hidden_layers"]
        kind = cfg.get("model_type", "mamba")
        self.eps = cfg.get("norm_eps", cfg.get("layer_norm_epsilon", 1e-5))
        self.embedding = normal(cfg["vocab_size"], D)
        self.norms = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(D)) for _ in range(L)])
        if kind == "mamba":
            mixers = [Mixer(cfg) for _ in range(L)]
        elif kind == "mamba2":
            mixers = [Mamba2Mixer(cfg, chunk or FASTEST_CPU_CHUNK) for _ in range(L)]
        elif kind == "samba":
            attn_layers = set(cfg["attn"]["layers"])
            mixers = [WindowAttention(cfg) if l in attn_layers else Mixer(cfg) for l in range(L)]
        else:
            raise SystemExit(f"mamba_torch_step.py: unknown model_type {kind!r} (supported: mamba, mamba2, samba)")
        self.mixers = torch.nn.ModuleList(mixers)
        # Samba's blocks end with an MLP on their own pre-norm residual branch; the Mamba models have none.
        self.mlp_norms = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(D)) for _ in range(L)]) \
            if kind == "samba" else None
        self.mlps = torch.nn.ModuleList([SwiGLU(cfg) for _ in range(L)]) if kind == "samba" else None
        self.norm_f = torch.nn.Parameter(torch.ones(D))

    def loss(self, inputs, labels, scored, mask):
        h = self.embedding[inputs]
        gates = []
        for l, (norm, mixer) in enumerate(zip(self.norms, self.mixers)):
            out, gate = mixer(rmsnorm(h, norm, self.eps), mask)
            h = h + out
            if self.mlps is not None:
                h = h + self.mlps[l](rmsnorm(h, self.mlp_norms[l], self.eps))
            if gate is not None:
                gates.append(gate)
        logits = rmsnorm(h, self.norm_f, self.eps) @ self.embedding.T   # tied output layer, every position
        loss = F.cross_entropy(logits[scored], labels[scored])           # mean over the scored positions
        return loss + GATE_WEIGHT * torch.stack(gates).sum() if gates else loss


def load_batch(args, cfg, pad_id):
    if args.batch:
        raw = np.fromfile(args.batch, dtype="<i4")
        expected = 3 * args.batch_size * args.seq_len
        if raw.size != expected:
            sys.exit(f"mamba_torch_step.py: {args.batch} holds {raw.size} int32, expected 3 x {args.batch_size} x "
                     f"{args.seq_len} = {expected}")
        inputs, labels, scored = torch.from_numpy(raw.reshape(3, args.batch_size, args.seq_len).astype(np.int64))
    else:
        inputs = torch.randint(10, cfg["vocab_size"], (args.batch_size, args.seq_len))
        labels = torch.randint(10, cfg["vocab_size"], (args.batch_size, args.seq_len))
        scored = torch.zeros_like(inputs)
        scored[:, args.seq_len // 2:] = 1
    mask = (inputs != pad_id).float()                                     # the attention mask: only padding
    return inputs, labels, scored.bool(), mask


def timed_step(model, optimizer, batch):
    cpu0, t0 = time.process_time(), time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss = model.loss(*batch)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    optimizer.step()
    t3 = time.perf_counter()
    return {"seconds": t3 - t0, "forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2,
            "cpu_seconds": time.process_time() - cpu0, "loss": loss.item()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/mamba_double_size.json")
    p.add_argument("--batch")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=1057)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sparse-arch", help="HAX: the reference's sparse attention in every mixer (dense masks)")
    p.add_argument("--sparse-keys", type=int, default=64)
    p.add_argument("--num-hash", type=int, default=8)
    p.add_argument("--data-max-length", type=int, default=2048)
    p.add_argument("--chunk-size", type=int, default=0, help=f"mamba2: the SSD chunk (default {FASTEST_CPU_CHUNK})")
    args = p.parse_args()
    cfg = json.load(open(args.config))
    if args.sparse_arch:
        cfg.update(sparse_arch=args.sparse_arch, sparse_keys=args.sparse_keys, num_hash=args.num_hash,
                   data_max_length=args.data_max_length)
    threads = args.threads if args.threads > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    model = Model(cfg, args.chunk_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    batch = load_batch(args, cfg, cfg.get("pad_token_id", 3))
    for _ in range(args.warmup_steps):
        timed_step(model, optimizer, batch)
    steps = [timed_step(model, optimizer, batch) for _ in range(args.steps)]
    seconds = [s["seconds"] for s in steps]
    kind = cfg.get("model_type", "mamba")
    implementation = "PyTorch eager, fp32, padded batch, " + {
        "mamba": "Python-loop selective scan",
        "mamba2": f"chunked SSD (ssd_minimal_discrete, chunk {model.mixers[0].chunk if kind == 'mamba2' else 0})",
        "samba": "Python-loop selective scan, RoPE attention with a dense (T, T) sliding-window mask, SwiGLU MLP",
    }[kind]
    if args.sparse_arch:
        implementation += (f", sparse attention {args.sparse_arch} as the reference computes it: dense (B, T, T) "
                           "masks, LSH with whole-sequence statistics and a fresh H per forward, dense cumulative "
                           "top-k, softmax over all T, gate loss x0.1")
    print(json.dumps({
        "implementation": implementation,
        "model_type": kind, "sparse_arch": args.sparse_arch or "",
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "seq_len": args.seq_len,
        "parameters": sum(t.numel() for t in model.parameters()),
        "warmup_steps": args.warmup_steps, "steps": steps,
        "median_seconds": statistics.median(seconds), "min_seconds": min(seconds),
    }))


if __name__ == "__main__":
    main()
