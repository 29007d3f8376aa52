#!/usr/bin/python3
"""Tests of hax.torch's drop-in CPU ops (issue 13) against independent pure-PyTorch float64 references.

Every reference here is written from the ops' definitions (mamba_ssm's semantics, src/hax/ops/sparse/*.h) and shares
no code with hax or with tools/oracle:
  selective_scan_fn          a sequential recurrence over L
  causal_conv1d_fn           F.conv1d with padding width-1, truncated
  mamba_chunk_scan_combined  the sequential SSD recurrence (no chunks)
  sparse_attention           a dense T x T mask of allowed keys, built query by query, and a masked softmax
  HaxAttention               the functional path above plus the key-selection MLP written out
Each op's forward and the gradient of every tensor argument are compared with the reference's autograd (random
upstream gradients, also through last_state / final_states). The ops compute in float32, so outputs must agree to
1e-4 and gradients to 1e-3, relative to the reference's largest magnitude.

Run from the repository root:
  PYTHONPATH=python /usr/bin/python3 -m unittest -v tests/python/test_ops.py
(HAX_LIBRARY=/path/to/libhax_c.so when the library is not in build/.)
"""
import math
import os
import sys
import unittest

import torch
import torch.nn.functional as F

if "HAX_LIBRARY" not in os.environ:  # run from anywhere: the build tree's library
    _default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "libhax_c.so")
    if os.path.exists(_default):
        os.environ["HAX_LIBRARY"] = os.path.abspath(_default)
_python_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python")
if os.path.isdir(_python_dir) and os.path.abspath(_python_dir) not in map(os.path.abspath, sys.path):
    sys.path.append(os.path.abspath(_python_dir))  # after PYTHONPATH: an explicit one wins

from hax.torch import (HaxAttention, causal_conv1d_fn, mamba_chunk_scan_combined,  # noqa: E402
                       selective_scan_fn, sparse_attention)

F64 = torch.float64
REL_OUT = 1e-4   # outputs, relative to the reference's max |value|
REL_GRAD = 1e-3  # gradients, relative to the reference gradient's max |value|
BAD_INPUT = (ValueError, TypeError)


# ---------------------------------------------------------------------------------------------------------------
# Independent float64 references.

