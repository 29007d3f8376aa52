#!/usr/bin/env python3
"""Oracle for hax's AdamW: runs torch.optim.AdamW with the reference's LambdaLR warm-up on given data.

Usage: adamw_torch.py DIR, where DIR holds (written by tests/training):
  config.json  {"n": N, "steps": S, "lr": base lr, "warmup": W, "beta1", "beta2", "eps", "weight_decay"}
  params.f32   N float32: the initial parameters
  grads.f32    S*N float32: the gradient of each step
and receives
  trajectory.f32  S*N float32: the parameters after each step
  exp_avg.f32, exp_avg_sq.f32  N float32 each: the moments after the last step
Exits with 77 (the "skipped" code) when torch cannot be imported.
"""
import json
import pathlib
import sys

try:
    import numpy as np
    import torch
except ImportError as error:
    print(f"adamw_torch.py: {error}", file=sys.stderr)
    sys.exit(77)


def warmup_factor(warmup):
    # reference §2.3: LambdaLR(f(s) = s / warmup if s < warmup else 1); warmup 0 means a constant lr.
    return lambda s: s / warmup if s < warmup else 1.0


def main(directory):
    config = json.loads((directory / "config.json").read_text())
    n, steps = config["n"], config["steps"]
    params = torch.from_numpy(np.fromfile(directory / "params.f32", dtype=np.float32, count=n))
    grads = np.fromfile(directory / "grads.f32", dtype=np.float32, count=steps * n).reshape(steps, n)

    weight = torch.nn.Parameter(params.clone())
    optimizer = torch.optim.AdamW([weight], lr=config["lr"], betas=(config["beta1"], config["beta2"]),
                                  eps=config["eps"], weight_decay=config["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_factor(config["warmup"]))
    trajectory = np.empty((steps, n), dtype=np.float32)
    for step in range(steps):
        weight.grad = torch.from_numpy(grads[step].copy())
        optimizer.step()
        scheduler.step()
        trajectory[step] = weight.detach().numpy()

    state = optimizer.state[weight]
    trajectory.tofile(directory / "trajectory.f32")
    state["exp_avg"].numpy().astype(np.float32).tofile(directory / "exp_avg.f32")
    state["exp_avg_sq"].numpy().astype(np.float32).tofile(directory / "exp_avg_sq.f32")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(pathlib.Path(sys.argv[1]))
