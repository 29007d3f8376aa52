#!/usr/bin/python3
"""Tests of hax.torch.load (python/hax/torch/model.py): a hax checkpoint folder as a PyTorch module.

For each model (Mamba plain, + HAX under `causal` and `paper`, + HAX with the running statistics, + sliding_window;
Mamba2 plain and + HAX; Samba) the hax command line makes a checkpoint (`hax train`, two updates at a high learning
rate so the weights are not the initialization's), `hax logits` computes the logits of a small batch, and the loaded
module's forward must give the same logits (float32; 1e-4 relative to the largest logit). Also: the state_dict and
the parameter / buffer names are the checkpoint's; gradients of plain models equal the float64 oracle's
(tools/oracle, independent of hax); a training step gives finite gradients for every parameter (and a gate loss
with key selection); broken folders and unsupported configs are refused with errors that name the file.

Run from the repository root:
  PYTHONPATH=python HAX_LIBRARY=build/libhax_c.so /usr/bin/python3 -m unittest -v tests/python/test_load.py
The hax binary is $HAX_BINARY, by default <repo>/build/hax.
"""
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

_REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
if "HAX_LIBRARY" not in os.environ:  # run from anywhere: the build tree's library
    _default = os.path.join(_REPO, "build", "libhax_c.so")
    if os.path.exists(_default):
        os.environ["HAX_LIBRARY"] = _default
_python_dir = os.path.join(_REPO, "python")
if os.path.isdir(_python_dir) and _python_dir not in map(os.path.abspath, sys.path):
    sys.path.append(_python_dir)  # after PYTHONPATH: an explicit one wins

import hax.torch  # noqa: E402
from hax.torch import model as hax_model  # noqa: E402

load = hax_model.load  # test_public_name checks that hax.torch.load is this function

HAX_BINARY = os.environ.get("HAX_BINARY", os.path.join(_REPO, "build", "hax"))
CONFIGS = os.path.join(_REPO, "configs")
ORACLE = os.path.join(_REPO, "tools", "oracle")
TINY_TASK = ["--min-contexts", "2", "--max-contexts", "3", "--min-keys", "2", "--max-keys", "3", "--values", "4",
             "--train-per-cell", "32", "--eval-per-cell", "4"]
HAX_SMALL = ["--sparse-arch", "sign_bin_lsh+key_selection", "--sparse-keys", "8", "--num-hash", "3"]
REL_LOGITS = 1e-4  # relative to the largest |logit| of hax's
REL_GRAD = 1e-3    # relative to the largest |gradient| of the oracle's, per parameter

# name -> (config, extra `hax train` flags)
MODELS = {
    "mamba": ("mamba.json", []),
    "mamba_hax_causal": ("mamba.json", HAX_SMALL),
    "mamba_hax_paper": ("mamba.json", HAX_SMALL + ["--semantics", "paper", "--lsh-resample", "never"]),
    "mamba_hax_running": ("mamba.json", HAX_SMALL + ["--lsh-statistics", "running", "--ks-normalization", "running"]),
    "mamba_sliding_window": ("mamba.json", ["--sparse-arch", "sliding_window", "--sparse-keys", "8"]),
    "mamba2": ("mamba2.json", []),
    "mamba2_hax": ("mamba2.json", HAX_SMALL),
    "samba": ("samba.json", []),
}


def run(args):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


def token_rows(seed, batch, T, vocab=100):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, T), generator=g)


_SCRATCH = {"tmp": None, "checkpoints": {}}  # made once for the whole module


def setUpModule():
    if not (os.path.isfile(HAX_BINARY) and os.access(HAX_BINARY, os.X_OK)):
        raise AssertionError(f"no hax binary at {HAX_BINARY} (build it, or set HAX_BINARY)")
    _SCRATCH["tmp"] = tempfile.mkdtemp(prefix="hax_test_load_")


def tearDownModule():
    if _SCRATCH["tmp"]:
        shutil.rmtree(_SCRATCH["tmp"], ignore_errors=True)