def expand_groups_scan(M, dim):
    """B or C of the Mamba-1 scan, (b, N, L) or (b, G, N, L), as (b, dim, N, L): channel c reads group c // (dim/G)."""
    if M.dim() == 3:
        return M.unsqueeze(1).expand(-1, dim, -1, -1)
    return M.repeat_interleave(dim // M.shape[1], dim=1)


def ref_selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    d = delta if delta_bias is None else delta + delta_bias[:, None]
    if delta_softplus:
        d = F.softplus(d)
    batch, dim, L = u.shape
    Bx, Cx = expand_groups_scan(B, dim), expand_groups_scan(C, dim)
    h = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(L):
        h = torch.exp(d[:, :, t, None] * A) * h + (d[:, :, t] * u[:, :, t])[..., None] * Bx[..., t]
        ys.append((h * Cx[..., t]).sum(-1))
    y = torch.stack(ys, -1)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    return (y, h) if return_last_state else y


def ref_causal_conv1d(x, weight, bias=None, activation=None):
    L, width = x.shape[-1], weight.shape[1]
    out = F.conv1d(x, weight[:, None, :], bias, padding=width - 1, groups=x.shape[1])[..., :L]
    return F.silu(out) if activation in ("silu", "swish") else out


def ref_chunk_scan(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None, seq_idx=None,
                   dt_softplus=False, dt_limit=(0.0, float("inf")), return_final_states=False):
    del chunk_size, seq_idx, dt_limit  # the sequential recurrence has no chunks
    batch, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    d = dt if dt_bias is None else dt + dt_bias
    if dt_softplus:
        d = F.softplus(d)
    Bh, Ch = B.repeat_interleave(H // G, dim=2), C.repeat_interleave(H // G, dim=2)  # (b, L, H, N)
    S = x.new_zeros(batch, H, P, N) if initial_states is None else initial_states
    ys = []
    for t in range(L):
        decay = torch.exp(d[:, t] * A)[..., None, None]
        S = decay * S + (d[:, t, :, None] * x[:, t])[..., None] * Bh[:, t, :, None, :]
        ys.append((S * Ch[:, t, :, None, :]).sum(-1))
    y = torch.stack(ys, 1)
    if D is not None:
        y = y + (D[:, None] if D.dim() == 1 else D) * x
    if z is not None:
        y = y * F.silu(z)
    return (y, S) if return_final_states else y


def centred_scaled(X):
    """`paper`'s LSH input: per feature, centred over time, then divided by max(L2 norm over time, 1e-12)."""
    X = X - X.mean(0)
    return X / X.norm(dim=0).clamp_min(1e-12)


def ref_allowed(q, k, key_scores, lsh_projection, sparse_arch, semantics, total_keys, max_length):
    """(T, T) bool for ONE sequence: allowed[t, s] when key s is in query t's set, built query by query."""
    patterns = sparse_arch.split("+")
    w = total_keys // len(patterns)
    dil = max_length // w
    T = q.shape[0]
    buckets = {}
    if any(p.endswith("_lsh") for p in patterns):
        H = lsh_projection.double()
        xq, xk = (centred_scaled(q), centred_scaled(k)) if semantics == "paper" else (q, k)
        pq, pk = xq @ H, xk @ H
        weights = [2 ** j for j in range(H.shape[1])]
        sign_bin = lambda P: [sum(wj for wj, v in zip(weights, row.tolist()) if v > 0) for row in P]  # noqa: E731
        argmax = lambda P: [max(range(len(row)), key=lambda j: (row[j], -j)) for row in P.tolist()]  # noqa: E731
        buckets["sign_bin_lsh"] = (sign_bin(pq), sign_bin(pk))
        buckets["argmax_lsh"] = (argmax(pq), argmax(pk))
    scores = None if key_scores is None else key_scores.tolist()
    allowed = torch.zeros(T, T, dtype=torch.bool)
    for t in range(T):
        for p in patterns:
            if p == "sliding_window":
                keys = range(max(0, t - w + 1), t + 1)
            elif p == "sink":
                keys = range(0, min(w, t + 1))
            elif p == "dilated":
                keys = [s for s in range(t + 1) if s % dil == dil - 1]
            elif p == "full":
                keys = range(t + 1)
            elif p in ("sign_bin_lsh", "argmax_lsh"):
                bq, bk = buckets[p]
                keys = [s for s in range(t + 1) if bk[s] == bq[t]][-w:]  # the w most recent same-bucket keys
            elif p == "key_selection":
                keys = sorted(range(t + 1), key=lambda s: (-scores[s], s))[:w]  # ties to the lower position
            else:
                raise AssertionError(f"unknown pattern {p}")
            allowed[t, list(keys)] = True
    return allowed


def ref_sparse_attention(q, k, v, sparse_arch, key_scores=None, lsh_projection=None, semantics="causal",
                         total_keys=64, max_length=2048):
    N = q.shape[-1]
    outs = []
    for b in range(q.shape[0]):
        ks = None if key_scores is None else key_scores[b]
        allowed = ref_allowed(q[b].detach(), k[b].detach(), ks, lsh_projection, sparse_arch, semantics, total_keys,
                              max_length)
        empty = ~allowed.any(1)
        logits = (q[b] @ k[b].T) / math.sqrt(N)
        logits = logits.masked_fill(~allowed, -math.inf)
        logits = torch.where(empty[:, None], torch.zeros((), dtype=logits.dtype), logits)  # constant: no gradient
        probs = torch.softmax(logits, 1)
        if semantics == "causal":
            probs = probs * (~empty)[:, None].to(probs.dtype)  # no key: output 0
        # paper: a query with no key attends uniformly to all T positions
        outs.append(probs @ v[b])
    return torch.stack(outs)


# ---------------------------------------------------------------------------------------------------------------
# Helpers.

class Rng:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.g) * scale

    def rand(self, *shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=self.g)


def max_err(actual, expected):
    actual, expected = actual.detach().double(), expected.detach().double()
    if expected.numel() == 0:
        return 0.0, 0.0
    return (actual - expected).abs().max().item(), expected.abs().max().item()


class OpTestCase(unittest.TestCase):
    def assert_close(self, actual, expected, rel, what):
        self.assertIsNotNone(actual, f"{what}: missing (None)")
        self.assertEqual(tuple(actual.shape), tuple(expected.shape), f"{what}: shape")
        self.assertTrue(bool(torch.isfinite(actual.detach().double()).all()), f"{what}: not finite")
        err, scale = max_err(actual, expected)
        self.assertLessEqual(err, rel * max(scale, 1e-4),
                             f"{what}: max abs error {err:.3e}, reference max |x| {scale:.3e} (allowed rel {rel})")

    def check_against_reference(self, op, ref, inputs, kwargs, diff, seed=0, rel_out=REL_OUT, rel_grad=REL_GRAD,
                                label=""):
        """Runs op on float32 leaves and ref on float64 copies of the same values, with the same random upstream
        gradient on every output; compares outputs and the gradient of every name in `diff`."""
        x32, x64 = {}, {}
        for name, value in inputs.items():
            if isinstance(value, torch.Tensor):
                base = value.detach().float()
                x32[name] = base.clone().requires_grad_(name in diff)
                x64[name] = base.double().requires_grad_(name in diff)
            else:
                x32[name] = x64[name] = value
        out32, out64 = op(**x32, **kwargs), ref(**x64, **kwargs)
        out32 = out32 if isinstance(out32, tuple) else (out32,)
        out64 = out64 if isinstance(out64, tuple) else (out64,)
        self.assertEqual(len(out32), len(out64), f"{label}: number of outputs")
        rng = Rng(seed + 1000)
        loss32, loss64 = 0, 0
        for i, (a, e) in enumerate(zip(out32, out64)):
            self.assertEqual(a.dtype, torch.float32, f"{label}: output {i} dtype")
            self.assert_close(a, e, rel_out, f"{label}: output {i}")
            g = rng.randn(*e.shape).double()
            loss32 = loss32 + (a.double() * g).sum()
            loss64 = loss64 + (e * g).sum()
        names = sorted(diff)
        g32 = torch.autograd.grad(loss32, [x32[n] for n in names], allow_unused=True)
        g64 = torch.autograd.grad(loss64, [x64[n] for n in names], allow_unused=True)
        for n, a, e in zip(names, g32, g64):
            if e is None:
                e = torch.zeros_like(x64[n])
            if a is None:
                a = torch.zeros_like(x32[n])
            self.assert_close(a, e, rel_grad, f"{label}: d{n}")
        return out32, g32


# ---------------------------------------------------------------------------------------------------------------
# selective_scan_fn

def scan_inputs(rng, batch, dim, L, N, groups=None, softplus=True, bias=True, D=True, z=True):
    """mamba_ssm-shaped inputs; groups None: 3-D B / C, else 4-D with that many groups."""
    bc_shape = (batch, N, L) if groups is None else (batch, groups, N, L)
    if softplus:
        delta = rng.randn(batch, dim, L, scale=0.8) - 0.5
    else:
        delta = rng.rand(batch, dim, L, lo=0.0, hi=0.6)  # >= 0 as given
    return {
        "u": rng.randn(batch, dim, L),
        "delta": delta,
        "A": -rng.rand(dim, N, lo=0.2, hi=1.8),
        "B": rng.randn(*bc_shape),
        "C": rng.randn(*bc_shape),
        "D": rng.randn(dim) if D else None,
        "z": rng.randn(batch, dim, L) if z else None,
        "delta_bias": (rng.randn(dim, scale=0.3) if softplus else rng.rand(dim, lo=0.0, hi=0.3)) if bias else None,
    }


SCAN_CASES = [
    # (batch, dim, L, N, groups, softplus, bias, D, z, return_last_state)
    (2, 4, 17, 3, None, True, True, True, True, True),
    (2, 6, 33, 4, 2, True, True, True, True, True),      # 4-D B/C, G = 2; L past one checkpoint chunk (32)
    (1, 6, 70, 2, 3, False, True, False, False, True),   # G = 3, no softplus, no D / z, three checkpoint chunks
    (3, 5, 9, 4, None, False, False, False, True, False),
    (2, 4, 1, 3, 1, True, False, True, False, True),     # L = 1, 4-D with G = 1
    (1, 8, 65, 16, 4, True, True, True, True, False),    # N = 16 as in Mamba, G = 4
    (2, 3, 40, 5, None, True, True, True, True, False),
    (2, 3, 10, 2, 3, True, True, True, True, True),      # G = dim: a group per channel
]


class TestSelectiveScan(OpTestCase):
    def test_against_sequential_reference(self):
        for i, (batch, dim, L, N, G, sp, bias, D, z, last) in enumerate(SCAN_CASES):
            label = (f"selective_scan case {i}: batch={batch} dim={dim} L={L} N={N} groups={G} softplus={sp} "
                     f"delta_bias={bias} D={D} z={z} return_last_state={last}")
            with self.subTest(label):
                inputs = scan_inputs(Rng(i), batch, dim, L, N, G, sp, bias, D, z)
                diff = {n for n, v in inputs.items() if v is not None}
                self.check_against_reference(selective_scan_fn, ref_selective_scan, inputs,
                                             dict(delta_softplus=sp, return_last_state=last), diff, seed=i,
                                             label=label)

    def test_last_state_only_gradient(self):
        """A loss on last_state alone: every gradient comes through the final state."""
        inputs = scan_inputs(Rng(7), 2, 4, 20, 3, 2)
        x32 = {n: v.clone().requires_grad_(True) for n, v in inputs.items()}
        x64 = {n: v.double().requires_grad_(True) for n, v in inputs.items()}
        _, last32 = selective_scan_fn(**x32, delta_softplus=True, return_last_state=True)
        _, last64 = ref_selective_scan(**x64, delta_softplus=True, return_last_state=True)
        self.assert_close(last32, last64, REL_OUT, "last_state")
        last32.double().pow(2).sum().backward()
        last64.pow(2).sum().backward()
        for n in inputs:  # C, D and z do not reach the last state: no gradient (None or zeros)
            g32 = x32[n].grad if x32[n].grad is not None else torch.zeros_like(x32[n])
            g64 = x64[n].grad if x64[n].grad is not None else torch.zeros_like(x64[n])
            self.assert_close(g32, g64, REL_GRAD, f"d{n} through last_state only")

    def test_groups_one_4d_equals_3d(self):
        inputs = scan_inputs(Rng(8), 2, 4, 12, 3, None)
        out3 = selective_scan_fn(**inputs, delta_softplus=True)
        four = dict(inputs, B=inputs["B"][:, None], C=inputs["C"][:, None])
        out4 = selective_scan_fn(**four, delta_softplus=True)
        self.assert_close(out4, out3, 1e-6, "4-D B/C with G=1 against 3-D")

    def test_gradcheck(self):
        """torch.autograd.gradcheck on float64 inputs. The op computes in float32, so finite differences carry
        float32 rounding / eps: eps=1e-3, atol=rtol=1e-2."""
        inputs = scan_inputs(Rng(9), 1, 2, 5, 2, 2)
        names = list(inputs)
        args = [inputs[n].double().requires_grad_(True) for n in names]

        def f(*xs):
            return selective_scan_fn(**dict(zip(names, xs)), delta_softplus=True, return_last_state=True)

        self.assertTrue(torch.autograd.gradcheck(f, args, eps=1e-3, atol=1e-2, rtol=1e-2))

    def test_dtypes(self):
        inputs = scan_inputs(Rng(10), 2, 4, 16, 3, 2)
        ref = ref_selective_scan(**{n: v.double() for n, v in inputs.items()}, delta_softplus=True)
        for dtype, rel in ((torch.float64, REL_OUT), (torch.bfloat16, 3e-2), (torch.float16, 5e-3)):
            with self.subTest(dtype=str(dtype)):
                xs = {n: v.to(dtype).requires_grad_(True) for n, v in inputs.items()}
                out, last = selective_scan_fn(**xs, delta_softplus=True, return_last_state=True)
                self.assertEqual(out.dtype, dtype, "out dtype follows u")
                self.assertEqual(last.dtype, dtype, "last_state dtype follows u")
                # the reference on the same (rounded) values
                ref_r = ref_selective_scan(**{n: v.detach().double() for n, v in xs.items()}, delta_softplus=True)
                self.assert_close(out, ref_r, rel, f"out ({dtype})")
                self.assert_close(out, ref, rel if dtype != torch.float64 else REL_OUT, f"out ({dtype}) vs fp32 data")
                (out.float().sum() + last.float().sum()).backward()
                for n, x in xs.items():
                    self.assertIsNotNone(x.grad, f"d{n} ({dtype})")
                    self.assertEqual(x.grad.dtype, dtype, f"d{n} dtype ({dtype})")
                    self.assertTrue(bool(torch.isfinite(x.grad.float()).all()), f"d{n} finite ({dtype})")

    def test_non_contiguous(self):
        rng = Rng(11)
        batch, dim, L, N, G = 2, 6, 21, 4, 2
        base = scan_inputs(rng, batch, dim, L, N, G)
        # transposed views, a strided slice, and a batch-broadcast (stride 0) B
        views = {
            "u": base["u"].transpose(1, 2).contiguous().transpose(1, 2),
            "delta": torch.stack([base["delta"], base["delta"]], -1)[..., 0],  # stride 2 in L
            "A": base["A"].t().contiguous().t(),
            "B": base["B"][:1].expand(batch, -1, -1, -1),
            "C": base["C"].permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1),
            "D": torch.stack([base["D"], base["D"]], 1)[:, 0],
            "z": base["z"].transpose(1, 2).contiguous().transpose(1, 2),
            "delta_bias": base["delta_bias"],
        }
        for n in ("u", "delta", "A", "C", "D", "z"):
            self.assertFalse(views[n].is_contiguous(), f"the test's {n} should be a non-contiguous view")
        dense = {n: v.contiguous() for n, v in views.items()}
        out_v, last_v = selective_scan_fn(**views, delta_softplus=True, return_last_state=True)
        out_d, last_d = selective_scan_fn(**dense, delta_softplus=True, return_last_state=True)
        self.assert_close(out_v, out_d, 1e-6, "out (non-contiguous vs contiguous)")
        self.assert_close(last_v, last_d, 1e-6, "last_state (non-contiguous vs contiguous)")
        # gradients through non-contiguous leaves
        t_u = base["u"].transpose(1, 2).contiguous().requires_grad_(True)  # (b, L, d) leaf, op sees its transpose
        t_A = base["A"].t().contiguous().requires_grad_(True)
        t_B = base["B"][:1].clone().requires_grad_(True)
        out = selective_scan_fn(t_u.transpose(1, 2), dense["delta"], t_A.t(), t_B.expand(batch, -1, -1, -1),
                                dense["C"], dense["D"], dense["z"], dense["delta_bias"], delta_softplus=True)
        g = Rng(12).randn(*out.shape)
        (out * g).sum().backward()
        c_u, c_A = dense["u"].clone().requires_grad_(True), dense["A"].clone().requires_grad_(True)
        c_B = dense["B"].clone().requires_grad_(True)
        out_c = selective_scan_fn(c_u, dense["delta"], c_A, c_B, dense["C"], dense["D"], dense["z"],
                                  dense["delta_bias"], delta_softplus=True)
        (out_c * g).sum().backward()
        self.assert_close(t_u.grad.transpose(1, 2), c_u.grad, 1e-6, "du (transposed leaf)")
        self.assert_close(t_A.grad.t(), c_A.grad, 1e-6, "dA (transposed leaf)")
        self.assert_close(t_B.grad, c_B.grad.sum(0, keepdim=True), 1e-5, "dB (expanded leaf)")

    def test_errors(self):
        base = scan_inputs(Rng(13), 2, 4, 10, 3, 2)

        def call(**over):
            return selective_scan_fn(**dict(base, **over), delta_softplus=True)

        cases = [
            ("u", dict(u=base["u"][0]), BAD_INPUT),
            ("u", dict(u=base["u"].to(torch.int32)), BAD_INPUT),
            ("delta", dict(delta=base["delta"][..., :-1]), BAD_INPUT),
            ("A", dict(A=base["A"][:-1]), BAD_INPUT),
            ("A", dict(A=base["A"][:, 0]), BAD_INPUT),
            ("B", dict(B=base["B"][:, :, :-1]), BAD_INPUT),
            ("B", dict(B=torch.randn(2, 3, 3, 10), C=torch.randn(2, 3, 3, 10)), BAD_INPUT),  # dim 4, 3 groups
            ("C", dict(C=base["C"][..., :-1]), BAD_INPUT),
            ("D", dict(D=torch.randn(5)), BAD_INPUT),
            ("z", dict(z=base["z"][:, :-1]), BAD_INPUT),
            ("delta_bias", dict(delta_bias=torch.randn(4, 1)), BAD_INPUT),
            ("A", dict(A=base["A"].abs()), ValueError),  # A must be < 0
        ]
        for name, over, exc in cases:
            with self.subTest(argument=name, change=list(over)):
                with self.assertRaises(exc) as cm:
                    call(**over)
                self.assertRegex(str(cm.exception), rf"\b{name}\b", f"the message names {name}")
        # delta < 0 without softplus
        args = dict(base, delta=base["delta"].abs(), delta_bias=None)
        args["delta"][0, 0, 3] = -0.25
        with self.assertRaises(ValueError) as cm:
            selective_scan_fn(**args, delta_softplus=False)
        self.assertRegex(str(cm.exception), r"\bdelta\b")
        # delta >= 0 but delta + delta_bias < 0
        args = dict(base, delta=base["delta"].abs(), delta_bias=torch.full((4,), -10.0))
        with self.assertRaises(ValueError) as cm:
            selective_scan_fn(**args, delta_softplus=False)
        self.assertRegex(str(cm.exception), r"\bdelta(_bias)?\b")

    @unittest.skipUnless(torch.cuda.is_available(), "no CUDA device: the CPU-only check of CUDA tensors needs one")
    def test_cuda_tensor_refused(self):
        base = scan_inputs(Rng(14), 1, 2, 4, 2)
        with self.assertRaises(BAD_INPUT) as cm:
            selective_scan_fn(**dict(base, u=base["u"].cuda()), delta_softplus=True)
        self.assertRegex(str(cm.exception), r"\bu\b")


