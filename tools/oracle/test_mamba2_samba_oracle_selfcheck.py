#!/usr/bin/python3
"""Self-check of the Mamba2 and Samba oracles (mamba2_torch.py, samba_torch.py) on random tiny models (run:
/usr/bin/python3 THIS_FILE; about a minute on one core):
(a) gradients: autograd against finite differences of the objective, for the plain models and for Mamba2 + HAX in
    both semantics; the command line (per-model scripts and mamba_torch.py's dispatch) runs end to end and writes the
    in-process loss, logits and gradients; a per-model script refuses another model's checkpoint;
(b) the sequential SSD equals the chunked matrix formulation (tools/bench's ssd_minimal_discrete) in float64, with
    several groups, chunks that do not divide T and one longer than T, values and gradients;
(c) windowed attention with a window >= T is full causal attention, a window of 1 returns v, RoPE rotates the pairs
    (d, d + P/2) as complex numbers and makes q.k depend on t - s only;
(d) parameter counts of configs/mamba2.json (base, fixed sparse pattern, key selection), mamba2_double_size.json and
    samba.json from the checkpoint shapes (reference.md §6), and that the PyTorch benchmark builds the same models;
(e) the oracles and the benchmark's models (tools/bench/mamba_torch_step.py: batched, chunked SSD, additive masks)
    give the same loss from the same weights in float64: two implementations of each forward agree."""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
import mamba_torch as mt  # noqa: E402
import mamba2_torch as m2  # noqa: E402
import samba_torch as sb  # noqa: E402
import mamba_torch_step as bench  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(0)
V = 11


def mamba2_config(arch="", semantics="causal"):
    cfg = {"model_type": "mamba2", "vocab_size": V, "hidden_size": 6, "expand": 2, "num_heads": 3, "head_dim": 4,
           "n_groups": 1, "state_size": 3, "conv_kernel": 3, "chunk_size": 4, "num_hidden_layers": 2,
           "layer_norm_epsilon": 1e-5}
    if arch:
        cfg.update(sparse_arch=arch, sparse_keys=8, num_hash=2, data_max_length=16, hax_semantics=semantics)
    return cfg


def samba_config():
    return {"model_type": "samba", "vocab_size": V, "hidden_size": 8, "intermediate_size": 8, "state_size": 3,
            "time_step_rank": 2, "conv_kernel": 3, "num_hidden_layers": 4, "norm_eps": 1e-5, "hidden_ratio": 4,
            "attn": {"layers": [1, 3], "num_heads": 2, "num_kv_heads": 2, "qkv_bias": False, "rope_theta": 10000.0,
                     "window_size": 3}}


def param_shapes(cfg):
    """name -> shape of every checkpoint tensor of a mamba2 or samba config (the names hax writes)."""
    D, L, N, K = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["state_size"], cfg["conv_kernel"]
    shapes = {"embeddings.weight": (cfg["vocab_size"], D), "norm_f.weight": (D,)}
    for l in range(L):
        m = f"layers.{l}.mixer."
        if cfg["model_type"] == "mamba2":
            I, H, P, G, _, _ = m2.dims(cfg)
            shapes.update({f"layers.{l}.norm.weight": (D,), m + "in_proj.weight": (2 * I + 2 * G * N + H, D),
                           m + "conv1d.weight": (I + 2 * G * N, 1, K), m + "conv1d.bias": (I + 2 * G * N,),
                           m + "dt_bias": (H,), m + "A_log": (H,), m + "D": (H,), m + "norm.weight": (I,),
                           m + "out_proj.weight": (D, I)})
        else:
            F_ = sb.mlp_width(cfg)
            shapes.update({f"layers.{l}.mixer_norm.weight": (D,), f"layers.{l}.mlp_norm.weight": (D,),
                           f"layers.{l}.mlp.gate_proj.weight": (F_, D), f"layers.{l}.mlp.up_proj.weight": (F_, D),
                           f"layers.{l}.mlp.down_proj.weight": (D, F_)})
            if l in cfg["attn"]["layers"]:
                shapes.update({m + n + "_proj.weight": (D, D) for n in "qkvo"})
            else:
                I, R = cfg["intermediate_size"], cfg["time_step_rank"]
                shapes.update({m + "in_proj.weight": (2 * I, D), m + "conv1d.weight": (I, 1, K),
                               m + "conv1d.bias": (I,), m + "x_proj.weight": (R + 2 * N, I),
                               m + "dt_proj.weight": (I, R), m + "dt_proj.bias": (I,), m + "A_log": (I, N),
                               m + "D": (I,), m + "out_proj.weight": (D, I)})
        if cfg.get("sparse_arch"):
            I = m2.dims(cfg)[0] if cfg["model_type"] == "mamba2" else cfg["intermediate_size"]
            shapes.update({m + "xx_proj.weight": (2 * N, I), m + "E": (I,)})
            patterns = cfg["sparse_arch"].split("+")
            if "key_selection" in patterns:
                shapes.update({m + "dx_proj_1.weight": (2 * N, 2 * N), m + "dx_proj_1.bias": (2 * N,),
                               m + "dx_proj_2.weight": (2 * N, 2 * N), m + "dx_proj_2.bias": (2 * N,),
                               m + "dx_proj_3.weight": (1, 2 * N), m + "dx_proj_3.bias": (1,)})
            if any(p.endswith("_lsh") for p in patterns):
                shapes[m + "lsh_projection"] = (N, cfg["num_hash"])
    return shapes


