#!/usr/bin/python3
"""An independent PyTorch implementation of the hax Mamba-1 model (reference.md §3.1-3.4, §5.1), used by the tests
as an oracle. It shares no code with hax: it reads the checkpoint folder (config.json + model.safetensors, parsed
here with json + numpy), runs the math in float64 with a plain sequential scan, and writes what hax must match.

usage: mamba_torch.py CHECKPOINT_DIR BATCH_FILE OUT_DIR
  BATCH_FILE: three lines per sequence: input token ids; the label (next token) of every position; 0/1 scored flags.
  OUT_DIR receives logits.npy (all rows of all sequences, concatenated: M x V, float32), loss.npy (the mean
  cross-entropy over scored rows, float32, shape (1,)) and grads.safetensors (F32 gradient of that loss for every
  parameter, under the parameter's own name).
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32}


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
        tensors[name] = torch.tensor(arr.astype(np.float64), requires_grad=True)
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


def mixer(u, p, cfg):
    """One Mamba mixer over one sequence u (T, D)."""
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
    y = torch.stack(ys) * F.silu(z)
    out = y @ p["out_proj.weight"].T
    if "out_proj.bias" in p:
        out = out + p["out_proj.bias"]
    return out


def model_logits(tokens, params, cfg):
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    h = params["embeddings.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        prefix = f"layers.{l}.mixer."
        p = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        h = h + mixer(rmsnorm(h, params[f"layers.{l}.norm.weight"], eps), p, cfg)
    return rmsnorm(h, params["norm_f.weight"], eps) @ params["embeddings.weight"].T


def read_batch(path):
    lines = [line.split() for line in open(path).read().splitlines()]
    if len(lines) % 3:
        raise SystemExit(f"{path}: expected three lines per sequence, got {len(lines)} lines")
    return [tuple(torch.tensor([int(v) for v in lines[i + j]]) for j in range(3)) for i in range(0, len(lines), 3)]


def main():
    ckpt, batch_file, out_dir = sys.argv[1:4]
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    params = read_safetensors(os.path.join(ckpt, "model.safetensors"))
    all_logits, losses = [], []
    for tokens, labels, scored in read_batch(batch_file):
        logits = model_logits(tokens, params, cfg)
        all_logits.append(logits)
        rows = scored.bool()
        losses.append(F.cross_entropy(logits[rows], labels[rows], reduction="sum"))
    count = sum(int(s.sum()) for _, _, s in read_batch(batch_file))
    loss = torch.stack(losses).sum() / count
    loss.backward()
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "logits.npy"), torch.cat(all_logits).detach().numpy().astype(np.float32))
    np.save(os.path.join(out_dir, "loss.npy"), np.array([loss.item()], dtype=np.float32))
    write_safetensors(os.path.join(out_dir, "grads.safetensors"),
                      {name: value.grad.numpy() for name, value in params.items()})


if __name__ == "__main__":
    main()