class CheckpointCase(unittest.TestCase):
    """Makes the checkpoints of MODELS when first asked for, in the module's scratch folder."""

    @property
    def tmp(self):
        return _SCRATCH["tmp"]

    def checkpoint(self, name):
        """The folder of MODELS[name]'s checkpoint, trained two updates (lr 0.02) from its initialization."""
        made = _SCRATCH["checkpoints"]
        if name not in made:
            config, extra = MODELS[name]
            out = os.path.join(self.tmp, name)
            run([HAX_BINARY, "train", "--config", os.path.join(CONFIGS, config), "--out", out, "--steps", "2",
                 "--warmup", "1", "--lr", "0.02", "--eval-every", "0", "--batch-size", "2", "--threads", "1"]
                + TINY_TASK + extra)
            made[name] = os.path.join(out, "last")
        return made[name]

    def hax_logits(self, checkpoint, ids):
        tokens = os.path.join(self.tmp, "tokens.txt")
        out = os.path.join(self.tmp, "logits.npy")
        with open(tokens, "w") as f:
            for row in ids.tolist():
                f.write(" ".join(str(v) for v in row) + "\n")
        run([HAX_BINARY, "logits", "--checkpoint", checkpoint, "--tokens", tokens, "--out", out])
        return np.load(out)

    def broken_copy(self, name, what):
        """A copy of MODELS[name]'s checkpoint (config.json and model.safetensors only) in a fresh folder."""
        src = self.checkpoint(name)
        dst = tempfile.mkdtemp(prefix=what + "_", dir=self.tmp)
        for f in ("config.json", "model.safetensors"):
            shutil.copy(os.path.join(src, f), dst)
        return dst


class TestLogits(CheckpointCase):
    """The loaded module's logits equal `hax logits` on the same checkpoint."""

    def check_logits(self, name, batch=3, T=48, seed=1):
        checkpoint = self.checkpoint(name)
        ids = token_rows(seed, batch, T)
        expected = self.hax_logits(checkpoint, ids)
        model = load(checkpoint)
        self.assertFalse(model.training, "load returns the module in eval mode")
        with torch.no_grad():
            got = model(ids)
        self.assertEqual(got.dtype, torch.float32)
        self.assertEqual(tuple(got.shape), expected.shape)
        scale = float(np.abs(expected).max())
        err = float(np.abs(got.numpy() - expected).max())
        self.assertLessEqual(err, REL_LOGITS * scale, f"{name}: max |torch - hax| = {err:.3g} (max |logit| {scale:.3g})")

    def test_mamba(self):
        self.check_logits("mamba")

    def test_mamba_hax_causal(self):
        self.check_logits("mamba_hax_causal")

    def test_mamba_hax_paper(self):
        self.check_logits("mamba_hax_paper")

    def test_mamba_hax_running_statistics(self):
        self.check_logits("mamba_hax_running")

    def test_mamba_sliding_window(self):
        self.check_logits("mamba_sliding_window")

    def test_mamba2(self):
        self.check_logits("mamba2")

    def test_mamba2_hax(self):
        self.check_logits("mamba2_hax")

    def test_samba_short(self):  # T <= 2 * window: one banded score matrix
        self.check_logits("samba", T=48)

    def test_samba_long(self):  # T > 2 * window (64): queries in blocks of the window, T not a multiple of it
        self.check_logits("samba", batch=2, T=201)

    def test_single_token(self):
        self.check_logits("mamba_hax_causal", batch=2, T=1)
        self.check_logits("mamba2", batch=1, T=1)


