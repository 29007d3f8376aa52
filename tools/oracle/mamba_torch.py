#!/usr/bin/python3
"""An independent PyTorch implementation of the hax Mamba-1 model (reference.md §3.1-3.4, §5.1) and of its
sparse-attention variants (HAX, reference.md §3.3, §3.5-3.10, with the two semantics of semantics.md), used by the
tests as an oracle. It is also the entry of the other models' oracles: config.json's "model_type" ("mamba", the
default; "mamba2": mamba2_torch.py; "samba": samba_torch.py) picks the per-sequence model function, and everything
else (checkpoint and batch reading, loss, gate loss, outputs) is this file's for all of them. It shares no code with
hax: it reads the checkpoint folder (config.json + model.safetensors, parsed here with json + numpy), runs the math
in float64 with a plain sequential scan and, for the sparse branch, the reference's dense construction (a T x T
boolean mask of allowed keys per sequence, masked softmax), and writes what hax must match.

usage: mamba_torch.py CHECKPOINT_DIR BATCH_FILE OUT_DIR [--padded-length T] [--gate-candidates FILE]
  BATCH_FILE: three lines per sequence: input token ids; the label (next token) of every position; 0/1 scored flags.
  --padded-length: `paper` semantics only: the length every sequence is right-padded to (default: the longest).
  --gate-candidates: one line per (layer, sequence), layer-major: `layer seq c0 c1 ...`, the positions the gate
    (ranking) loss of key selection samples. Given: training mode, the objective is CE + 0.1 * sum of the layers'
    gate losses. Absent: evaluation mode, no gate loss.
  OUT_DIR receives logits.npy (all rows of all sequences, concatenated: M x V, float32), loss.npy (the mean
  cross-entropy over scored rows, float32, shape (1,)), gate_loss.npy (the gate loss summed over layers, float32,
  shape (1,); 0 without candidates) and grads.safetensors (F32 gradient of the objective for every parameter, under
  the parameter's own name; none for the lsh_projection buffers).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32}
GATE_WEIGHT = 0.1


def is_buffer(name):
    return name.endswith("lsh_projection")


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    data = blob[8 + header_len:]
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=DTYPES[meta["dtype"]]).reshape(meta["shape"])
        tensors[name] = torch.tensor(arr.astype(np.float64), requires_grad=not is_buffer(name))
    return tensors


def write_safetensors(path, tensors):
    header, offset, chunks = {}, 0, []
    for name, value in tensors.items():
        raw = np.ascontiguousarray(value, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


def rmsnorm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


# ---------------------------------------------------------------------------------------------------------------
# Sparse branch: dense masks, as the reference builds them (reference.md §7.1), in float64.

def sparse_settings(cfg):
    patterns = cfg["sparse_arch"].split("+")
    w = cfg.get("sparse_keys", 64) // len(patterns)
    return patterns, w, cfg.get("data_max_length", 2048) // w, cfg.get("hax_semantics", "causal")


PAPER_INGREDIENTS = ("lsh_statistics", "ks_normalization", "uniform_fallback", "gate_padding")


def paper_ingredients(cfg):
    """The set of `paper`'s ingredients in effect: all of them under paper, less those "hax_paper_without" lists (an
    ablation); none under causal."""
    if cfg.get("hax_semantics", "causal") != "paper":
        return set()
    without = set(cfg.get("hax_paper_without", []))
    unknown = without - set(PAPER_INGREDIENTS)
    if unknown:
        raise SystemExit(f"unknown hax_paper_without ingredient(s) {sorted(unknown)}")
    return set(PAPER_INGREDIENTS) - without


def centred_scaled(X):
    """X (T, N) centred per feature over time, then divided by the L2 norm over time (F.normalize over dim 1)."""
    X = X - X.mean(0)
    return X / X.norm(dim=0).clamp_min(1e-12)


def lsh_inputs(Q, K, statistics):
    """What the hash projects: raw ("none", causal), centred and scaled per feature over the whole sequence
    ("sequence", paper), or each row by the statistics of its own prefix ("running", a causal option)."""
    if statistics == "none":
        return Q, K
    if statistics == "sequence":
        return centred_scaled(Q), centred_scaled(K)
    return [torch.stack([centred_scaled(X[:t + 1])[t] for t in range(X.shape[0])]) for X in (Q, K)]


def most_recent(match, w):
    """match (T, T) bool, already causal: keep per row the w matches with the largest s."""
    from_right = torch.flip(torch.cumsum(torch.flip(match.long(), [1]), 1), [1])  # matches at s' >= s
    return match & (from_right <= w)


def key_scores(Q, K, p, normalization):
    """Key-selection MLP score per position, from detached features [K, normalize(cumsum Q)]: normalized per feature
    over the whole sequence ("sequence", paper), per position over the features ("position", causal), or per feature
    over each row's prefix ("running", a causal option)."""
    c = torch.cumsum(Q.detach(), 0)
    if normalization == "sequence":
        c = c / c.norm(dim=0, keepdim=True).clamp_min(1e-12)
    elif normalization == "position":
        c = c / c.norm(dim=1, keepdim=True).clamp_min(1e-12)
    else:
        c = c / torch.sqrt(torch.cumsum(c * c, 0)).clamp_min(1e-12)
    f = torch.cat([K.detach(), c], 1)
    f = F.relu(F.linear(f, p["dx_proj_1.weight"], p["dx_proj_1.bias"]))
    f = F.relu(F.linear(f, p["dx_proj_2.weight"], p["dx_proj_2.bias"]))
    return F.linear(f, p["dx_proj_3.weight"], p["dx_proj_3.bias"])[:, 0]