# ---------------------------------------------------------------------------------------------------------------
# causal_conv1d_fn

CONV_CASES = [
    # (batch, dim, L, width, bias, activation)
    (2, 5, 19, 4, True, None),
    (2, 5, 19, 4, True, "silu"),
    (1, 3, 7, 2, False, "swish"),
    (3, 4, 2, 4, True, "silu"),   # L < width
    (1, 6, 33, 3, False, None),
    (2, 2, 1, 4, True, None),     # L = 1
]


class TestCausalConv1d(OpTestCase):
    def test_against_conv1d(self):
        for i, (batch, dim, L, width, bias, act) in enumerate(CONV_CASES):
            label = f"causal_conv1d case {i}: batch={batch} dim={dim} L={L} width={width} bias={bias} activation={act}"
            with self.subTest(label):
                rng = Rng(100 + i)
                inputs = {"x": rng.randn(batch, dim, L), "weight": rng.randn(dim, width, scale=0.5),
                          "bias": rng.randn(dim) if bias else None}
                diff = {n for n, v in inputs.items() if v is not None}
                self.check_against_reference(causal_conv1d_fn, ref_causal_conv1d, inputs, dict(activation=act),
                                             diff, seed=i, label=label)

    def test_gradcheck(self):
        rng = Rng(110)
        args = (rng.randn(1, 3, 6).double().requires_grad_(True), rng.randn(3, 4).double().requires_grad_(True),
                rng.randn(3).double().requires_grad_(True))
        f = lambda x, w, b: causal_conv1d_fn(x, w, b, activation="silu")  # noqa: E731
        self.assertTrue(torch.autograd.gradcheck(f, args, eps=1e-3, atol=1e-2, rtol=1e-2))

    def test_dtypes_and_non_contiguous(self):
        rng = Rng(111)
        x, w, b = rng.randn(2, 4, 15), rng.randn(4, 3), rng.randn(4)
        ref = ref_causal_conv1d(x.double(), w.double(), b.double(), "silu")
        for dtype, rel in ((torch.float64, REL_OUT), (torch.bfloat16, 3e-2), (torch.float16, 5e-3)):
            with self.subTest(dtype=str(dtype)):
                out = causal_conv1d_fn(x.to(dtype), w.to(dtype), b.to(dtype), activation="silu")
                self.assertEqual(out.dtype, dtype)
                ref_r = ref_causal_conv1d(x.to(dtype).double(), w.to(dtype).double(), b.to(dtype).double(), "silu")
                self.assert_close(out, ref_r, rel, f"out ({dtype})")
                self.assert_close(out, ref, max(rel, REL_OUT) if dtype != torch.float64 else REL_OUT, f"{dtype}")
        xt = x.transpose(1, 2).contiguous().requires_grad_(True)
        wt = w.t().contiguous().requires_grad_(True)
        out_v = causal_conv1d_fn(xt.transpose(1, 2), wt.t(), b, activation="silu")
        xc, wc = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        out_c = causal_conv1d_fn(xc, wc, b, activation="silu")
        self.assert_close(out_v, out_c, 1e-6, "non-contiguous x / weight")
        g = rng.randn(*out_c.shape)
        (out_v * g).sum().backward()
        (out_c * g).sum().backward()
        self.assert_close(xt.grad.transpose(1, 2), xc.grad, 1e-6, "dx (transposed leaf)")
        self.assert_close(wt.grad.t(), wc.grad, 1e-6, "dweight (transposed leaf)")

    def test_conv1d_weight_layout(self):
        """A Conv1d's (dim, 1, width) weight is accepted as well and means the same."""
        rng = Rng(112)
        x, w, b = rng.randn(2, 4, 11), rng.randn(4, 3), rng.randn(4)
        self.assert_close(causal_conv1d_fn(x, w[:, None, :], b), causal_conv1d_fn(x, w, b), 1e-7,
                          "(dim, 1, width) against (dim, width)")

    def test_errors(self):
        x, w, b = torch.randn(2, 4, 9), torch.randn(4, 3), torch.randn(4)
        cases = [
            ("x", dict(x=x[0]), BAD_INPUT),
            ("x", dict(x=x.to(torch.int64)), BAD_INPUT),
            ("weight", dict(weight=torch.randn(5, 3)), BAD_INPUT),
            ("weight", dict(weight=torch.randn(4, 2, 3)), BAD_INPUT),
            ("weight", dict(weight=torch.randn(4, 3).to(torch.int32)), BAD_INPUT),
            ("bias", dict(bias=torch.randn(3)), BAD_INPUT),
            ("activation", dict(activation="relu"), BAD_INPUT),
        ]
        for name, over, exc in cases:
            with self.subTest(argument=name, change=list(over)):
                args = dict(dict(x=x, weight=w, bias=b, activation=None), **over)
                with self.assertRaises(exc) as cm:
                    causal_conv1d_fn(**args)
                self.assertRegex(str(cm.exception), rf"\b{name}\b")


