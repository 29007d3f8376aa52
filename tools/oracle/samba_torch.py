#!/usr/bin/python3
"""An independent float64 PyTorch oracle of the hax Samba model (reference.md §5.3): Mamba-1 mixers (mamba_torch.py's)
interleaved with sliding-window softmax attention, each block followed by a SwiGLU MLP. It shares no code with hax.
The attention is computed densely, a T x T score matrix with a boolean window mask, so it does not depend on how hax
walks the window.

usage: samba_torch.py CHECKPOINT_DIR BATCH_FILE OUT_DIR [--padded-length T] [--gate-candidates FILE]
  exactly mamba_torch.py's command line and outputs (see there); mamba_torch.py runs this model too when config.json
  says "model_type": "samba".
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mamba_torch as mt  # noqa: E402


def mlp_width(cfg):
    """fla's GatedMLP width: 2/3 of hidden_ratio * D, rounded up to a multiple of 256 (not the config's
    intermediate_size, which is the Mamba mixers' inner width)."""
    return 256 * math.ceil(int(cfg["hidden_size"] * cfg.get("hidden_ratio", 4) * 2 / 3) / 256)


def rope(x, theta):
    """Non-interleaved (GPT-NeoX) rotary embedding of x (T, heads, P) at positions 0..T-1: channel d pairs with
    d + P/2, and pair i turns by t / theta^(2i/P)."""
    T, _, P = x.shape
    inv_freq = 1.0 / theta ** (torch.arange(0, P // 2, dtype=x.dtype) * 2 / P)
    angle = torch.arange(T, dtype=x.dtype)[:, None] * inv_freq[None, :]  # (T, P/2)
    cos, sin = torch.cos(angle)[:, None, :], torch.sin(angle)[:, None, :]
    x1, x2 = x[..., :P // 2], x[..., P // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def window_mask(T, window):
    """(T, T) bool [query t, key s]: causal, the last `window` keys including the query itself."""
    t = torch.arange(T)[:, None]
    s = torch.arange(T)[None, :]
    return (s <= t) & (s > t - window)


def attention(u, p, cfg):
    """Sliding-window multi-head attention over one sequence u (T, D), with grouped KV heads if num_kv_heads < heads."""
    a = cfg["attn"]
    T, D = u.shape
    H = a["num_heads"]
    Hkv = a.get("num_kv_heads") or H
    P = D // H

    def proj(name, heads):
        out = u @ p[name + ".weight"].T
        if name + ".bias" in p:
            out = out + p[name + ".bias"]
        return out.reshape(T, heads, P)

    theta = a.get("rope_theta", 10000.0)
    q, k, v = rope(proj("q_proj", H), theta), rope(proj("k_proj", Hkv), theta), proj("v_proj", Hkv)
    k, v = (M.repeat_interleave(H // Hkv, dim=1) for M in (k, v))
    scores = torch.einsum("thp,shp->hts", q, k) / math.sqrt(P)
    window = a.get("window_size") or T  # None: plain causal attention
    scores = scores.masked_fill(~window_mask(T, window), -math.inf)  # the diagonal is always allowed: no empty rows
    o = torch.einsum("hts,shp->thp", torch.softmax(scores, -1), v).reshape(T, H * P)
    return o @ p["o_proj.weight"].T


def mlp(x, p):
    return (F.silu(x @ p["gate_proj.weight"].T) * (x @ p["up_proj.weight"].T)) @ p["down_proj.weight"].T


def model_logits(tokens, params, cfg, padded_length=0, candidates=None):
    """Logits (T, V) of one sequence, and per layer its gate terms (None; a Mamba layer with a sparse branch would
    give its own). Block: s = h + mixer(mixer_norm(h)); h = s + mlp(mlp_norm(s))."""
    eps = cfg.get("norm_eps", cfg.get("layer_norm_epsilon", 1e-5))
    attn_layers = set(cfg.get("attn", {}).get("layers", []))
    h = params["embeddings.weight"][tokens]
    gates = []
    for l in range(cfg["num_hidden_layers"]):
        def sub(prefix):
            prefix = f"layers.{l}.{prefix}."
            return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

        a = mt.rmsnorm(h, params[f"layers.{l}.mixer_norm.weight"], eps)
        gate = None
        if l in attn_layers:
            m = attention(a, sub("mixer"), cfg)
        else:
            cand = None if candidates is None else candidates.get(l)
            m, gate = mt.mixer(a, sub("mixer"), cfg, padded_length, cand)
        s = h + m
        h = s + mlp(mt.rmsnorm(s, params[f"layers.{l}.mlp_norm.weight"], eps), sub("mlp"))
        gates.append(gate)
    return mt.rmsnorm(h, params["norm_f.weight"], eps) @ params["embeddings.weight"].T, gates


if __name__ == "__main__":
    sys.modules.setdefault("samba_torch", sys.modules[__name__])  # mamba_torch's dispatch imports this module
    mt.main("samba")