def cumulative_topk(score, w):
    """(T, T) bool: s <= t among the w best of score[0..t] in the order (score desc, index asc)."""
    T = score.shape[0]
    s = score.detach()
    idx = torch.arange(T)
    beats = (s[:, None] > s[None, :]) | ((s[:, None] == s[None, :]) & (idx[:, None] < idx[None, :]))  # [s', s]
    rank = torch.cumsum(beats.long(), 0)  # rank[t, s] = #{s' <= t that beat s}
    return (idx[None, :] <= idx[:, None]) & (rank < w)


def allowed_mask(Q, K, p, cfg, T):
    patterns, w, dilation, _ = sparse_settings(cfg)
    ingredients = paper_ingredients(cfg)
    t = torch.arange(T)[:, None]
    s = torch.arange(T)[None, :]
    causal = s <= t
    allowed = torch.zeros(T, T, dtype=torch.bool)
    score = None
    for name in patterns:
        if name == "full":
            m = causal
        elif name == "sliding_window":
            m = s > t - w
        elif name == "sink":
            m = (s < w).expand(T, T)
        elif name == "dilated":
            m = (s % dilation == dilation - 1).expand(T, T)
        elif name in ("sign_bin_lsh", "argmax_lsh"):
            H = p["lsh_projection"].detach()
            statistics = "sequence" if "lsh_statistics" in ingredients else cfg.get("hax_lsh_statistics", "none")
            XQ, XK = lsh_inputs(Q.detach(), K.detach(), statistics)
            pq, pk = XQ @ H, XK @ H
            if name == "sign_bin_lsh":
                weights = 2 ** torch.arange(H.shape[1])
                bq, bk = ((pq > 0).long() * weights).sum(1), ((pk > 0).long() * weights).sum(1)
            else:
                bq, bk = pq.argmax(1), pk.argmax(1)
            m = most_recent((bq[:, None] == bk[None, :]) & causal, w)
        elif name == "key_selection":
            normalization = ("sequence" if "ks_normalization" in ingredients
                             else cfg.get("hax_ks_normalization", "position"))
            score = key_scores(Q, K, p, normalization)
            m = cumulative_topk(score, w)
        else:
            raise SystemExit(f"unknown sparse pattern {name!r}")
        allowed = allowed | (m & causal)
    return allowed, score