# ---------------------------------------------------------------------------------------------------------------
# mamba_chunk_scan_combined

def ssd_inputs(rng, batch, L, H, P, G, N, softplus=True, bias=True, D="H", z=True, init=True):
    dt = rng.randn(batch, L, H, scale=0.8) - 0.5 if softplus else rng.rand(batch, L, H, lo=0.0, hi=0.6)
    Dval = {"H": rng.randn(H), "HP": rng.randn(H, P), None: None}[D]
    return {
        "x": rng.randn(batch, L, H, P),
        "dt": dt,
        "A": -rng.rand(H, lo=0.2, hi=1.5),
        "B": rng.randn(batch, L, G, N, scale=0.7),
        "C": rng.randn(batch, L, G, N, scale=0.7),
        "D": Dval,
        "z": rng.randn(batch, L, H, P) if z else None,
        "dt_bias": (rng.randn(H, scale=0.3) if softplus else rng.rand(H, lo=0.0, hi=0.3)) if bias else None,
        "initial_states": rng.randn(batch, H, P, N, scale=0.5) if init else None,
    }


SSD_CASES = [
    # (batch, L, H, P, G, N, chunk, softplus, bias, D, z, init, return_final)
    (2, 37, 4, 3, 1, 5, 16, True, True, "H", True, True, True),
    (2, 37, 4, 3, 2, 5, 8, True, True, "HP", True, False, True),
    (1, 50, 6, 2, 3, 4, 64, False, True, None, False, True, True),   # chunk > L, no softplus
    (3, 16, 2, 4, 2, 3, 16, True, False, "H", False, False, False),  # L = one whole chunk
    (1, 1, 2, 2, 1, 2, 4, True, True, "HP", True, True, True),       # L = 1
    (2, 45, 8, 4, 4, 8, 32, True, True, "H", True, True, False),
    (1, 12, 3, 2, 3, 5, 5, True, True, "H", True, True, True),       # G = H: a group per head
]