def random_params(cfg):
    return {k: (torch.randn(s, dtype=torch.float64) * 0.5).requires_grad_(not mt.is_buffer(k))
            for k, s in param_shapes(cfg).items()}


def count(cfg):
    return sum(math.prod(s) for k, s in param_shapes(cfg).items() if not mt.is_buffer(k))


def check(name, ok):
    print(("ok   " if ok else "FAIL ") + name, flush=True)
    return ok


BATCH = [(torch.randint(0, V, (t,)), torch.randint(0, V, (t,)), torch.tensor([i % 3 != 1 for i in range(t)]))
         for t in (7, 5)]


def finite_differences(params, cfg, names, with_gate=True, cands=None, padded=0):
    """gradcheck of the objective (CE, + 0.1 gate if asked) as a function of the tensors `names`."""
    def f(*values):
        ps = dict(params)
        ps.update(zip(names, values))
        _, ce, gate = mt.objective(BATCH, ps, cfg, padded, cands)
        return ce + 0.1 * gate if with_gate and gate is not None else ce
    inputs = tuple(params[n].detach().clone().requires_grad_() for n in names)
    return torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, raise_exception=False)


def check_gradients():
    good = True
    cfg = mamba2_config()
    params = random_params(cfg)
    good &= check("mamba2: finite differences (A_log, dt_bias, D, conv1d.bias, gated norm, out_proj, norm_f)",
                  finite_differences(params, cfg, [
                      "layers.0.mixer.A_log", "layers.0.mixer.dt_bias", "layers.1.mixer.D",
                      "layers.0.mixer.conv1d.bias",
                      "layers.1.mixer.norm.weight", "layers.1.mixer.out_proj.weight", "norm_f.weight"]))
    # With key selection the gate loss sees the layers below only through stop-gradients (detached features and
    # targets), where finite differences are not the gradient by definition: as in test_sparse_oracle_selfcheck.py,
    # the mixer's own parameters against finite differences of CE, E and the scorer against CE + 0.1 gate.
    cands = {(l, q): sorted(torch.randperm(len(BATCH[q][0]))[:4].tolist()) for l in range(2) for q in range(2)}
    for semantics in ("causal", "paper"):
        cfg = mamba2_config("sign_bin_lsh+key_selection", semantics)
        params = random_params(cfg)
        padded = 9 if semantics == "paper" else 0
        good &= check(f"mamba2 + HAX ({semantics}): finite differences of CE + 0.1 gate (E, dx_proj_1)",
                      finite_differences(params, cfg, ["layers.1.mixer.E", "layers.0.mixer.dx_proj_1.bias",
                                                       "layers.1.mixer.dx_proj_1.bias"], True, cands, padded))
        good &= check(f"mamba2 + HAX ({semantics}): finite differences of CE (xx_proj, A_log, gated norm)",
                      finite_differences(params, cfg, ["layers.0.mixer.xx_proj.weight", "layers.0.mixer.A_log",
                                                       "layers.0.mixer.norm.weight"], False, cands, padded))
    cfg = samba_config()
    params = random_params(cfg)
    good &= check("samba: finite differences (attention q/k/v/o, Mamba A_log and dt_proj.bias, norms)",
                  finite_differences(params, cfg, [
                      "layers.1.mixer.q_proj.weight", "layers.1.mixer.k_proj.weight", "layers.3.mixer.v_proj.weight",
                      "layers.3.mixer.o_proj.weight", "layers.0.mixer.A_log", "layers.2.mixer.dt_proj.bias",
                      "layers.2.mixer_norm.weight", "layers.1.mlp_norm.weight", "norm_f.weight"]))
    return good