def sparse_branch(xc, p, cfg, padded_length, candidates):
    """attn (T, I) for the real rows of xc (T, I), and (sum of the gate BCE terms, k^2) or None."""
    N = cfg["state_size"]
    _, _, _, semantics = sparse_settings(cfg)
    paper = semantics == "paper"  # the padded layout; each quirk of it is an ingredient (paper_ingredients)
    ingredients = paper_ingredients(cfg)
    T_real = xc.shape[0]
    KQ = xc @ p["xx_proj.weight"].T
    K, Q, V = KQ[:, :N] / math.sqrt(N), KQ[:, N:], xc
    T = T_real
    if paper:  # right padding with zero rows (x is masked there, and xx_proj has no bias)
        T = max(padded_length, T_real)
        Q, K, V = (F.pad(X, (0, 0, 0, T - T_real)) for X in (Q, K, V))
    allowed, score = allowed_mask(Q, K, p, cfg, T)
    empty = ~allowed.any(1)
    logits = torch.where(allowed, Q @ K.T, torch.tensor(-math.inf, dtype=Q.dtype))
    logits = torch.where(empty[:, None], torch.zeros((), dtype=Q.dtype), logits)  # constant: uniform, no gradient
    probs = torch.softmax(logits, 1)
    if "uniform_fallback" not in ingredients:
        probs = probs * (~empty)[:, None].to(probs.dtype)  # a query with no key attends to nothing
    attn = (probs @ V)[:T_real]

    gate = None
    if candidates is not None and score is not None:
        cand = torch.tensor(candidates, dtype=torch.long)
        k = len(candidates)
        with torch.no_grad():
            queries = torch.arange(T if "gate_padding" in ingredients else T_real)
            a = torch.sigmoid(Q[queries] @ K[cand].T) * (queries[:, None] >= cand[None, :])
            target = a.sum(0)
            y = ((target[:, None] > target[None, :]).double() + (target[:, None] >= target[None, :]).double()) / 2
        pred = score[cand]
        x = pred[:, None] - pred[None, :]
        gate = (F.binary_cross_entropy_with_logits(x, y, reduction="sum"), k * k)
    return attn, gate


# ---------------------------------------------------------------------------------------------------------------

def mixer(u, p, cfg, padded_length=0, candidates=None):
    """One Mamba mixer over one sequence u (T, D): the output, and the gate terms (or None)."""
    I, N, R, K = cfg["intermediate_size"], cfg["state_size"], cfg["time_step_rank"], cfg["conv_kernel"]
    xz = u @ p["in_proj.weight"].T
    if "in_proj.bias" in p:
        xz = xz + p["in_proj.bias"]
    x, z = xz[:, :I], xz[:, I:]
    x_padded = F.pad(x.T.unsqueeze(0), (K - 1, 0))  # causal: K-1 zeros before t = 0
    xc = F.silu(F.conv1d(x_padded, p["conv1d.weight"], p.get("conv1d.bias"), groups=I)[0].T)
    dt_low, Bm, Cm = (xc @ p["x_proj.weight"].T).split([R, N, N], dim=-1)
    delta = F.softplus(dt_low @ p["dt_proj.weight"].T + p["dt_proj.bias"])  # threshold 20, as the reference
    A = -torch.exp(p["A_log"])
    h = torch.zeros(I, N, dtype=u.dtype)
    ys = []
    for t in range(u.shape[0]):
        h = torch.exp(delta[t, :, None] * A) * h + delta[t, :, None] * Bm[t][None, :] * xc[t][:, None]
        ys.append(h @ Cm[t] + p["D"] * xc[t])
    y = torch.stack(ys)
    gate = None
    if cfg.get("sparse_arch"):
        attn, gate = sparse_branch(xc, p, cfg, padded_length, candidates)
        y = y + p["E"] * attn
    y = y * F.silu(z)
    out = y @ p["out_proj.weight"].T
    if "out_proj.bias" in p:
        out = out + p["out_proj.bias"]
    return out, gate


def model_logits(tokens, params, cfg, padded_length=0, candidates=None, layer_mixer=None):
    """Logits (T, V) of one sequence, and per layer its gate terms (or None). candidates: layer -> positions.
    layer_mixer: the mixer function of each block (default Mamba-1's); Mamba2's blocks differ only there."""
    layer_mixer = layer_mixer or mixer
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    h = params["embeddings.weight"][tokens]
    gates = []
    for l in range(cfg["num_hidden_layers"]):
        prefix = f"layers.{l}.mixer."
        p = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        cand = None if candidates is None else candidates.get(l)
        out, gate = layer_mixer(rmsnorm(h, params[f"layers.{l}.norm.weight"], eps), p, cfg, padded_length, cand)
        h = h + out
        gates.append(gate)
    return rmsnorm(h, params["norm_f.weight"], eps) @ params["embeddings.weight"].T, gates


