#!/usr/bin/python3
"""Tests of `hax convert --from-hf / --to-hf` against an independent PyTorch implementation of Hugging Face's
MambaForCausalLM and Mamba2ForCausalLM.

Each test writes a small random checkpoint in transformers' layout from Python (config.json with transformers' keys,
model.safetensors with backbone.* tensors in F32, BF16 or F16, a tied or a separate lm_head.weight), converts it
with `hax convert --from-hf`, runs `hax logits` on a token file, and compares with the float64 forward of this file,
which reads the Hugging Face file directly (its names, its dtype) and runs the mixers of tools/oracle (mamba_torch.py,
mamba2_torch.py: the math written independently of hax). Then `hax convert --to-hf` writes the hax checkpoint back
in transformers' layout, and that folder, read by the same independent forward, gives the same logits again.
Tolerance: 1e-4 relative to the largest |logit|.

Run from the repository root (PYTHONPATH and HAX_LIBRARY for the one test of hax.torch.load, skipped without):
  PYTHONPATH=python HAX_LIBRARY=build/libhax_c.so HAX_BINARY=build/hax /usr/bin/python3 -m unittest -v tests/python/test_hf_convert.py
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

_REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(_REPO, "tools", "oracle"))
import mamba_torch  # noqa: E402
import mamba2_torch  # noqa: E402
import safetensors_check  # noqa: E402

HAX_BINARY = os.environ.get("HAX_BINARY", os.path.join(_REPO, "build", "hax"))
REL_LOGITS = 1e-4
VOCAB, HIDDEN, LAYERS = 50, 16, 2
TORCH_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def run(args):
    r = subprocess.run([HAX_BINARY] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise AssertionError(f"hax {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


# --- safetensors, written and read here (no `safetensors` package) ---------------------------------------------

def write_safetensors(path, tensors, dtype):
    """tensors: name -> float tensor, stored as `dtype` ("F32", "BF16", "F16")."""
    raw = []
    for name, value in tensors.items():
        stored = value.to(TORCH_DTYPES[dtype]).contiguous()
        bits = stored.view(torch.int16) if dtype != "F32" else stored  # numpy has no bfloat16: its raw bits
        raw.append((name, dtype, value.shape, bits.numpy().tobytes()))
    safetensors_check.write_safetensors(path, raw, {"format": "pt"})


def read_safetensors(path):
    """name -> float64 tensor, whatever the stored dtype; and the dtypes."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    tensors, dtypes = {}, {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        raw = data[begin:end]
        if meta["dtype"] == "F32":
            value = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
        elif meta["dtype"] == "F16":
            value = torch.from_numpy(np.frombuffer(raw, dtype="<f2").astype(np.float32))
        elif meta["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            value = torch.from_numpy(bits.view(np.float32).copy())
        else:
            raise ValueError(f"{path}: {name} is {meta['dtype']}")
        tensors[name] = value.double().reshape(meta["shape"])
        dtypes[name] = meta["dtype"]
    return tensors, dtypes


# --- Hugging Face checkpoints and their forward --------------------------------------------------------------

def mamba_config(tied, use_bias=False):
    """A small MambaForCausalLM config, with the keys transformers writes (and the mamba_ssm leftovers the released
    state-spaces/mamba-*-hf configs carry)."""
    return {"architectures": ["MambaForCausalLM"], "model_type": "mamba", "vocab_size": VOCAB,
            "hidden_size": HIDDEN, "state_size": 4, "num_hidden_layers": LAYERS, "expand": 2,
            "intermediate_size": 2 * HIDDEN, "conv_kernel": 4, "time_step_rank": "auto", "layer_norm_epsilon": 1e-5,
            "use_bias": use_bias, "use_conv_bias": True, "hidden_act": "silu", "initializer_range": 0.1,
            "residual_in_fp32": True, "time_step_scale": 1.0, "time_step_min": 0.001, "time_step_max": 0.1,
            "time_step_init_scheme": "random", "time_step_floor": 1e-4, "rescale_prenorm_residual": False,
            "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0, "tie_word_embeddings": tied,
            "torch_dtype": "float32", "transformers_version": "4.39.0", "use_cache": True, "n_layer": LAYERS,
            "fused_add_norm": True, "pad_vocab_size_multiple": 8, "rms_norm": True, "ssm_cfg": {}}


def mamba2_config(tied):
    return {"architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2", "vocab_size": VOCAB,
            "hidden_size": HIDDEN, "state_size": 8, "num_hidden_layers": LAYERS, "expand": 2, "num_heads": 4,
            "head_dim": 8, "n_groups": 1, "conv_kernel": 4, "chunk_size": 256, "time_step_rank": "auto",
            "layer_norm_epsilon": 1e-5, "use_bias": False, "use_conv_bias": True, "hidden_act": "silu",
            "initializer_range": 0.1, "residual_in_fp32": True, "time_step_min": 0.001, "time_step_max": 0.1,
            "time_step_floor": 1e-4, "time_step_limit": [0.0, float("inf")], "rescale_prenorm_residual": False,
            "rms_norm": True, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "tie_word_embeddings": tied,
            "torch_dtype": "bfloat16", "transformers_version": "4.44.0", "use_cache": True}


def mixer_shapes(cfg):
    D, N, K = cfg["hidden_size"], cfg["state_size"], cfg["conv_kernel"]
    I = cfg["expand"] * D
    if cfg["model_type"] == "mamba":
        R = -(-D // 16)
        shapes = {"in_proj.weight": (2 * I, D), "conv1d.weight": (I, 1, K), "conv1d.bias": (I,),
                  "x_proj.weight": (R + 2 * N, I), "dt_proj.weight": (I, R), "dt_proj.bias": (I,),
                  "A_log": (I, N), "D": (I,), "out_proj.weight": (D, I)}
        if cfg["use_bias"]:
            shapes.update({"in_proj.bias": (2 * I,), "out_proj.bias": (D,)})
        return shapes
    H, G = cfg["num_heads"], cfg["n_groups"]
    conv = I + 2 * G * N
    return {"in_proj.weight": (I + conv + H, D), "conv1d.weight": (conv, 1, K), "conv1d.bias": (conv,),
            "dt_bias": (H,), "A_log": (H,), "D": (H,), "norm.weight": (I,), "out_proj.weight": (D, I)}


def random_checkpoint(cfg, separate_head, seed):
    """Random weights in transformers' names, away from the initialization's constants."""
    g = torch.Generator().manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    D = cfg["hidden_size"]
    t = {"backbone.embeddings.weight": 0.5 * randn(VOCAB, D), "backbone.norm_f.weight": 1 + 0.2 * randn(D)}
    for layer in range(cfg["num_hidden_layers"]):
        t[f"backbone.layers.{layer}.norm.weight"] = 1 + 0.2 * randn(D)
        for name, shape in mixer_shapes(cfg).items():
            value = 0.3 * randn(*shape)
            if name == "A_log":
                value = torch.log(torch.rand(*shape, generator=g) * 8 + 0.5)
            elif name in ("dt_proj.bias", "dt_bias"):
                value = torch.log(torch.expm1(torch.rand(*shape, generator=g) * 0.1 + 0.001))
            elif name in ("D", "norm.weight"):
                value = 1 + 0.2 * randn(*shape)
            t[f"backbone.layers.{layer}.mixer.{name}"] = value
    if separate_head:
        t["lm_head.weight"] = 0.5 * randn(VOCAB, D)
    return t


def write_hf_folder(folder, cfg, tensors, dtype):
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)  # Python writes float("inf") as Infinity, as transformers does
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype)


