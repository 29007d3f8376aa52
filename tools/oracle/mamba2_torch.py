#!/usr/bin/python3
"""An independent float64 PyTorch oracle of the hax Mamba2 model (reference.md §4, §5.2) and of its sparse-attention
variants (the same sparse branch as Mamba-1's, reference.md §4.3, with the two semantics of semantics.md). It shares
no code with hax. The SSD is a plain sequential recurrence over time, one (P x N) state per head, so the oracle does
not depend on any chunked evaluation order (the chunks are only a way to compute the same thing, reference.md §4.4).

usage: mamba2_torch.py CHECKPOINT_DIR BATCH_FILE OUT_DIR [--padded-length T] [--gate-candidates FILE]
  exactly mamba_torch.py's command line and outputs (see there); mamba_torch.py runs this model too when config.json
  says "model_type": "mamba2".
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mamba_torch as mt  # noqa: E402


def dims(cfg):
    """(I, H, P, G, N, K): inner width, heads, head size, groups, state size, conv kernel."""
    I = cfg.get("intermediate_size") or cfg["expand"] * cfg["hidden_size"]
    H, P = cfg["num_heads"], cfg["head_dim"]
    if H * P != I:
        raise SystemExit(f"mamba2: num_heads {H} x head_dim {P} != inner size {I}")
    return I, H, P, cfg.get("n_groups", 1), cfg["state_size"], cfg["conv_kernel"]


def ssd_sequential(x, delta, A, Bm, Cm):
    """The SSD recurrence, one step at a time. x (T, H, P); delta (T, H); A (H); Bm, Cm (T, G, N), head h reading
    group h // (H / G). Returns y (T, H, P) without the D skip: S_t = exp(delta_t A) S_{t-1} + delta_t x_t (x) B_t,
    y_t = S_t C_t."""
    T, H, P = x.shape
    G, N = Bm.shape[1], Bm.shape[2]
    Bh, Ch = (M.repeat_interleave(H // G, dim=1) for M in (Bm, Cm))  # (T, H, N)
    S = torch.zeros(H, P, N, dtype=x.dtype)
    ys = []
    for t in range(T):
        S = torch.exp(delta[t] * A)[:, None, None] * S + (delta[t, :, None] * x[t])[:, :, None] * Bh[t][:, None, :]
        ys.append(S @ Ch[t][:, :, None])
    return torch.stack(ys)[..., 0]


def gated_rmsnorm(y, z, weight, eps):
    """norm_before_gate=False, one group over all I channels: the gate first, then the RMS of the gated value."""
    return mt.rmsnorm(y * F.silu(z), weight, eps)


def mixer(u, p, cfg, padded_length=0, candidates=None):
    """One Mamba2 mixer over one sequence u (T, D): the output, and the gate terms (or None)."""
    I, H, P, G, N, K = dims(cfg)
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    T = u.shape[0]
    proj = u @ p["in_proj.weight"].T
    if "in_proj.bias" in p:
        proj = proj + p["in_proj.bias"]
    z, xBC, dt = proj.split([I, I + 2 * G * N, H], dim=-1)
    conv_dim = xBC.shape[1]
    xBC = F.pad(xBC.T.unsqueeze(0), (K - 1, 0))  # causal: K-1 zeros before t = 0
    xBC = F.silu(F.conv1d(xBC, p["conv1d.weight"], p.get("conv1d.bias"), groups=conv_dim)[0].T)
    x, Bm, Cm = xBC.split([I, G * N, G * N], dim=-1)
    delta = F.softplus(dt + p["dt_bias"])  # threshold 20, no time_step_limit clamp (reference.md §4.4)
    xh = x.reshape(T, H, P)
    y = ssd_sequential(xh, delta, -torch.exp(p["A_log"]), Bm.reshape(T, G, N), Cm.reshape(T, G, N))
    y = (y + p["D"][:, None] * xh).reshape(T, I)
    gate = None
    if cfg.get("sparse_arch"):
        # Values are x, the I channels of the conv output; Q/K come from xx_proj of the same x (N = state_size).
        attn, gate = mt.sparse_branch(x, p, cfg, padded_length, candidates)
        y = y + p["E"] * attn
    out = gated_rmsnorm(y, z, p["norm.weight"], eps) @ p["out_proj.weight"].T
    if "out_proj.bias" in p:
        out = out + p["out_proj.bias"]
    return out, gate


def model_logits(tokens, params, cfg, padded_length=0, candidates=None):
    """Logits (T, V) of one sequence, and per layer its gate terms (or None). candidates: layer -> positions.
    The block is Mamba-1's (pre-norm residual, final norm_f, tied output), only the mixer differs."""
    return mt.model_logits(tokens, params, cfg, padded_length, candidates, layer_mixer=mixer)


if __name__ == "__main__":
    sys.modules.setdefault("mamba2_torch", sys.modules[__name__])  # mamba_torch's dispatch imports this module
    mt.main("mamba2")