class TestNames(CheckpointCase):
    """The module's names are the checkpoint's; load_state_dict / state_dict round-trip."""

    def test_state_dict_is_the_checkpoint(self):
        for name in ("mamba_hax_causal", "mamba2_hax", "samba", "mamba_sliding_window"):
            with self.subTest(model=name):
                checkpoint = self.checkpoint(name)
                tensors = hax_model.read_safetensors(os.path.join(checkpoint, "model.safetensors"))
                model = load(checkpoint)
                state = model.state_dict()
                self.assertEqual(sorted(state), sorted(tensors))
                for key, value in tensors.items():
                    self.assertTrue(torch.equal(state[key], value), key)
                params = {n for n, _ in model.named_parameters()}
                buffers = {n for n, _ in model.named_buffers()}
                self.assertEqual(params | buffers, set(tensors))
                self.assertEqual(buffers, {n for n in tensors if n.endswith("lsh_projection")})
                self.assertEqual(len(list(model.parameters())), len(params), "no parameter is listed twice")
                # load_state_dict of the checkpoint itself, strictly, into a second module
                other = hax_model.HaxModel(model.config)
                other.load_state_dict(tensors, strict=True)
                ids = token_rows(2, 2, 20)
                with torch.no_grad():
                    self.assertTrue(torch.equal(model(ids), other(ids)))

    def test_sparse_branch_follows_the_module(self):
        """The HaxAttention inside a mixer shares the mixer's tensors through .train()/.eval(), .double() and
        deepcopy."""
        model = load(self.checkpoint("mamba_hax_causal"))
        mixer = model.layers[1].mixer
        branch = mixer.hax_attention
        self.assertIsNotNone(branch)
        model.train()
        self.assertTrue(branch.training)
        model.eval()
        self.assertFalse(branch.training)
        twin = copy.deepcopy(model).double()
        tmixer = twin.layers[1].mixer
        for key, value in tmixer.hax_attention.named_parameters():
            self.assertIs(value, dict(tmixer.named_parameters())[key])
        for key, value in tmixer.hax_attention.named_buffers():
            self.assertIs(value, dict(tmixer.named_buffers())[key])
            self.assertEqual(value.dtype, torch.float64)
        self.assertIsNot(tmixer.hax_attention, branch)