def hf_logits(folder, tokens):
    """The logits (T, V) of one sequence by transformers' model as written in its modeling files, in float64, from
    the folder's own config.json and tensors: pre-norm residual blocks, final norm_f, lm_head (or the embedding when
    tied)."""
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    params, _ = read_safetensors(os.path.join(folder, "model.safetensors"))
    D = cfg["hidden_size"]
    mixer_cfg = dict(cfg, intermediate_size=int(cfg["expand"] * D), time_step_rank=-(-D // 16)
                     if cfg.get("time_step_rank", "auto") == "auto" else cfg["time_step_rank"])
    mixer = mamba_torch.mixer if cfg["model_type"] == "mamba" else mamba2_torch.mixer
    eps = cfg["layer_norm_epsilon"]
    h = params["backbone.embeddings.weight"][torch.tensor(tokens)]
    for layer in range(cfg["num_hidden_layers"]):
        prefix = f"backbone.layers.{layer}.mixer."
        p = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        out, _ = mixer(mamba_torch.rmsnorm(h, params[f"backbone.layers.{layer}.norm.weight"], eps), p, mixer_cfg)
        h = h + out
    tied = cfg.get("tie_word_embeddings", cfg["model_type"] == "mamba")
    head = params["backbone.embeddings.weight"] if tied or "lm_head.weight" not in params else params["lm_head.weight"]
    return mamba_torch.rmsnorm(h, params["backbone.norm_f.weight"], eps) @ head.T


SEQUENCES = [[3, 17, 42, 5, 9, 9, 28, 1, 33, 47, 12], [7, 0, 49, 21, 2]]


class HfConvert(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        self.tokens = os.path.join(self.tmp, "tokens.txt")
        with open(self.tokens, "w") as f:
            f.write("".join(" ".join(map(str, s)) + "\n" for s in SEQUENCES))

    def tearDown(self):
        self._tmp.cleanup()

    def hax_logits(self, checkpoint):
        out = os.path.join(self.tmp, "logits.npy")
        run(["logits", "--checkpoint", checkpoint, "--tokens", self.tokens, "--out", out])
        return np.load(out)

    def assert_close(self, hax, oracle, what):
        scale = float(np.abs(hax).max())
        error = float(np.abs(hax - oracle).max())
        self.assertLessEqual(error, REL_LOGITS * scale, f"{what}: max |hax - oracle| {error:.3g}, scale {scale:.3g}")

    def check(self, cfg, dtype, separate_head, equal_head=False, seed=1):
        tensors = random_checkpoint(cfg, separate_head, seed)
        if equal_head:  # a separate lm_head.weight that equals the embedding: the tied layer
            tensors["lm_head.weight"] = tensors["backbone.embeddings.weight"].clone()
        hf = os.path.join(self.tmp, "hf")
        write_hf_folder(hf, cfg, tensors, dtype)
        hax = os.path.join(self.tmp, "hax")
        run(["convert", "--from-hf", hf, "--out", hax])
        with open(os.path.join(hax, "config.json")) as f:
            hax_cfg = json.load(f)
        self.assertEqual(hax_cfg.get("hax_untied_lm_head", False), separate_head and not equal_head)
        logits = self.hax_logits(hax)
        for s, seq in enumerate(SEQUENCES):
            oracle = hf_logits(hf, seq).numpy()
            self.assert_close(logits[s, :len(seq)], oracle, f"{cfg['model_type']} {dtype} sequence {s}")

        # Back to transformers' layout: F32, the same names, and the same logits from the independent forward.
        back = os.path.join(self.tmp, "back")
        run(["convert", "--to-hf", hax, "--out", back])
        written, dtypes = read_safetensors(os.path.join(back, "model.safetensors"))
        self.assertEqual(set(dtypes.values()), {"F32"})
        original, _ = read_safetensors(os.path.join(hf, "model.safetensors"))
        if equal_head:
            del original["lm_head.weight"]  # tied: written once, as transformers saves a tied head
        self.assertEqual(set(written), set(original))
        for name, value in original.items():
            self.assertTrue(torch.equal(written[name], value), name)  # BF16/F16 -> f32 exactly, and back
        with open(os.path.join(back, "config.json")) as f:
            back_cfg = json.load(f)
        self.assertEqual(back_cfg["architectures"], cfg["architectures"])
        self.assertEqual(back_cfg["model_type"], cfg["model_type"])
        for s, seq in enumerate(SEQUENCES):
            self.assert_close(logits[s, :len(seq)], hf_logits(back, seq).numpy(), f"--to-hf sequence {s}")

    def test_mamba_f32_tied(self):
        self.check(mamba_config(tied=True), "F32", separate_head=False)

    def test_mamba_bf16_separate_head(self):
        self.check(mamba_config(tied=False, use_bias=True), "BF16", separate_head=True, seed=2)

    def test_mamba_f16_head_equal_to_embedding(self):
        self.check(mamba_config(tied=True), "F16", separate_head=True, equal_head=True, seed=3)

    def test_mamba2_f32_separate_head(self):
        self.check(mamba2_config(tied=False), "F32", separate_head=True, seed=4)

    def test_mamba2_bf16_tied(self):
        self.check(mamba2_config(tied=True), "BF16", separate_head=False, seed=5)

    def test_mamba2_f16_separate_head(self):
        self.check(mamba2_config(tied=False), "F16", separate_head=True, seed=6)

    def test_hax_torch_load_uses_the_separate_head(self):
        """hax.torch.load (python/hax/torch) of a converted checkpoint with an untied head: its lm_head.weight is a
        parameter and the module's logits are hax's."""
        try:
            import hax.torch
        except (ImportError, OSError) as e:  # the package or libhax_c.so is not there: PYTHONPATH / HAX_LIBRARY
            self.skipTest(f"hax.torch is not importable: {e}")
        hf, hax_dir = os.path.join(self.tmp, "hf"), os.path.join(self.tmp, "hax")
        write_hf_folder(hf, mamba_config(tied=False), random_checkpoint(mamba_config(False), True, 8), "BF16")
        run(["convert", "--from-hf", hf, "--out", hax_dir])
        module = hax.torch.load(hax_dir)
        self.assertIn("lm_head.weight", dict(module.named_parameters()))
        seq = SEQUENCES[0]
        with torch.no_grad():
            ours = module(torch.tensor([seq])).numpy()[0]
        self.assert_close(self.hax_logits(hax_dir)[0, :len(seq)], ours, "hax.torch.load")

    def test_bad_folder_writes_nothing(self):
        cfg = mamba_config(tied=True)
        tensors = random_checkpoint(cfg, False, 7)
        del tensors["backbone.layers.1.mixer.D"]
        hf = os.path.join(self.tmp, "hf")
        write_hf_folder(hf, cfg, tensors, "BF16")
        out = os.path.join(self.tmp, "out")
        r = subprocess.run([HAX_BINARY, "convert", "--from-hf", hf, "--out", out], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn("backbone.layers.1.mixer.D", r.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