def model_function(cfg):
    """The per-sequence model function of cfg's model type: (tokens, params, cfg, padded_length, candidates) ->
    (logits, per-layer gate terms). The other models' modules are imported only when asked for: they import this one."""
    kind = cfg.get("model_type", "mamba")
    if kind == "mamba":
        return model_logits
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:  # imported from elsewhere: the sibling modules are still found
        sys.path.insert(0, here)
    if kind == "mamba2":
        import mamba2_torch
        return mamba2_torch.model_logits
    if kind == "samba":
        import samba_torch
        return samba_torch.model_logits
    raise SystemExit(f"unknown model_type {kind!r} (supported: mamba, mamba2, samba)")


def read_batch(path):
    lines = [line.split() for line in open(path).read().splitlines()]
    if len(lines) % 3:
        raise SystemExit(f"{path}: expected three lines per sequence, got {len(lines)} lines")
    return [tuple(torch.tensor([int(v) for v in lines[i + j]]) for j in range(3)) for i in range(0, len(lines), 3)]


def read_candidates(path):
    """{(layer, seq): [positions]} from lines `layer seq c0 c1 ...`."""
    out = {}
    for line in open(path).read().splitlines():
        if line.strip():
            v = [int(x) for x in line.split()]
            out[(v[0], v[1])] = v[2:]
    return out


def objective(batch, params, cfg, padded_length=0, candidates=None):
    """(logits of all rows, mean CE over scored rows, gate loss summed over layers or None)."""
    if cfg.get("hax_semantics", "causal") == "paper" and not padded_length:
        padded_length = max(len(tokens) for tokens, _, _ in batch)
    L = cfg["num_hidden_layers"]
    model = model_function(cfg)
    all_logits, losses, count = [], [], 0
    gate_sum, gate_pairs = [0.0] * L, [0] * L
    for q, (tokens, labels, scored) in enumerate(batch):
        per_seq = None if candidates is None else {l: candidates[(l, q)] for l in range(L) if (l, q) in candidates}
        logits, gates = model(tokens, params, cfg, padded_length, per_seq)
        all_logits.append(logits)
        rows = scored.bool()
        losses.append(F.cross_entropy(logits[rows], labels[rows], reduction="sum"))
        count += int(rows.sum())
        for l, g in enumerate(gates):
            if g is not None:
                gate_sum[l] = gate_sum[l] + g[0]
                gate_pairs[l] += g[1]
    ce = torch.stack(losses).sum() / count
    gate = None
    terms = [gate_sum[l] / gate_pairs[l] for l in range(L) if gate_pairs[l] > 0]
    if candidates is not None and terms:
        gate = torch.stack(terms).sum()
    return torch.cat(all_logits), ce, gate


def main(model_type=None):
    """The command line. model_type: the model a per-model script (mamba2_torch.py, samba_torch.py) stands for; a
    checkpoint whose config names another one is refused rather than run as the wrong model."""
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("batch")
    parser.add_argument("out_dir")
    parser.add_argument("--padded-length", type=int, default=0)
    parser.add_argument("--gate-candidates")
    args = parser.parse_args()
    cfg = json.load(open(os.path.join(args.checkpoint, "config.json")))
    if model_type is not None:
        if cfg.setdefault("model_type", model_type) != model_type:
            raise SystemExit(f"{args.checkpoint}: model_type {cfg['model_type']!r}, "
                             f"but this oracle is {model_type!r}'s")
    params = read_safetensors(os.path.join(args.checkpoint, "model.safetensors"))
    candidates = read_candidates(args.gate_candidates) if args.gate_candidates else None
    logits, ce, gate = objective(read_batch(args.batch), params, cfg, args.padded_length, candidates)
    total = ce if gate is None else ce + GATE_WEIGHT * gate
    total.backward()
    os.makedirs(args.out_dir, exist_ok=True)
    np.save(os.path.join(args.out_dir, "logits.npy"), logits.detach().numpy().astype(np.float32))
    np.save(os.path.join(args.out_dir, "loss.npy"), np.array([ce.item()], dtype=np.float32))
    np.save(os.path.join(args.out_dir, "gate_loss.npy"),
            np.array([0.0 if gate is None else gate.item()], dtype=np.float32))
    write_safetensors(os.path.join(args.out_dir, "grads.safetensors"),
                      {name: (value.grad if value.grad is not None else torch.zeros_like(value)).numpy()
                       for name, value in params.items() if not is_buffer(name)})


if __name__ == "__main__":
    # Run as a script this module is __main__; the model modules' `import mamba_torch` must find it rather than load
    # a second copy of it.
    sys.modules.setdefault("mamba_torch", sys.modules[__name__])
    main()