def write_checkpoint(folder, cfg, params):
    os.makedirs(folder)
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"))
    mt.write_safetensors(os.path.join(folder, "model.safetensors"), {k: v.detach().numpy() for k, v in params.items()})


def check_command_line():
    """The CLI of every script path against the in-process objective (values go through F32 files: 1e-5)."""
    good = True
    cands = {(l, q): sorted(torch.randperm(len(BATCH[q][0]))[:4].tolist()) for l in range(2) for q in range(2)}
    cases = [("mamba2_torch.py", mamba2_config("sign_bin_lsh+key_selection", "paper"), cands, 9),
             ("mamba_torch.py", mamba2_config(), None, 0),
             ("samba_torch.py", samba_config(), None, 0),
             ("mamba_torch.py", samba_config(), None, 0)]
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "batch.txt"), "w") as f:
            for seq in BATCH:
                for row in seq:
                    f.write(" ".join(str(int(v)) for v in row) + "\n")
        with open(os.path.join(tmp, "cand.txt"), "w") as f:
            for (l, q), c in sorted(cands.items()):
                f.write(" ".join(map(str, [l, q] + c)) + "\n")
        for i, (script, cfg, cand, padded) in enumerate(cases):
            ckpt, out = os.path.join(tmp, f"ckpt{i}"), os.path.join(tmp, f"out{i}")
            # The oracle reads F32 weights: start from F32-representable values so both sides see the same model.
            params = {k: v.detach().float().double().requires_grad_(v.requires_grad)
                      for k, v in random_params(cfg).items()}
            write_checkpoint(ckpt, cfg, params)
            extra = ["--padded-length", str(padded), "--gate-candidates", os.path.join(tmp, "cand.txt")] if cand else []
            subprocess.run([sys.executable, os.path.join(HERE, script), ckpt, os.path.join(tmp, "batch.txt"), out]
                           + extra, check=True)
            logits, ce, gate = mt.objective(BATCH, params, cfg, padded, cand)
            total = ce + 0.1 * gate if gate is not None else ce
            names = [k for k in params if not mt.is_buffer(k)]
            grads = dict(zip(names, torch.autograd.grad(total, [params[k] for k in names], allow_unused=True)))
            got = mt.read_safetensors(os.path.join(out, "grads.safetensors"))
            close = lambda a, b: float((a - b).norm() / max(b.norm(), 1e-30)) < 1e-5
            grads = {k: g if g is not None else torch.zeros_like(params[k]) for k, g in grads.items()}
            read = lambda f: np.load(os.path.join(out, f))
            ok = (set(got) == set(names) and all(close(got[k].detach(), g) for k, g in grads.items())
                  and close(torch.tensor(read("logits.npy"), dtype=torch.float64), logits.detach())
                  and abs(read("loss.npy")[0] - ce.item()) < 1e-5 * ce.item()
                  and abs(read("gate_loss.npy")[0] - (gate.item() if gate is not None else 0)) < 1e-5)
            good &= check(f"command line: {script} on a {cfg['model_type']} checkpoint"
                          f"{' + HAX, paper, gate candidates' if cand else ''}: loss, logits, every gradient", ok)
        refused = subprocess.run([sys.executable, os.path.join(HERE, "samba_torch.py"), os.path.join(tmp, "ckpt0"),
                                  os.path.join(tmp, "batch.txt"), os.path.join(tmp, "refused")],
                                 capture_output=True).returncode != 0
        good &= check("command line: samba_torch.py refuses a mamba2 checkpoint", refused)
    return good