class TestChunkScan(OpTestCase):
    def test_against_sequential_reference(self):
        for i, (batch, L, H, P, G, N, chunk, sp, bias, D, z, init, fin) in enumerate(SSD_CASES):
            label = (f"mamba_chunk_scan_combined case {i}: batch={batch} L={L} H={H} P={P} G={G} N={N} "
                     f"chunk={chunk} dt_softplus={sp} dt_bias={bias} D={D} z={z} initial_states={init} "
                     f"return_final_states={fin}")
            with self.subTest(label):
                inputs = ssd_inputs(Rng(200 + i), batch, L, H, P, G, N, sp, bias, D, z, init)
                diff = {n for n, v in inputs.items() if v is not None}
                self.check_against_reference(
                    mamba_chunk_scan_combined, ref_chunk_scan, inputs,
                    dict(chunk_size=chunk, dt_softplus=sp, return_final_states=fin), diff, seed=i, label=label)

    def test_final_states_only_gradient(self):
        """A loss on final_states alone (no gradient reaches y)."""
        inputs = ssd_inputs(Rng(216), 2, 30, 4, 3, 2, 5, D="HP")
        x32 = {n: v.clone().requires_grad_(True) for n, v in inputs.items()}
        x64 = {n: v.double().requires_grad_(True) for n, v in inputs.items()}
        _, s32 = mamba_chunk_scan_combined(**x32, chunk_size=8, dt_softplus=True, return_final_states=True)
        _, s64 = ref_chunk_scan(**x64, chunk_size=8, dt_softplus=True, return_final_states=True)
        self.assert_close(s32, s64, REL_OUT, "final_states")
        s32.double().pow(2).sum().backward()
        s64.pow(2).sum().backward()
        for n in inputs:  # C, D and z do not reach the final state: no gradient (None or zeros)
            g32 = x32[n].grad if x32[n].grad is not None else torch.zeros_like(x32[n])
            g64 = x64[n].grad if x64[n].grad is not None else torch.zeros_like(x64[n])
            self.assert_close(g32, g64, REL_GRAD, f"d{n} through final_states only")

    def test_chunk_size_does_not_matter(self):
        inputs = ssd_inputs(Rng(210), 2, 40, 4, 3, 2, 4)
        outs = [mamba_chunk_scan_combined(**inputs, chunk_size=c, dt_softplus=True, return_final_states=True)
                for c in (1, 7, 16, 64, 256)]
        for c, (y, s) in zip((7, 16, 64, 256), outs[1:]):
            self.assert_close(y, outs[0][0], 1e-5, f"y with chunk {c} against chunk 1")
            self.assert_close(s, outs[0][1], 1e-5, f"final_states with chunk {c} against chunk 1")

    def test_gradcheck(self):
        inputs = ssd_inputs(Rng(211), 1, 5, 2, 2, 1, 2, D="HP")
        names = list(inputs)
        args = [inputs[n].double().requires_grad_(True) for n in names]

        def f(*xs):
            return mamba_chunk_scan_combined(**dict(zip(names, xs)), chunk_size=2, dt_softplus=True,
                                             return_final_states=True)

        self.assertTrue(torch.autograd.gradcheck(f, args, eps=1e-3, atol=1e-2, rtol=1e-2))

    def test_dtypes(self):
        inputs = ssd_inputs(Rng(212), 2, 20, 4, 3, 2, 4)
        for dtype, rel in ((torch.float64, REL_OUT), (torch.bfloat16, 3e-2), (torch.float16, 5e-3)):
            with self.subTest(dtype=str(dtype)):
                xs = {n: v.to(dtype).requires_grad_(True) for n, v in inputs.items()}
                y, s = mamba_chunk_scan_combined(**xs, chunk_size=8, dt_softplus=True, return_final_states=True)
                self.assertEqual(y.dtype, dtype)
                self.assertEqual(s.dtype, dtype)
                ry, rs = ref_chunk_scan(**{n: v.detach().double() for n, v in xs.items()}, chunk_size=8,
                                        dt_softplus=True, return_final_states=True)
                self.assert_close(y, ry, rel, f"y ({dtype})")
                self.assert_close(s, rs, rel, f"final_states ({dtype})")
                (y.float().sum() + s.float().sum()).backward()
                for n, x in xs.items():
                    self.assertIsNotNone(x.grad, f"d{n} ({dtype})")
                    self.assertEqual(x.grad.dtype, dtype, f"d{n} dtype")

    def test_non_contiguous(self):
        base = ssd_inputs(Rng(213), 2, 24, 4, 3, 2, 5, D="HP")
        views = dict(base)
        views["x"] = base["x"].permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)
        views["dt"] = base["dt"].transpose(1, 2).contiguous().transpose(1, 2)
        views["B"] = base["B"].permute(3, 0, 1, 2).contiguous().permute(1, 2, 3, 0)
        views["D"] = base["D"].t().contiguous().t()
        views["initial_states"] = base["initial_states"].transpose(2, 3).contiguous().transpose(2, 3)
        for n in ("x", "dt", "B", "D", "initial_states"):
            self.assertFalse(views[n].is_contiguous(), n)
        xs_v = dict(views)
        # differentiate through non-contiguous views of leaves
        tx = base["x"].permute(0, 2, 1, 3).contiguous().requires_grad_(True)
        xs_v["x"] = tx.permute(0, 2, 1, 3)
        td = base["D"].t().contiguous().requires_grad_(True)
        xs_v["D"] = td.t()
        y_v, s_v = mamba_chunk_scan_combined(**xs_v, chunk_size=8, dt_softplus=True, return_final_states=True)
        xs_c = {n: v.contiguous().clone().requires_grad_(True) for n, v in base.items()}
        y_c, s_c = mamba_chunk_scan_combined(**xs_c, chunk_size=8, dt_softplus=True, return_final_states=True)
        self.assert_close(y_v, y_c, 1e-6, "y (non-contiguous)")
        self.assert_close(s_v, s_c, 1e-6, "final_states (non-contiguous)")
        rng = Rng(214)
        g1, g2 = rng.randn(*y_c.shape), rng.randn(*s_c.shape)
        ((y_v * g1).sum() + (s_v * g2).sum()).backward()
        ((y_c * g1).sum() + (s_c * g2).sum()).backward()
        self.assert_close(tx.grad.permute(0, 2, 1, 3), xs_c["x"].grad, 1e-6, "dx (permuted leaf)")
        self.assert_close(td.grad.t(), xs_c["D"].grad, 1e-6, "dD (transposed leaf)")

    def test_errors(self):
        base = ssd_inputs(Rng(215), 2, 10, 4, 3, 2, 5)

        def call(**over):
            return mamba_chunk_scan_combined(**dict(base, **over), chunk_size=4, dt_softplus=True)

        cases = [
            ("x", dict(x=base["x"][0]), BAD_INPUT),
            ("x", dict(x=base["x"].to(torch.int32)), BAD_INPUT),
            ("dt", dict(dt=base["dt"][:, :-1]), BAD_INPUT),
            ("A", dict(A=torch.full((5,), -1.0)), BAD_INPUT),
            ("B", dict(B=base["B"][:, :-1]), BAD_INPUT),
            ("B", dict(B=torch.randn(2, 10, 3, 5), C=torch.randn(2, 10, 3, 5)), BAD_INPUT),  # 4 heads, 3 groups
            ("C", dict(C=base["C"][..., :-1]), BAD_INPUT),  # N differs from B's
            ("C", dict(C=base["C"][:, :-1]), BAD_INPUT),
            ("D", dict(D=torch.randn(4, 2)), BAD_INPUT),
            ("z", dict(z=base["z"][..., :-1]), BAD_INPUT),
            ("dt_bias", dict(dt_bias=torch.randn(3)), BAD_INPUT),
            ("initial_states", dict(initial_states=base["initial_states"][..., :-1]), BAD_INPUT),
            ("A", dict(A=torch.full((4,), 0.5)), ValueError),
        ]
        for name, over, exc in cases:
            with self.subTest(argument=name, change=list(over)):
                with self.assertRaises(exc) as cm:
                    call(**over)
                self.assertRegex(str(cm.exception), rf"\b{name}\b")
        with self.assertRaises((NotImplementedError, ValueError)) as cm:
            call(seq_idx=torch.zeros(2, 10, dtype=torch.int32))
        self.assertRegex(str(cm.exception), r"\bseq_idx\b")
        with self.assertRaises((NotImplementedError, ValueError)) as cm:
            call(dt_limit=(0.0, 0.1))
        self.assertRegex(str(cm.exception), r"\bdt_limit\b")
        args = dict(base, dt=base["dt"].abs(), dt_bias=None)
        args["dt"][1, 3, 2] = -0.5
        with self.assertRaises(ValueError) as cm:
            mamba_chunk_scan_combined(**args, chunk_size=4, dt_softplus=False)
        self.assertRegex(str(cm.exception), r"\bdt\b")


# ---------------------------------------------------------------------------------------------------------------
# sparse_attention

