"""HAX, the paper's sparse-attention branch, as a PyTorch module that any SSM layer can add (reference.md §3.3,
§3.5-3.10): K | Q = xx_proj(xc) (K the first half), V = xc, each query attends over at most total_keys keys chosen
by LSH buckets and/or a small key-scoring MLP, and the layer adds E * attn * silu(z) to its output. The whole branch
runs in hax's kernels (hax_branch_* of the C ABI): forward, backward, and the key scorer's ranking (gate) loss."""
import ctypes
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from hax import _capi
from hax.torch._tensors import check_tensor, f32, like, ptr, spec
from hax.torch.ops import semantics_code, silu

PATTERNS = ("sliding_window", "sink", "dilated", "sign_bin_lsh", "argmax_lsh", "key_selection", "full")
SCORER = ("dx_proj_1.weight", "dx_proj_1.bias", "dx_proj_2.weight", "dx_proj_2.bias", "dx_proj_3.weight",
          "dx_proj_3.bias")


class _Branch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xc, xx_proj, lsh_projection, settings, noise_seed, *scorer):
        batch, T, I = xc.shape
        args, keep = _branch_args(settings, batch, T, xx_proj, scorer, lsh_projection)
        attn = torch.empty(batch, T, I, dtype=torch.float32)
        gate_loss = ctypes.c_double(0.0)
        context = _capi.Context()
        xc32 = f32(xc)
        _capi.call("hax_branch_forward", ctypes.byref(args), ptr(xc32), int(settings["training"]),
                   ctypes.c_uint64(noise_seed), ptr(attn), ctypes.byref(gate_loss), ctypes.byref(context.handle))
        ctx.set_materialize_grads(False)
        ctx.context, ctx.keep = context, keep
        ctx.specs = [spec(t) for t in (xc, xx_proj)] + [spec(t) for t in scorer]
        return attn.to(xc.dtype), torch.tensor(gate_loss.value, dtype=xc.dtype)

    @staticmethod
    def backward(ctx, dattn, dgate):
        xc_spec, xx_spec = ctx.specs[:2]
        dattn = torch.zeros(xc_spec[1], dtype=torch.float32) if dattn is None else f32(dattn)
        gate_weight = 0.0 if dgate is None else float(dgate)
        dxc = torch.empty(xc_spec[1], dtype=torch.float32)
        dxx = torch.empty(xx_spec[1], dtype=torch.float32)
        dscorer = [torch.empty(s[1], dtype=torch.float32) for s in ctx.specs[2:]]
        pointers = (ctypes.c_void_p * 6)(*([ptr(g) for g in dscorer] + [None] * (6 - len(dscorer))))
        _capi.call("hax_branch_backward", ctx.context.handle, ptr(dattn), ctypes.c_float(gate_weight), ptr(dxc),
                   ptr(dxx), pointers)
        ctx.context = None  # the saved activations go now, not with the graph
        return (like(dxc, xc_spec), like(dxx, xx_spec), None, None, None,
                *(like(g, s) for g, s in zip(dscorer, ctx.specs[2:])))


def _branch_args(settings, batch, T, xx_proj, scorer, lsh_projection):
    """The C arguments, and the float32 tensors they point into (kept alive by the caller)."""
    keep = [f32(xx_proj)] + [f32(t) for t in scorer] + [f32(lsh_projection)]
    scorer_pointers = (ctypes.c_void_p * 6)(*([ptr(t) for t in keep[1:-1]] + [None] * (6 - len(scorer))))
    s = settings
    args = _capi.BranchArgs(batch, T, s["channels"], s["state"], s["sparse_arch"].encode(), s["total_keys"],
                            s["max_length"], s["num_hash"], s["semantics"], int(s["lsh_statistics"] == "running"),
                            int(s["ks_normalization"] == "running"), ptr(keep[0]), scorer_pointers, ptr(keep[-1]),
                            s["lsh_resample"].encode(), ",".join(s["paper_without"]).encode())
    return args, keep


