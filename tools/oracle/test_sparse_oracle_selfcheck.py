#!/usr/bin/python3
"""Self-check of the sparse branch of mamba_torch.py on random tiny models (run: /usr/bin/python3 THIS_FILE):
(a) `full` is causal softmax attention, (b) a sliding window at least T wide is `full`, (c) the gradient of the
objective (CE + 0.1 gate) w.r.t. xx_proj, E and dx_proj_1 matches finite differences, (d) key-selection ties go to
the lower position, (e) the command line runs end to end with paper semantics and gate candidates."""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mamba_torch as mt  # noqa: E402

torch.manual_seed(0)
V, D, I, N, R, K, L = 11, 6, 8, 3, 2, 3, 2


def config(arch, semantics="causal", keys=8):
    return {"vocab_size": V, "hidden_size": D, "intermediate_size": I, "state_size": N, "time_step_rank": R,
            "conv_kernel": K, "num_hidden_layers": L, "sparse_arch": arch, "sparse_keys": keys, "num_hash": 2,
            "data_max_length": 16, "hax_semantics": semantics}


def random_params():
    shapes = {"embeddings.weight": (V, D), "norm_f.weight": (D,)}
    for l in range(L):
        m = f"layers.{l}.mixer."
        shapes.update({f"layers.{l}.norm.weight": (D,), m + "in_proj.weight": (2 * I, D), m + "conv1d.weight": (I, 1, K),
                       m + "conv1d.bias": (I,), m + "x_proj.weight": (R + 2 * N, I), m + "dt_proj.weight": (I, R),
                       m + "dt_proj.bias": (I,), m + "A_log": (I, N), m + "D": (I,), m + "out_proj.weight": (D, I),
                       m + "xx_proj.weight": (2 * N, I), m + "E": (I,), m + "dx_proj_1.weight": (2 * N, 2 * N),
                       m + "dx_proj_1.bias": (2 * N,), m + "dx_proj_2.weight": (2 * N, 2 * N),
                       m + "dx_proj_2.bias": (2 * N,), m + "dx_proj_3.weight": (1, 2 * N), m + "dx_proj_3.bias": (1,),
                       m + "lsh_projection": (N, 2)})
    return {k: (torch.randn(s, dtype=torch.float64) * 0.7).requires_grad_(not mt.is_buffer(k))
            for k, s in shapes.items()}


def mixer_params(params, l=0):
    prefix = f"layers.{l}.mixer."
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def attention(arch, xc, p, **kw):
    return mt.sparse_branch(xc, p, config(arch, **kw), 0, None)[0]


def check(name, ok):
    print(("ok   " if ok else "FAIL ") + name)
    return ok