SPARSE_ARCHS = [
    "sliding_window", "sink", "dilated", "full", "sign_bin_lsh", "argmax_lsh", "key_selection",
    "sign_bin_lsh+key_selection", "sliding_window+sink+dilated", "argmax_lsh+sign_bin_lsh+sliding_window",
    "key_selection+dilated", "sliding_window+sink+dilated+sign_bin_lsh+argmax_lsh+key_selection+full",
]


def sparse_inputs(rng, batch, T, N, I, num_hash=3):
    return {"q": rng.randn(batch, T, N), "k": rng.randn(batch, T, N), "v": rng.randn(batch, T, I),
            "key_scores": rng.randn(batch, T), "lsh_projection": rng.randn(N, num_hash)}


class TestSparseAttention(OpTestCase):
    def run_case(self, arch, semantics, batch, T, N, I, total_keys, max_length, seed, num_hash=3):
        inputs = sparse_inputs(Rng(seed), batch, T, N, I, num_hash)
        label = (f"sparse_attention {arch!r} semantics={semantics} batch={batch} T={T} N={N} I={I} "
                 f"total_keys={total_keys} max_length={max_length} num_hash={num_hash}")
        self.check_against_reference(
            sparse_attention, ref_sparse_attention, inputs,
            dict(sparse_arch=arch, semantics=semantics, total_keys=total_keys, max_length=max_length),
            {"q", "k", "v"}, seed=seed, label=label)

    def test_patterns_causal(self):
        for i, arch in enumerate(SPARSE_ARCHS):
            with self.subTest(arch=arch):
                # budget 8 per pattern with one pattern (dilation 4), smaller with several: the patterns bind at T=40
                self.run_case(arch, "causal", 2, 40, 6, 5, total_keys=8, max_length=32, seed=300 + i)

    def test_patterns_paper(self):
        for i, arch in enumerate(("sign_bin_lsh", "argmax_lsh", "dilated", "sign_bin_lsh+key_selection",
                                  "sliding_window+dilated+argmax_lsh")):
            with self.subTest(arch=arch):
                self.run_case(arch, "paper", 2, 30, 5, 4, total_keys=8, max_length=40, seed=350 + i)

    def test_defaults_and_larger(self):
        """The default budget (64 keys, max_length 2048) at T=150: window 32 + key selection 32."""
        inputs = sparse_inputs(Rng(360), 1, 150, 8, 8, num_hash=4)
        self.check_against_reference(
            sparse_attention, ref_sparse_attention, inputs, dict(sparse_arch="sliding_window+key_selection"),
            {"q", "k", "v"}, label="sliding_window+key_selection, default budget, T=150")
        self.check_against_reference(
            sparse_attention, ref_sparse_attention, inputs, dict(sparse_arch="sign_bin_lsh+key_selection"),
            {"q", "k", "v"}, label="sign_bin_lsh+key_selection, default budget, T=150")

    def test_empty_rows_causal(self):
        """dilated with dilation 8: queries t < 7 have no key -> output 0 and no gradient under causal."""
        inputs = sparse_inputs(Rng(361), 1, 20, 4, 3)
        q, k, v = (inputs[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
        out = sparse_attention(q, k, v, "dilated", total_keys=4, max_length=32)
        self.assertTrue(bool((out[0, :7] == 0).all()), "queries with no key give 0")
        self.assertTrue(bool((out[0, 7:].abs().sum(-1) > 0).all()), "queries with a key give something")
        out[:, :7].sum().backward()
        for n, x in (("q", q), ("k", k), ("v", v)):
            self.assertTrue(x.grad is None or bool((x.grad == 0).all()), f"d{n} from empty rows is 0")

    def test_key_selection_ties(self):
        """Equal key scores: the lower positions win (w = 4)."""
        rng = Rng(362)
        q, k, v = rng.randn(1, 12, 4), rng.randn(1, 12, 4), rng.randn(1, 12, 3)
        scores = torch.tensor([[1.0, 2.0, 2.0, 0.0, 2.0, 2.0, 2.0, 3.0, 2.0, 1.0, 2.0, 2.0]])
        out = sparse_attention(q, k, v, "key_selection", key_scores=scores, total_keys=4, max_length=64)
        ref = ref_sparse_attention(q.double(), k.double(), v.double(), "key_selection", key_scores=scores.double(),
                                   total_keys=4, max_length=64)
        self.assert_close(out, ref, REL_OUT, "key_selection with tied scores")
        # the same through masks computed by hand for query 11: {7 (3.0), 1, 2, 4 (first three 2.0)}
        logits = (q[0, 11] @ k[0, [1, 2, 4, 7]].T).double() / 2.0
        expected = torch.softmax(logits, 0) @ v[0, [1, 2, 4, 7]].double()
        self.assert_close(out[0, 11], expected, REL_OUT, "query 11's keys {1, 2, 4, 7}")

    def test_window_wider_than_sequence_is_full(self):
        inputs = sparse_inputs(Rng(363), 2, 17, 5, 4)
        a = sparse_attention(inputs["q"], inputs["k"], inputs["v"], "sliding_window", total_keys=64)
        b = sparse_attention(inputs["q"], inputs["k"], inputs["v"], "full")
        self.assert_close(a, b, 1e-6, "window of 64 over T=17 against full")
        causal = torch.softmax((inputs["q"] @ inputs["k"].transpose(1, 2)).double() / math.sqrt(5)
                               + torch.triu(torch.full((17, 17), -math.inf), 1).double(), -1) @ inputs["v"].double()
        self.assert_close(b, causal, REL_OUT, "full against causal softmax attention")

    def test_gradcheck(self):
        """gradcheck where the key sets cannot change under a perturbation (no LSH: buckets are functions of q, k;
        key_scores is not differentiated)."""
        rng = Rng(364)
        q, k, v = (rng.randn(1, 9, 3).double().requires_grad_(True) for _ in range(3))
        scores = rng.randn(1, 9).double()
        for arch in ("sliding_window+sink", "full", "key_selection+dilated"):
            with self.subTest(arch=arch):
                f = lambda q, k, v: sparse_attention(q, k, v, arch, key_scores=scores, total_keys=4,  # noqa: E731
                                                     max_length=8)
                self.assertTrue(torch.autograd.gradcheck(f, (q, k, v), eps=1e-3, atol=1e-2, rtol=1e-2))

    def test_dtypes_and_non_contiguous(self):
        inputs = sparse_inputs(Rng(365), 2, 25, 6, 5)
        arch = "sign_bin_lsh+key_selection"
        kw = dict(key_scores=inputs["key_scores"], lsh_projection=inputs["lsh_projection"], total_keys=8,
                  max_length=32)
        ref = ref_sparse_attention(inputs["q"].double(), inputs["k"].double(), inputs["v"].double(), arch, **kw)
        out64 = sparse_attention(inputs["q"].double(), inputs["k"].double(), inputs["v"].double(), arch, **kw)
        self.assertEqual(out64.dtype, torch.float64)
        self.assert_close(out64, ref, REL_OUT, "float64 in")
        # bfloat16: buckets of rounded q / k may differ from float32's; compare with the reference on rounded values
        qb, kb, vb = (inputs[n].to(torch.bfloat16).requires_grad_(True) for n in ("q", "k", "v"))
        outb = sparse_attention(qb, kb, vb, arch, **kw)
        self.assertEqual(outb.dtype, torch.bfloat16)
        refb = ref_sparse_attention(qb.detach().double(), kb.detach().double(), vb.detach().double(), arch, **kw)
        self.assert_close(outb, refb, 3e-2, "bfloat16 in")
        outb.float().sum().backward()
        for n, x in (("q", qb), ("k", kb), ("v", vb)):
            self.assertEqual(x.grad.dtype, torch.bfloat16, f"d{n} dtype")
        # non-contiguous q, k, v, key_scores, lsh_projection
        tq = inputs["q"].transpose(1, 2).contiguous().requires_grad_(True)
        tk = inputs["k"].transpose(0, 1).contiguous().requires_grad_(True)
        tv = inputs["v"].transpose(1, 2).contiguous().requires_grad_(True)
        kw_v = dict(kw, key_scores=inputs["key_scores"].t().contiguous().t(),
                    lsh_projection=inputs["lsh_projection"].t().contiguous().t())
        out_v = sparse_attention(tq.transpose(1, 2), tk.transpose(0, 1), tv.transpose(1, 2), arch, **kw_v)
        cq, ck, cv = (inputs[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
        out_c = sparse_attention(cq, ck, cv, arch, **kw)
        self.assert_close(out_v, out_c, 1e-6, "non-contiguous q / k / v / key_scores / lsh_projection")
        g = Rng(366).randn(*out_c.shape)
        (out_v * g).sum().backward()
        (out_c * g).sum().backward()
        self.assert_close(tq.grad.transpose(1, 2), cq.grad, 1e-6, "dq (transposed leaf)")
        self.assert_close(tk.grad.transpose(0, 1), ck.grad, 1e-6, "dk (transposed leaf)")
        self.assert_close(tv.grad.transpose(1, 2), cv.grad, 1e-6, "dv (transposed leaf)")

    def test_no_gradient_to_scores_or_projection(self):
        inputs = sparse_inputs(Rng(367), 1, 10, 4, 3)
        s = inputs["key_scores"].clone().requires_grad_(True)
        H = inputs["lsh_projection"].clone().requires_grad_(True)
        q = inputs["q"].clone().requires_grad_(True)
        out = sparse_attention(q, inputs["k"], inputs["v"], "sign_bin_lsh+key_selection", key_scores=s,
                               lsh_projection=H, total_keys=4, max_length=16)
        out.sum().backward()
        self.assertTrue(s.grad is None or bool((s.grad == 0).all()), "no gradient to key_scores")
        self.assertTrue(H.grad is None or bool((H.grad == 0).all()), "no gradient to lsh_projection")
        self.assertIsNotNone(q.grad)

    def test_errors(self):
        inputs = sparse_inputs(Rng(368), 2, 10, 4, 3)
        q, k, v, s, H = (inputs[n] for n in ("q", "k", "v", "key_scores", "lsh_projection"))

        def call(arch="sign_bin_lsh+key_selection", **over):
            args = dict(dict(q=q, k=k, v=v, key_scores=s, lsh_projection=H, total_keys=8, max_length=32), **over)
            return sparse_attention(sparse_arch=arch, **args)

        cases = [  # (what the message must name, arch, changes)
            ("q", {}, dict(q=q[0])),
            ("q", {}, dict(q=q.to(torch.int32))),
            ("k", {}, dict(k=k[..., :-1])),
            ("k", {}, dict(k=k[:, :-1])),
            ("v", {}, dict(v=v[:, :-1])),
            ("v", {}, dict(v=v[:1])),
            ("key_scores", {}, dict(key_scores=None)),
            ("key_scores", {}, dict(key_scores=s[:, :-1])),
            ("lsh_projection", {}, dict(lsh_projection=None)),
            ("lsh_projection", {}, dict(lsh_projection=torch.randn(5, 3))),
            ("sparse_arch|bogus", dict(arch="sliding_window+bogus"), {}),
            ("sparse[_ ]arch|sink\\+sink", dict(arch="sink+sink"), {}),
            ("sparse_arch", dict(arch=""), {}),
            ("semantics", {}, dict(semantics="strict")),
            ("total_keys|keys", dict(arch="sink+dilated+full"), dict(total_keys=2)),  # 2 keys over 3 patterns
        ]
        for name, arch, over in cases:
            with self.subTest(argument=name, change=list(over) + list(arch.values())):
                with self.assertRaises(BAD_INPUT) as cm:
                    call(**arch, **over)
                self.assertRegex(str(cm.exception), rf"\b({name})\b")


# ---------------------------------------------------------------------------------------------------------------
# HaxAttention

I_, N_ = 12, 4


def functional_hax(m, xc, z=None, key_scores=None):
    """The module's forward through the functional op: K, Q halves of xc @ xx_proj^T, V = xc."""
    KQ = xc @ m.xx_proj.weight.T
    K, Q = KQ[..., :N_], KQ[..., N_:]
    H = m.lsh_projection if any(p.endswith("_lsh") for p in m_arch(m).split("+")) else None
    attn = sparse_attention(Q, K, xc, m_arch(m), key_scores=key_scores, lsh_projection=H, semantics="causal",
                            total_keys=m_total_keys(m), max_length=m_max_length(m))
    out = m.E * attn
    return out * F.silu(z) if z is not None else out


_MODULE_ARGS = {}


def make_module(arch, total_keys=8, max_length=32, num_hash=3, seed=1):
    m = HaxAttention(I_, N_, sparse_arch=arch, num_hash=num_hash, total_keys=total_keys, max_length=max_length,
                     seed=seed)
    _MODULE_ARGS[id(m)] = (arch, total_keys, max_length)
    with torch.no_grad():  # E may start at 0 (then nothing flows); give it values
        m.E.copy_(Rng(seed + 500).randn(I_))
    return m


def m_arch(m):
    return _MODULE_ARGS[id(m)][0]


def m_total_keys(m):
    return _MODULE_ARGS[id(m)][1]


def m_max_length(m):
    return _MODULE_ARGS[id(m)][2]


def scorer_scores(m, xc):
    """Key-selection scores of the causal features [K / sqrt(N), cumsum(Q) / ||cumsum(Q)||] (key_scorer.h), in
    float64."""
    p = {n: v.detach().double() for n, v in m.named_parameters()}
    KQ = xc.double() @ p["xx_proj.weight"].T
    K, Q = KQ[..., :N_] / math.sqrt(N_), KQ[..., N_:]
    c = torch.cumsum(Q, 1)
    c = c / c.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    f = torch.cat([K, c], -1)
    f = F.relu(F.linear(f, p["dx_proj_1.weight"], p["dx_proj_1.bias"]))
    f = F.relu(F.linear(f, p["dx_proj_2.weight"], p["dx_proj_2.bias"]))
    return F.linear(f, p["dx_proj_3.weight"], p["dx_proj_3.bias"])[..., 0]


class TestThreads(OpTestCase):
    """hax's kernels give the same results with 1 and 2 threads (sparse attention: bit for bit, as
    sparse_attention.h promises; the others to rounding)."""

    def run_all(self):
        torch.manual_seed(0)
        results = []
        scan = {n: v.requires_grad_(True) if v is not None else v
                for n, v in scan_inputs(Rng(600), 3, 8, 70, 4, 2).items()}
        out, last = selective_scan_fn(**scan, delta_softplus=True, return_last_state=True)
        results += [out, last] + list(torch.autograd.grad(out.sum() + last.sum(), list(scan.values())))
        ssd = {n: v.requires_grad_(True) for n, v in ssd_inputs(Rng(601), 2, 40, 4, 3, 2, 5).items()}
        y, fin = mamba_chunk_scan_combined(**ssd, chunk_size=16, dt_softplus=True, return_final_states=True)
        results += [y, fin] + list(torch.autograd.grad(y.sum() + fin.sum(), list(ssd.values())))
        sp = sparse_inputs(Rng(602), 3, 60, 6, 5)
        q, k, v = (sp[n].requires_grad_(True) for n in ("q", "k", "v"))
        o = sparse_attention(q, k, v, "sign_bin_lsh+key_selection", key_scores=sp["key_scores"],
                             lsh_projection=sp["lsh_projection"], total_keys=8, max_length=32)
        results += [o] + list(torch.autograd.grad((o * o).sum(), [q, k, v]))
        return results

    def test_one_and_two_threads_agree(self):
        import hax.torch as ht
        try:
            ht.set_num_threads(1)
            one = self.run_all()
            ht.set_num_threads(2)
            two = self.run_all()
        finally:
            ht.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
        for i, (a, b) in enumerate(zip(one, two)):
            self.assert_close(a, b, 1e-6, f"result {i}: 1 thread against 2")
        for i, (a, b) in enumerate(zip(one[-4:], two[-4:])):
            self.assertTrue(torch.equal(a, b), f"sparse attention result {i}: bit for bit across thread counts")


class TestHaxAttention(OpTestCase):
    def test_parameters(self):
        m = HaxAttention(I_, N_, num_hash=5)
        params = {n: tuple(p.shape) for n, p in m.named_parameters()}
        self.assertEqual(params, {"xx_proj.weight": (2 * N_, I_), "E": (I_,),
                                  "dx_proj_1.weight": (2 * N_, 2 * N_), "dx_proj_1.bias": (2 * N_,),
                                  "dx_proj_2.weight": (2 * N_, 2 * N_), "dx_proj_2.bias": (2 * N_,),
                                  "dx_proj_3.weight": (1, 2 * N_), "dx_proj_3.bias": (1,)})
        buffers = {n: tuple(b.shape) for n, b in m.named_buffers()}
        self.assertEqual(buffers.get("lsh_projection"), (N_, 5))
        plain = HaxAttention(I_, N_, sparse_arch="sign_bin_lsh")
        self.assertFalse(any(n.startswith("dx_proj") for n, _ in plain.named_parameters()),
                         "no scorer without key_selection")
        again = HaxAttention(I_, N_, num_hash=5)
        self.assertTrue(torch.equal(m.lsh_projection, again.lsh_projection), "same seed, same lsh_projection")

    def test_matches_functional_path(self):
        rng = Rng(400)
        xc, z = rng.randn(2, 30, I_), rng.randn(2, 30, I_)
        for arch in ("sliding_window", "sign_bin_lsh", "sliding_window+argmax_lsh"):
            with self.subTest(arch=arch):
                m = make_module(arch).eval()
                for zz in (z, None):
                    x1 = xc.clone().requires_grad_(True)
                    out = m(x1, zz)
                    self.assertEqual(tuple(out.shape), (2, 30, I_))
                    x2 = xc.clone().requires_grad_(True)
                    ref = functional_hax(m, x2, zz)
                    self.assert_close(out, ref, REL_OUT, f"{arch}: module against functional (z={zz is not None})")
                # gradients of xc, xx_proj, E through both paths
                g = rng.randn(2, 30, I_)
                params = [m.xx_proj.weight, m.E]
                x1 = xc.clone().requires_grad_(True)
                d1 = torch.autograd.grad((m(x1, z) * g).sum(), [x1] + params)
                x2 = xc.clone().requires_grad_(True)
                d2 = torch.autograd.grad((functional_hax(m, x2, z) * g).sum(), [x2] + params)
                for name, a, b in zip(("xc", "xx_proj.weight", "E"), d1, d2):
                    self.assert_close(a, b, REL_GRAD, f"{arch}: d{name} module against functional")

    def test_key_selection_matches_functional_with_scorer(self):
        rng = Rng(401)
        xc, z = rng.randn(2, 30, I_), rng.randn(2, 30, I_)
        m = make_module("sign_bin_lsh+key_selection").eval()
        out = m(xc, z)
        ref = functional_hax(m, xc, z, key_scores=scorer_scores(m, xc).float())
        self.assert_close(out, ref, REL_OUT, "module with key_selection against functional + scorer MLP")

    def test_gradients_and_gate_loss(self):
        rng = Rng(402)
        xc = rng.randn(2, 24, I_).requires_grad_(True)
        z = rng.randn(2, 24, I_).requires_grad_(True)
        m = make_module("sign_bin_lsh+key_selection").train()
        out = m(xc, z)
        self.assertEqual(tuple(out.shape), (2, 24, I_))
        gate = getattr(m, "gate_loss", None)
        self.assertIsInstance(gate, torch.Tensor, "training with key_selection sets module.gate_loss")
        self.assertEqual(gate.dim(), 0)
        self.assertTrue(bool(torch.isfinite(gate)) and gate.item() > 0)
        ((out * rng.randn(*out.shape)).sum() + 0.1 * gate).backward()
        for name, t in [("xc", xc), ("z", z)] + list(m.named_parameters()):
            self.assertIsNotNone(t.grad, f"d{name}")
            self.assertTrue(bool(torch.isfinite(t.grad).all()), f"d{name} finite")
            if name == "dx_proj_3.bias":  # shifts every score alike: the pairwise ranking loss's gradient is 0
                self.assertLess(t.grad.abs().max().item(), 1e-6, f"d{name}")
                continue
            self.assertGreater(t.grad.abs().max().item(), 0, f"d{name} nonzero")

    def test_gate_loss_reaches_only_the_scorer(self):
        """The scorer's features are detached (key_scorer.h): the gate loss alone moves dx_proj_* and nothing
        else."""
        rng = Rng(403)
        xc = rng.randn(2, 24, I_).requires_grad_(True)
        m = make_module("sign_bin_lsh+key_selection").train()
        m(xc)
        m.gate_loss.backward()
        for name, p in m.named_parameters():
            if name == "dx_proj_3.bias":  # shifts every score alike: the pairwise ranking loss's gradient is 0
                self.assertLess(p.grad.abs().max().item(), 1e-6, f"d{name} from the gate loss")
            elif name.startswith("dx_proj"):
                self.assertIsNotNone(p.grad, f"d{name}")
                self.assertGreater(p.grad.abs().max().item(), 0, f"d{name} from the gate loss")
            else:
                self.assertTrue(p.grad is None or bool((p.grad == 0).all()), f"no d{name} from the gate loss")
        self.assertTrue(xc.grad is None or bool((xc.grad == 0).all()), "no dxc from the gate loss")

    def test_zero_E_gives_zero(self):
        m = make_module("sign_bin_lsh+key_selection").eval()
        with torch.no_grad():
            m.E.zero_()
        out = m(Rng(404).randn(2, 16, I_), Rng(405).randn(2, 16, I_))
        self.assertTrue(bool((out == 0).all()))


if __name__ == "__main__":
    unittest.main(verbosity=2)


class TestInPlaceChanges(OpTestCase):
    """An input changed in place between the forward and the backward is an error, as with PyTorch's own ops (the
    ops keep their inputs through save_for_backward)."""

    def test_selective_scan_input_changed_in_place(self):
        rng = Rng(7)
        u = rng.randn(1, 8, 12).requires_grad_()
        delta, B, C = rng.randn(1, 8, 12), rng.randn(1, 4, 12), rng.randn(1, 4, 12)
        A = -torch.rand(8, 4) - 0.5
        out = selective_scan_fn(u * 1.0, delta, A, B, C, delta_softplus=True)
        with torch.no_grad():
            delta.add_(1.0)
        with self.assertRaises(RuntimeError):
            out.sum().backward()


class TestExample(unittest.TestCase):
    def test_example_trains(self):
        """examples/torch_mamba_block.py (the README's example) runs its training steps."""
        import subprocess
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        env = dict(os.environ, PYTHONPATH=os.path.abspath(os.path.join(root, "python")))
        done = subprocess.run([sys.executable, os.path.join(root, "examples", "torch_mamba_block.py")], env=env,
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("step 4: loss", done.stdout)