class TestGradients(CheckpointCase):
    """Gradients of the loaded module (hax's ops' backward) equal the float64 oracle's autograd (tools/oracle), for
    the cross-entropy of a random set of scored positions (evaluation mode: no gate loss)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if ORACLE not in sys.path:
            sys.path.insert(0, ORACLE)
        import mamba_torch
        cls.oracle = mamba_torch

    def check_gradients(self, name, batch=2, T=24):
        checkpoint = self.checkpoint(name)
        ids = token_rows(3, batch, T)
        labels = token_rows(4, batch, T)
        scored = (token_rows(5, batch, T, vocab=2) == 1) | (torch.arange(T) == T - 1)
        with open(os.path.join(checkpoint, "config.json")) as f:
            cfg = json.load(f)
        params = self.oracle.read_safetensors(os.path.join(checkpoint, "model.safetensors"))
        seqs = [(ids[b], labels[b], scored[b].long()) for b in range(batch)]
        _, ce_ref, _ = self.oracle.objective(seqs, params, cfg)
        ce_ref.backward()

        model = load(checkpoint)  # eval mode: no gate loss, as the oracle without candidates
        logits = model(ids)
        ce = F.cross_entropy(logits[scored], labels[scored])
        ce.backward()
        self.assertAlmostEqual(ce.item(), ce_ref.item(), delta=1e-5 * max(1.0, abs(ce_ref.item())))
        for key, p in model.named_parameters():
            ref, got = params[key].grad, p.grad
            if ref is None:  # the key scorer: no gradient without the gate loss (evaluation mode); zeros or none
                ref = torch.zeros_like(params[key])
                got = torch.zeros_like(p) if got is None else got
            self.assertIsNotNone(got, key)
            scale = float(ref.abs().max())
            err = float((got.double() - ref).abs().max())
            self.assertLessEqual(err, REL_GRAD * scale + 1e-9, f"{name}: d/d{key}: max error {err:.3g} of {scale:.3g}")

    def test_mamba(self):
        self.check_gradients("mamba")

    def test_mamba_sliding_window(self):
        self.check_gradients("mamba_sliding_window")

    def test_mamba2(self):
        self.check_gradients("mamba2")

    def test_samba(self):
        self.check_gradients("samba")

    def test_samba_long(self):  # the blocked sliding window (T > 2 * window)
        self.check_gradients("samba", batch=1, T=150)

    def test_mamba_hax_causal(self):  # through the sparse attention (the key scorer only gets the gate loss's)
        self.check_gradients("mamba_hax_causal")

    def test_mamba_hax_paper(self):
        self.check_gradients("mamba_hax_paper")

    def test_mamba2_hax(self):
        self.check_gradients("mamba2_hax")


class TestTraining(CheckpointCase):
    """A training step: CE + 0.1 * gate loss, backward, finite gradients for every parameter, an AdamW update."""

    def train_step(self, name, expect_gate):
        model = load(self.checkpoint(name))
        model.train()
        ids = token_rows(6, 3, 40)
        logits = model(ids)
        self.assertEqual(model.gate_loss.dim(), 0)
        if expect_gate:
            self.assertTrue(model.gate_loss.requires_grad, "the gate loss reaches the key scorer")
            self.assertGreater(model.gate_loss.item(), 0.0)
        else:
            self.assertEqual(model.gate_loss.item(), 0.0)
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss = ce + hax_model.GATE_LOSS_WEIGHT * model.gate_loss
        self.assertTrue(torch.isfinite(loss))
        loss.backward()
        for key, p in model.named_parameters():
            self.assertIsNotNone(p.grad, f"{name}: no gradient for {key}")
            self.assertTrue(bool(torch.isfinite(p.grad).all()), f"{name}: non-finite gradient for {key}")
        if expect_gate:
            self.assertGreater(float(model.layers[0].mixer.dx_proj_1.weight.grad.abs().max()), 0.0)
        torch.optim.AdamW(model.parameters(), lr=1e-3).step()
        for key, p in model.named_parameters():
            self.assertTrue(bool(torch.isfinite(p).all()), f"{name}: {key} is not finite after an update")
        model.eval()  # evaluation: no gate loss
        model(ids)
        self.assertEqual(model.gate_loss.item(), 0.0)
        copy.deepcopy(model)  # a module that ran forwards with autograd on stays copyable

    def test_mamba_hax_causal(self):
        self.train_step("mamba_hax_causal", expect_gate=True)

    def test_mamba_hax_paper(self):
        self.train_step("mamba_hax_paper", expect_gate=True)

    def test_mamba2_hax(self):
        self.train_step("mamba2_hax", expect_gate=True)

    def test_mamba_sliding_window(self):
        self.train_step("mamba_sliding_window", expect_gate=False)

    def test_samba(self):
        self.train_step("samba", expect_gate=False)


class TestRefusals(CheckpointCase):
    """Broken folders and configs hax.torch cannot reproduce raise errors that name the file."""

    def assertRaisesNaming(self, error, mention, folder, *more):
        with self.assertRaises(error) as cm:
            load(folder)
        message = str(cm.exception)
        for text in (mention,) + more:
            self.assertIn(text, message)
        return message

    def edit_config(self, folder, **changes):
        path = os.path.join(folder, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        for key, value in changes.items():
            if value is None:
                cfg.pop(key, None)
            else:
                cfg[key] = value
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def test_missing_folder(self):
        missing = os.path.join(self.tmp, "no_such_checkpoint")
        self.assertRaisesNaming(FileNotFoundError, missing, missing)

    def test_run_folder(self):
        """The folder of a `hax train` run, not one of its checkpoints: the error says which to load."""
        run_folder = os.path.dirname(self.checkpoint("mamba"))
        self.assertRaisesNaming(FileNotFoundError, os.path.join(run_folder, "last"), run_folder)

    def test_token_ids_out_of_range(self):
        model = load(self.checkpoint("mamba"))
        for bad in (torch.tensor([[1, 100]]), torch.tensor([[-1, 2]])):
            with self.assertRaises(ValueError):
                model(bad)
        with self.assertRaises(ValueError):
            model(torch.tensor([1, 2, 3]))  # not (batch, T)

    def test_missing_files(self):
        for f in ("config.json", "model.safetensors"):
            with self.subTest(file=f):
                folder = self.broken_copy("mamba", "missing")
                os.remove(os.path.join(folder, f))
                self.assertRaisesNaming(FileNotFoundError, os.path.join(folder, f), folder)

    def test_truncated_safetensors(self):
        folder = self.broken_copy("mamba", "truncated")
        path = os.path.join(folder, "model.safetensors")
        size = os.path.getsize(path)
        for keep in (5, 200, size - 100):
            with self.subTest(bytes=keep):
                with open(path, "r+b") as f:
                    f.truncate(keep)
                self.assertRaisesNaming(ValueError, path, folder)

    def test_garbage_header(self):
        folder = self.broken_copy("mamba", "garbage")
        path = os.path.join(folder, "model.safetensors")
        with open(path, "r+b") as f:
            f.seek(8)
            f.write(b"\x00not json")
        self.assertRaisesNaming(ValueError, path, folder)

    def test_non_finite_value(self):
        folder = self.broken_copy("mamba", "nan")
        path = os.path.join(folder, "model.safetensors")
        with open(path, "r+b") as f:
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
            begin = header["norm_f.weight"]["data_offsets"][0]
            f.seek(8 + header_len + begin)
            f.write(np.array([np.nan], dtype=np.float32).tobytes())
        self.assertRaisesNaming(ValueError, path, folder, "norm_f.weight")

    def test_config_not_json(self):
        folder = self.broken_copy("mamba", "badjson")
        path = os.path.join(folder, "config.json")
        with open(path, "w") as f:
            f.write("{\"model_type\": \"mamba\",")
        self.assertRaisesNaming(ValueError, path, folder)

    def test_bad_config_values(self):
        cases = [
            (dict(model_type="mamba3"), "model_type"),
            (dict(hidden_sise=64), "hidden_sise"),  # unknown key, with a hint
            (dict(hidden_act="gelu"), "hidden_act"),
            (dict(state_size="16"), "state_size"),
            (dict(sparse_arch="sign_bin_lsh+key_selekt"), "key_selekt"),
            (dict(hax_semantics="strict"), "strict"),
        ]
        for changes, mention in cases:
            with self.subTest(changes=changes):
                folder = self.broken_copy("mamba", "badvalue")
                path = self.edit_config(folder, **changes)
                self.assertRaisesNaming(ValueError, path, folder, mention)

    def test_tensors_do_not_match_config(self):
        folder = self.broken_copy("mamba", "mismatch")
        self.edit_config(folder, state_size=8)  # shapes differ
        self.assertRaisesNaming(ValueError, os.path.join(folder, "model.safetensors"), folder, "A_log")
        folder = self.broken_copy("mamba", "mismatch")
        self.edit_config(folder, sparse_arch="sliding_window")  # the sparse tensors are missing
        self.assertRaisesNaming(ValueError, os.path.join(folder, "model.safetensors"), folder, "xx_proj")

    def test_resampled_lsh_projection(self):
        """hax_lsh_resample reaches HaxAttention: "training" redraws the LSH projection in training only, so eval
        logits are those of the saved projection ("never"); "every_forward" (`paper`'s default) redraws it on every
        forward, so two forwards of the same input differ."""
        ids = token_rows(3, 2, 48)
        logits = {}
        for mode in ("never", "training", "every_forward"):
            folder = self.broken_copy("mamba_hax_paper", "resample")
            self.edit_config(folder, hax_lsh_resample=mode)
            model = load(folder)
            with torch.no_grad():
                logits[mode] = (model(ids), model(ids))
        self.assertTrue(torch.equal(logits["never"][0], logits["training"][0]))
        self.assertTrue(torch.equal(logits["never"][0], logits["never"][1]))
        self.assertFalse(torch.equal(logits["every_forward"][0], logits["every_forward"][1]))


class TestPublicName(unittest.TestCase):
    def test_public_name(self):
        """hax.torch.load is the package's name for hax.torch.model.load."""
        self.assertTrue(callable(getattr(hax.torch, "load", None)), "hax.torch exports load")
        missing = os.path.join(tempfile.gettempdir(), "hax_test_load_no_such_checkpoint")
        with self.assertRaises(FileNotFoundError) as cm:
            hax.torch.load(missing)
        self.assertIn(missing, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