class HaxAttention(nn.Module):
    """The sparse-attention branch of a HAX layer, for inputs xc (batch, T, d_inner): the SSM's conv output in Mamba.

    forward(xc, z=None) returns E * attn * silu(z) (E * attn without z: Mamba2 gates later), the term a HAX mixer
    adds to its SSM output. In training mode with key selection it also sets self.gate_loss, the key scorer's
    ranking loss (0-dim tensor): add it to the objective with a weight (hax trains with 0.1 per layer); its gradient
    reaches only the scorer. Otherwise gate_loss is a constant 0. Parameter names are the reference's
    (xx_proj.weight, E, dx_proj_{1,2,3}.*; buffer lsh_projection, with an LSH pattern only), so a hax checkpoint's
    mixer tensors load as they are.

    lsh_resample ("never", "training", "every_forward") says when the LSH projection is redrawn instead of read
    from the buffer (hax_lsh_resample); paper_without lists `paper` ingredients to turn off (hax_paper_without:
    lsh_statistics, ks_normalization, uniform_fallback, gate_padding); lsh_statistics / ks_normalization "running"
    are the `causal` options of the same names. Sequences in a batch all count as full length: under `paper`,
    whose statistics span the padded sequence, run sequences of different lengths as separate batches."""

    def __init__(self, d_inner, d_state, sparse_arch="sign_bin_lsh+key_selection", num_hash=8, semantics="causal",
                 total_keys=64, max_length=2048, seed=1, lsh_statistics="none", ks_normalization="position",
                 lsh_resample="never", paper_without=()):
        super().__init__()
        names = sparse_arch.split("+") if isinstance(sparse_arch, str) else []
        unknown = [n for n in names if n not in PATTERNS]
        if not names or unknown:
            raise ValueError(f"sparse_arch: unknown pattern(s) {unknown or [sparse_arch]}; known: {', '.join(PATTERNS)}")
        if lsh_statistics not in ("none", "running") or ks_normalization not in ("position", "running"):
            raise ValueError(f"lsh_statistics must be 'none' or 'running' and ks_normalization 'position' or "
                             f"'running', got {lsh_statistics!r} and {ks_normalization!r}")
        if lsh_resample not in ("never", "training", "every_forward"):
            raise ValueError(f"lsh_resample must be 'never', 'training' or 'every_forward', got {lsh_resample!r}")
        self.settings = {"channels": d_inner, "state": d_state, "sparse_arch": sparse_arch, "num_hash": num_hash,
                         "semantics": semantics_code(semantics), "total_keys": total_keys, "max_length": max_length,
                         "lsh_statistics": lsh_statistics, "ks_normalization": ks_normalization,
                         "lsh_resample": lsh_resample, "paper_without": tuple(paper_without)}
        self.key_selection = "key_selection" in names
        F2 = 2 * d_state
        self.xx_proj = nn.Linear(d_inner, F2, bias=False)
        self.E = nn.Parameter(torch.ones(d_inner))
        if self.key_selection:
            self.dx_proj_1, self.dx_proj_2, self.dx_proj_3 = nn.Linear(F2, F2), nn.Linear(F2, F2), nn.Linear(F2, 1)
        lsh = any(n in ("sign_bin_lsh", "argmax_lsh") for n in names)
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("lsh_projection", torch.randn(d_state, num_hash, generator=generator) if lsh else None)
        self.gate_loss = torch.zeros(())

    def scorer_parameters(self):
        if not self.key_selection:
            return []
        return [self.dx_proj_1.weight, self.dx_proj_1.bias, self.dx_proj_2.weight, self.dx_proj_2.bias,
                self.dx_proj_3.weight, self.dx_proj_3.bias]

    def forward(self, xc, z=None):
        check_tensor(xc, "xc", 3, (None, None, self.settings["channels"]))
        check_tensor(z, "z", 3, tuple(xc.shape), optional=True)
        settings = dict(self.settings, training=self.training and self.key_selection)
        # What the branch draws (gate-loss candidates, fresh LSH projections) comes from torch's generator, so that
        # torch.manual_seed makes a run repeatable; a forward that draws nothing leaves the generator alone.
        resample = self.settings["lsh_resample"]
        draws = settings["training"] or resample == "every_forward" or (resample == "training" and self.training)
        noise_seed = int(torch.randint(0, 2**62, (1,)).item()) if draws else 0
        attn, gate_loss = _Branch.apply(xc, self.xx_proj.weight, self.lsh_projection, settings, noise_seed,
                                        *self.scorer_parameters())
        self.gate_loss = gate_loss if settings["training"] else torch.zeros((), dtype=xc.dtype)
        out = attn * self.E
        return out * silu(z) if z is not None else out

    def extra_repr(self):
        s = self.settings
        return (f"d_inner={s['channels']}, d_state={s['state']}, sparse_arch={s['sparse_arch']!r}, "
                f"num_hash={s['num_hash']}, total_keys={s['total_keys']}")
