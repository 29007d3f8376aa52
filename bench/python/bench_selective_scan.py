#!/usr/bin/python3
"""hax's selective_scan_fn (hax.torch, over libhax_c.so) against the pure-PyTorch scan that CPU users of mamba_ssm
fall back to today, measured in the same run.

The baseline is this file's own implementation of the algorithm of mamba_ssm's `selective_scan_ref`
(mamba_ssm/ops/selective_scan_interface.py), in float32: deltaA = exp(einsum(delta, A)) and deltaB_u as whole
(batch, dim, L, N) tensors, then a Python loop over L carrying the (batch, dim, N) state and contracting it with C_t;
its backward is PyTorch autograd through that loop. One change, in the baseline's favour: the loop walks
deltaA / deltaB_u / C with unbind() instead of indexing [:, :, i], whose autograd backward materializes a zero
tensor of the whole (batch, dim, L, N) size at every step (quadratic in L; hours at the big shape). Both run the same mamba-style call: 3-D (variable) B and C, D,
z gating, delta_bias and delta_softplus, as Mamba's mixer calls it.

Shapes: (batch 2, dim 1536, L 2048, N 16), a Mamba-130m-sized layer at length 2k, and (batch 32, dim 128, L 512,
N 16), the paper's joint-recall Mamba (d_inner 128, N 16) at a CPU-sized batch.

Each measurement: one warm-up call, then the median of --repeats timed calls (the baseline of the big shape is slow:
--big-repeats, default 1). "fwd" is the forward without autograd; "fwd+bwd" is the forward with inputs that require
grad plus backward of a random upstream gradient.

usage: PYTHONPATH=python bench/python/bench_selective_scan.py [--threads N] [--repeats R] [--big-repeats R] [--quick]
  --threads sets torch.set_num_threads and OMP_NUM_THREADS for hax (set before the library loads). Default: all
  cores. --quick: the small shape only.
"""
import argparse
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for torch and hax")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up (median reported)")
    p.add_argument("--big-repeats", type=int, default=1,
                   help="timed repeats of the baseline at the big shape (each takes tens of seconds)")
    p.add_argument("--quick", action="store_true", help="only the joint-recall shape")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


args = parse_args()
# hax's OpenMP reads OMP_NUM_THREADS when libhax_c.so loads: set it before anything imports hax (or torch).
os.environ["OMP_NUM_THREADS"] = str(args.threads)
if "HAX_LIBRARY" not in os.environ and os.path.exists(os.path.join(ROOT, "build", "libhax_c.so")):
    os.environ["HAX_LIBRARY"] = os.path.join(ROOT, "build", "libhax_c.so")
if os.path.isdir(os.path.join(ROOT, "python")):
    sys.path.append(os.path.join(ROOT, "python"))  # after PYTHONPATH: an explicit one wins

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
from hax.torch import selective_scan_fn  # noqa: E402


def selective_scan_baseline(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The algorithm of mamba_ssm's selective_scan_ref, float32, B / C 3-D (batch, N, L)."""
    dtype_in = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    B, C = B.float(), C.float()
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    # unbind, not deltaA[:, :, i]: the same steps, but autograd's backward of an index builds a zero tensor the
    # size of deltaA per step (O(L^2 b d N) memory traffic); unbind's backward stacks once. The faster baseline.
    for dA_i, dBu_i, C_i in zip(deltaA.unbind(2), deltaB_u.unbind(2), C.unbind(2)):
        x = dA_i * x + dBu_i
        ys.append(torch.einsum("bdn,bn->bd", x, C_i))
    y = torch.stack(ys, dim=2)
    out = y if D is None else y + u * D[:, None]
    if z is not None:
        out = out * F.silu(z)
    return out.to(dtype=dtype_in)


def make_inputs(batch, dim, L, N, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return {
        "u": r(batch, dim, L),
        "delta": r(batch, dim, L) * 0.5 - 1.0,
        "A": -torch.exp(torch.rand(dim, N, generator=g) * 2.0),
        "B": r(batch, N, L),
        "C": r(batch, N, L),
        "D": r(dim),
        "z": r(batch, dim, L),
        "delta_bias": r(dim) * 0.3,
    }


def timed(fn, repeats, warmup=True):
    if warmup:
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fwd(op, inputs):
    def run():
        with torch.no_grad():
            return op(**inputs, delta_softplus=True)
    return run


def fwd_bwd(op, inputs, grad_out):
    def run():
        leaves = {n: v.detach().requires_grad_(True) for n, v in inputs.items()}
        out = op(**leaves, delta_softplus=True)
        out.backward(grad_out)
        return leaves
    return run


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rel_diff(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def main():
    shapes = [("joint-recall Mamba", 32, 128, 512, 16)]
    if not args.quick:
        shapes.append(("Mamba-130m layer, 2k", 2, 1536, 2048, 16))
    rows = []
    for name, batch, dim, L, N in shapes:
        big = batch * dim * L * N > 50_000_000
        inputs = make_inputs(batch, dim, L, N, args.seed)
        grad_out = torch.randn(batch, dim, L, generator=torch.Generator().manual_seed(args.seed + 1))
        # agreement of the two in the same run (forward and one gradient), as a sanity column
        with torch.no_grad():
            out_h = selective_scan_fn(**inputs, delta_softplus=True)
            out_r = selective_scan_baseline(**inputs, delta_softplus=True)
        fwd_diff = rel_diff(out_h, out_r)
        ref_repeats = args.big_repeats if big else args.repeats
        t_ref_f = timed(fwd(selective_scan_baseline, inputs), ref_repeats, warmup=not big)
        t_hax_f = timed(fwd(selective_scan_fn, inputs), args.repeats)
        leaves_r = fwd_bwd(selective_scan_baseline, inputs, grad_out)()  # also the baseline's warm-up
        t_ref_b = timed(fwd_bwd(selective_scan_baseline, inputs, grad_out), ref_repeats, warmup=False)
        leaves_h = fwd_bwd(selective_scan_fn, inputs, grad_out)()
        t_hax_b = timed(fwd_bwd(selective_scan_fn, inputs, grad_out), args.repeats)
        grad_diff = max(rel_diff(leaves_h[n].grad, leaves_r[n].grad) for n in inputs)
        shape = f"{name}: batch {batch}, dim {dim}, L {L}, N {N}"
        rows.append((shape, "fwd", t_ref_f, t_hax_f, fwd_diff))
        rows.append((shape, "fwd+bwd", t_ref_b, t_hax_b, grad_diff))
        print(f"done: {shape}", file=sys.stderr, flush=True)

    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs)")
    print(f"threads: torch.get_num_threads() = {torch.get_num_threads()}, OMP_NUM_THREADS (hax) = "
          f"{os.environ['OMP_NUM_THREADS']}; torch {torch.__version__}")
    print(f"timing: median of {args.repeats} after one warm-up (baseline at the big shape: median of "
          f"{args.big_repeats}, its fwd without warm-up)")
    print()
    print("| shape | pass | PyTorch reference scan (ms) | hax selective_scan_fn (ms) | speed-up | max rel. diff |")
    print("|---|---|---:|---:|---:|---:|")
    for shape, kind, t_ref, t_hax, diff in rows:
        print(f"| {shape} | {kind} | {t_ref * 1e3:.1f} | {t_hax * 1e3:.1f} | {t_ref / t_hax:.1f}x | {diff:.1e} |")
    print()
    print("max rel. diff: max |hax - reference| / max |reference| over the output (fwd) or over every input's "
          "gradient (fwd+bwd, the worst input).")


if __name__ == "__main__":
    main()