def check_ssd():
    good = True
    T, H, P, G, N = 37, 4, 3, 2, 5
    x = torch.randn(T, H, P, dtype=torch.float64, requires_grad=True)
    delta = torch.rand(T, H, dtype=torch.float64) * 0.5
    A = -torch.rand(H, dtype=torch.float64) * 2
    Bg = torch.randn(T, G, N, dtype=torch.float64, requires_grad=True)
    Cg = torch.randn(T, G, N, dtype=torch.float64)
    seq = m2.ssd_sequential(x, delta, A, Bg, Cg)
    g_seq = torch.autograd.grad((seq * seq).sum(), (x, Bg))
    # Heads per group written out as reference.md §4.4 says: head h reads group h // (H / G).
    per_head = lambda M: torch.stack([M[:, h // (H // G)] for h in range(H)], dim=1)[None]
    for chunk in (8, 16, 64):
        y = bench.ssd_chunked((x * delta[..., None])[None], (A * delta)[None], per_head(Bg), per_head(Cg), chunk)[0]
        g = torch.autograd.grad((y * y).sum(), (x, Bg))
        good &= check(f"SSD: sequential == chunked (chunk {chunk}, T {T}, {G} groups), values and gradients",
                      torch.allclose(seq, y, atol=1e-11, rtol=1e-10)
                      and all(torch.allclose(a, b, atol=1e-10, rtol=1e-9) for a, b in zip(g_seq, g)))
    return good


def check_attention():
    good = True
    cfg = samba_config()
    prefix = "layers.1.mixer."
    p = {k[len(prefix):]: v.detach() for k, v in random_params(cfg).items() if k.startswith(prefix)}
    T, D, H = 9, cfg["hidden_size"], cfg["attn"]["num_heads"]
    P = D // H
    u = torch.randn(T, D, dtype=torch.float64)
    # Full causal attention written independently: per head, a -inf upper triangle.
    q, k = (sb.rope((u @ p[n + "_proj.weight"].T).reshape(T, H, P), 10000.0) for n in "qk")
    v = (u @ p["v_proj.weight"].T).reshape(T, H, P)
    heads = []
    for h in range(H):
        s = (q[:, h] @ k[:, h].T / math.sqrt(P)).masked_fill(torch.ones(T, T).triu(1).bool(), -math.inf)
        heads.append(torch.softmax(s, 1) @ v[:, h])
    full = torch.cat(heads, 1) @ p["o_proj.weight"].T
    for window in (T, T + 5):
        cfg["attn"]["window_size"] = window
        good &= check(f"attention: window {window} >= T {T} is full causal attention",
                      torch.allclose(sb.attention(u, p, cfg), full, atol=1e-12))
    cfg["attn"]["window_size"] = 1
    good &= check("attention: window 1 attends to the query's own value only",
                  torch.allclose(sb.attention(u, p, cfg), v.reshape(T, D) @ p["o_proj.weight"].T, atol=1e-12))
    # RoPE as complex rotation: (x_i, x_{i+P/2}) times exp(1j * t / theta^(2i/P)).
    theta, Pr = 100.0, 6
    x = torch.randn(T, 2, Pr, dtype=torch.float64)
    c = torch.complex(x[..., :Pr // 2], x[..., Pr // 2:])
    freq = torch.tensor([theta ** (-2 * i / Pr) for i in range(Pr // 2)], dtype=torch.float64)
    c = c * torch.exp(1j * torch.arange(T, dtype=torch.float64)[:, None, None] * freq)
    good &= check("RoPE: rotates the pairs (d, d + P/2) by t / theta^(2d/P)",
                  torch.allclose(sb.rope(x, theta), torch.cat([c.real, c.imag], -1), atol=1e-12))
    a, b = torch.randn(Pr, dtype=torch.float64), torch.randn(Pr, dtype=torch.float64)
    rot = lambda vec: sb.rope(vec.expand(T, 1, Pr).clone(), theta)[:, 0]
    ra, rb = rot(a), rot(b)
    good &= check("RoPE: q.k depends on t - s only", torch.allclose(ra[5] @ rb[2], ra[3] @ rb[0], atol=1e-12)
                  and torch.allclose(ra[0] @ rb[0], a @ b, atol=1e-12))
    return good


def check_counts():
    good = True
    load = lambda name: json.load(open(os.path.join(ROOT, "configs", name)))
    m2cfg = load("mamba2.json")
    cases = [("mamba2.json base", m2cfg, 67184),
             ("mamba2.json + sliding_window", dict(m2cfg, sparse_arch="sliding_window"), 83824),
             ("mamba2.json + sign_bin_lsh (H a buffer)", dict(m2cfg, sparse_arch="sign_bin_lsh", num_hash=8), 83824),
             ("mamba2.json + HAX (key selection)", dict(m2cfg, sparse_arch="sign_bin_lsh+key_selection", num_hash=8),
              100594),
             ("mamba2_double_size.json", load("mamba2_double_size.json"), 231984),
             ("samba.json", load("samba.json"), 131360)]
    for name, cfg, want in cases:
        model = bench.Model(dict(cfg, sparse_keys=64, data_max_length=2048))
        got_bench = sum(t.numel() for t in model.parameters())
        good &= check(f"parameters: {name} = {want} (checkpoint shapes {count(cfg)}, benchmark {got_bench})",
                      count(cfg) == want == got_bench)
    return good


def bench_to_checkpoint(name, kind):
    """The checkpoint name of a parameter of mamba_torch_step.Model of model type `kind`."""
    parts = name.split(".")
    top = {"embedding": "embeddings.weight", "norm_f": "norm_f.weight"}
    if name in top:
        return top[name]
    l = parts[1]
    if parts[0] == "norms":
        return f"layers.{l}.mixer_norm.weight" if kind == "samba" else f"layers.{l}.norm.weight"
    if parts[0] == "mlp_norms":
        return f"layers.{l}.mlp_norm.weight"
    if parts[0] == "mlps":
        return f"layers.{l}.mlp.{parts[2]}.weight"
    rest = ".".join(parts[2:])
    mixer = {"conv_w": "conv1d.weight", "conv_b": "conv1d.bias", "norm_w": "norm.weight", "x_proj": "x_proj.weight",
             "dt_proj": "dt_proj.weight", "in_proj": "in_proj.weight", "out_proj": "out_proj.weight",
             "xx_proj": "xx_proj.weight", "q_proj": "q_proj.weight", "k_proj": "k_proj.weight",
             "v_proj": "v_proj.weight", "o_proj": "o_proj.weight"}
    if rest == "dt_bias" and kind != "mamba2":
        rest = "dt_proj.bias"  # Mamba-1 keeps its Δ bias in dt_proj
    rest = mixer.get(rest, rest.replace("sparse.", ""))
    return f"layers.{l}.mixer.{rest}"


def check_against_benchmark():
    """Same weights in the oracle and in the benchmark's (batched, chunked, masked) models, float64: same loss."""
    good = True
    T = 11
    tokens = torch.randint(4, V, (2, T))  # no PAD (3): both sides see two full-length sequences
    labels = torch.randint(0, V, (2, T))
    scored = torch.rand(2, T) < 0.7
    scored[:, -1] = True
    batch = [(tokens[i], labels[i], scored[i]) for i in range(2)]
    for name, cfg in [("mamba2", mamba2_config()),
                      ("mamba2 + sliding_window+key_selection (paper, eval)",
                       mamba2_config("sliding_window+key_selection", "paper")),
                      ("samba", samba_config())]:
        params = random_params(cfg)
        model = bench.Model(cfg, chunk=4).double().eval()  # chunk 4 < T: several chunks and a padded last one
        with torch.no_grad():
            for n, t in model.named_parameters():
                t.copy_(params[bench_to_checkpoint(n, cfg["model_type"])])
            want = model.loss(tokens, labels, scored, torch.ones(2, T, dtype=torch.float64)).item()
        got = mt.objective(batch, params, cfg)[1].item()
        good &= check(f"oracle == benchmark model: {name} (loss {got:.6f} / {want:.6f})", abs(got - want) < 1e-10)
    return good


def main():
    good = check_counts()
    good &= check_ssd()
    good &= check_attention()
    good &= check_against_benchmark()
    good &= check_gradients()
    good &= check_command_line()
    print("all ok" if good else "SOME CHECKS FAILED")
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
