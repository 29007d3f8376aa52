#!/usr/bin/python3
"""The PyTorch baseline of `hax bench train-step`: one training step (forward, backward, AdamW) of the Mamba-1
model of reference.md §3.1-3.4 / §5.1, written the straightforward way the reference runs without the mamba_ssm CUDA
kernels: fp32 on the CPU, every tensor padded to the full length T, and the selective scan as a Python loop over time
(exp(ΔA) and ΔBx for all steps at once, then one state update and one C contraction per step, like the
`slow_forward` fallback of the reference's Mamba layer). It shares no code with hax.

The initialization is not the reference's (matrices and the embedding are Normal(0, 0.1), A_log = log(1..N),
D = 1, dt bias from dt in [1e-3, 0.1]); the shapes are the config's, which is all the timing depends on.

usage: mamba_torch_step.py [--config FILE] [--batch FILE] [--batch-size B] [--seq-len T] [--steps S]
                           [--warmup-steps W] [--threads N] [--seed S]
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
        dt = torch.exp(torch.rand(I) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_bias = torch.nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = torch.nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(I, 1))
        self.D = torch.nn.Parameter(torch.ones(I))
        self.out_proj = normal(D, I)
        self.out_proj_b = torch.nn.Parameter(torch.zeros(D)) if cfg.get("use_bias", False) else None

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
        return F.linear(y, self.out_proj, self.out_proj_b)


class Model(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, L = cfg["hidden_size"], cfg["num_hidden_layers"]
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)
        self.embedding = normal(cfg["vocab_size"], D)
        self.norms = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(D)) for _ in range(L)])
        self.mixers = torch.nn.ModuleList([Mixer(cfg) for _ in range(L)])
        self.norm_f = torch.nn.Parameter(torch.ones(D))

    def loss(self, inputs, labels, scored, mask):
        h = self.embedding[inputs]
        for norm, mixer in zip(self.norms, self.mixers):
            h = h + mixer(rmsnorm(h, norm, self.eps), mask)
        logits = rmsnorm(h, self.norm_f, self.eps) @ self.embedding.T   # tied output layer, every position
        return F.cross_entropy(logits[scored], labels[scored])           # mean over the scored positions


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
    args = p.parse_args()
    cfg = json.load(open(args.config))
    threads = args.threads if args.threads > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    model = Model(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    batch = load_batch(args, cfg, cfg.get("pad_token_id", 3))
    for _ in range(args.warmup_steps):
        timed_step(model, optimizer, batch)
    steps = [timed_step(model, optimizer, batch) for _ in range(args.steps)]
    seconds = [s["seconds"] for s in steps]
    print(json.dumps({
        "implementation": "PyTorch eager, fp32, padded batch, Python-loop selective scan",
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "seq_len": args.seq_len,
        "parameters": sum(t.numel() for t in model.parameters()),
        "warmup_steps": args.warmup_steps, "steps": steps,
        "median_seconds": statistics.median(seconds), "min_seconds": min(seconds),
    }))


if __name__ == "__main__":
    main()