def main():
    params = random_params()
    p = mixer_params(params)
    T = 9
    xc = torch.randn(T, I, dtype=torch.float64)
    good = True

    # (a) full == causal softmax attention
    KQ = xc @ p["xx_proj.weight"].T
    Kk, Qq = KQ[:, :N] / math.sqrt(N), KQ[:, N:]
    scores = (Qq @ Kk.T).masked_fill(torch.ones(T, T).triu(1).bool(), -math.inf)
    dense = torch.softmax(scores, 1) @ xc
    good &= check("full is causal softmax attention", torch.allclose(attention("full", xc, p), dense, atol=1e-12))
    # (b) window >= T is full (budget 16 with one pattern)
    good &= check("sliding_window with w >= T equals full",
                  torch.allclose(attention("sliding_window", xc, p, keys=16), dense, atol=1e-12))

    # (d) constant scores (all tied): for t >= w key selection keeps exactly s < w (w = 4)
    q = {k: v.detach().clone() for k, v in p.items()}
    q["dx_proj_3.weight"].zero_()
    q["dx_proj_3.bias"].fill_(0.25)
    Q2, K2 = Qq.detach(), Kk.detach()
    allowed, _ = mt.allowed_mask(Q2, K2, q, config("key_selection", keys=4), T)
    expect = torch.tensor([[s <= t and s < 4 for s in range(T)] for t in range(T)])
    good &= check("key_selection ties go to the lower position", bool((allowed == expect).all()))
    # distinct scores pick the largest: compare against a per-row sort
    score = torch.randn(T, dtype=torch.float64)
    got = mt.cumulative_topk(score, 3)
    ref = torch.zeros(T, T, dtype=torch.bool)
    for t in range(T):
        order = sorted(range(t + 1), key=lambda s: (-score[s].item(), s))[:3]
        ref[t, order] = True
    good &= check("cumulative top-k picks the best w of the prefix", bool((got == ref).all()))

    # (c) finite differences, training mode, HAX in both semantics. The gate loss sees Q and K (so xx_proj, and every
    # parameter of the layers below) only through stop-gradients: detached features and targets. There finite
    # differences of the objective are not its gradient by definition, so: E of the last layer and dx_proj_1 against
    # finite differences of CE + 0.1 gate; xx_proj against finite differences of CE, and the gate adds nothing to it.
    batch = [(torch.randint(0, V, (t,)), torch.randint(0, V, (t,)), torch.tensor([i % 3 != 1 for i in range(t)]))
             for t in (7, 5)]
    cands = {(l, q): sorted(torch.randperm(len(batch[q][0]))[:4].tolist()) for l in range(L) for q in range(2)}
    for semantics in ("causal", "paper"):
        cfg = config("sign_bin_lsh+key_selection", semantics)

        def loss(names, with_gate):
            def f(*values):
                ps = dict(params)
                ps.update(zip(names, values))
                _, ce, gate = mt.objective(batch, ps, cfg, 9 if semantics == "paper" else 0, cands)
                return ce + 0.1 * gate if with_gate else ce
            return f

        def grad(names, with_gate):
            inputs = tuple(params[n].detach().clone().requires_grad_() for n in names)
            return inputs, torch.autograd.grad(loss(names, with_gate)(*inputs), inputs)

        fd = lambda names, with_gate: torch.autograd.gradcheck(loss(names, with_gate), grad(names, with_gate)[0],
                                                               eps=1e-6, atol=1e-7, rtol=1e-5, raise_exception=False)
        xx = ["layers.0.mixer.xx_proj.weight", "layers.1.mixer.xx_proj.weight"]
        good &= check(f"finite differences: E, dx_proj_1 ({semantics})",
                      fd(["layers.1.mixer.E", "layers.0.mixer.dx_proj_1.weight", "layers.1.mixer.dx_proj_1.weight"], True))
        good &= check(f"finite differences: xx_proj ({semantics})",
                      fd(xx, False) and all(torch.equal(a, b) for a, b in zip(grad(xx, True)[1], grad(xx, False)[1])))

    # (e) end to end through the command line
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "ckpt"))
        json.dump(config("sign_bin_lsh+key_selection", "paper"), open(os.path.join(tmp, "ckpt/config.json"), "w"))
        mt.write_safetensors(os.path.join(tmp, "ckpt/model.safetensors"),
                             {k: v.detach().numpy() for k, v in params.items()})
        with open(os.path.join(tmp, "batch.txt"), "w") as f:
            for seq in batch:
                for row in seq:
                    f.write(" ".join(str(int(v)) for v in row) + "\n")
        with open(os.path.join(tmp, "cand.txt"), "w") as f:
            for (l, q), c in sorted(cands.items()):
                f.write(" ".join(map(str, [l, q] + c)) + "\n")
        subprocess.run([sys.executable, mt.__file__, os.path.join(tmp, "ckpt"), os.path.join(tmp, "batch.txt"),
                        os.path.join(tmp, "out"), "--padded-length", "9", "--gate-candidates",
                        os.path.join(tmp, "cand.txt")], check=True)
        _, ce, gate = mt.objective(batch, params, config("sign_bin_lsh+key_selection", "paper"), 9, cands)
        out = lambda f: np.load(os.path.join(tmp, "out", f))[0]
        grads = mt.read_safetensors(os.path.join(tmp, "out/grads.safetensors"))
        good &= check("command line: losses and gradient names",
                      abs(out("loss.npy") - ce.item()) < 1e-5 and abs(out("gate_loss.npy") - gate.item()) < 1e-5
                      and set(grads) == {k for k in params if not mt.is_buffer(k)})
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
