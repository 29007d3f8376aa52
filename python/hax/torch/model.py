"""hax checkpoints as PyTorch modules: ``load(checkpoint_dir)`` reads a hax checkpoint folder (config.json with the
Hugging Face-style keys of src/hax/models/config.cpp, model.safetensors in float32) and returns an ``nn.Module`` of
the checkpoint's model -- Mamba (Mamba-1), Mamba2 or Samba, with or without the sparse-attention branch (HAX and the
other patterns) -- built on hax's own ops (``hax.torch.ops``, ``hax.torch.hax_attention``), so it runs and trains
fast on the CPU.

The module's parameter and buffer names are the checkpoint's tensor names, exactly:

    embeddings.weight                       (V, D)   input embedding; the output layer is its transpose (tied)
    layers.L.norm.weight                    (D)      Mamba / Mamba2 block: h = h + mixer(norm(h))
    layers.L.mixer.<Mamba or Mamba2 mixer>           in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj, ...
    layers.L.mixer.xx_proj.weight, .E, .dx_proj_{1,2,3}.*, .lsh_projection (buffer)   sparse branch (HaxAttention)
    layers.L.mixer_norm.weight, layers.L.mlp_norm.weight, layers.L.mlp.{gate,up,down}_proj.weight   Samba block
    norm_f.weight                           (D)      final RMSNorm
    lm_head.weight                          (V, D)   the output layer, with "hax_untied_lm_head" only

so ``module.load_state_dict(tensors)`` of the checkpoint works, and ``module.state_dict()`` can be written back as a
checkpoint. ``module(input_ids)`` with input_ids (batch, T) int64 gives the logits (batch, T, vocab) that
``hax logits`` gives for those sequences. In training mode, models with key selection also leave the gate (ranking)
loss summed over the layers in ``module.gate_loss`` (a 0-dim tensor; zero for the others): hax's objective is
``cross_entropy + GATE_LOSS_WEIGHT * module.gate_loss``.

The sparse branch of a mixer is a ``HaxAttention`` whose parameters, submodules and buffers are registered on the
mixer itself (not under a name of their own), which is what makes the names line up; see ``_SparseHost``.
"""
import json
import math
import os
import struct
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["load", "read_config", "read_safetensors", "HaxModelConfig", "HaxModel", "GATE_LOSS_WEIGHT"]

GATE_LOSS_WEIGHT = 0.1  # the gate loss's weight in hax's (and the reference's) training objective

# ---------------------------------------------------------------------------------------------------------------
# config.json: read and checked by hax's own reader (src/hax/models/config.cpp, through the C library), so the
# defaults and refusals are hax's, with no second copy of the rules here.

class HaxModelConfig:
    """The fields of a hax model config (src/hax/models/config.h), from the normalized JSON hax's reader gives
    (every default filled in). ``where`` names the source in error messages."""

    def __init__(self, j, where="config"):
        self.where = where
        for key in ("model_type", "vocab_size", "hidden_size", "intermediate_size", "state_size", "time_step_rank",
                    "conv_kernel", "num_hidden_layers", "layer_norm_epsilon", "initializer_range", "use_bias",
                    "use_conv_bias", "time_step_min", "time_step_max", "time_step_floor", "time_step_scale",
                    "pad_token_id", "bos_token_id", "eos_token_id"):
            setattr(self, key, j[key])
        self.seed = j["hax_seed"]
        self.untied_lm_head = j.get("hax_untied_lm_head", False)  # an output layer of its own, lm_head.weight
        # Mamba2
        self.num_heads, self.head_dim = j.get("num_heads", 0), j.get("head_dim", 0)
        self.n_groups, self.chunk_size = j.get("n_groups", 1), j.get("chunk_size", 256)
        self.rescale_prenorm_residual = j.get("rescale_prenorm_residual", False)
        # Samba
        attn = j.get("attn", {})
        self.attn_layers = list(attn.get("layers", []))
        self.attn_num_heads, self.attn_num_kv_heads = attn.get("num_heads", 0), attn.get("num_kv_heads", 0)
        self.attn_window, self.rope_theta = attn.get("window_size", 0), attn.get("rope_theta", 10000.0)
        self.qkv_bias = attn.get("qkv_bias", False)
        self.hidden_ratio = j.get("hidden_ratio", 4)
        self.max_position_embeddings = j.get("max_position_embeddings", 2048)
        # the sparse branch
        self.sparse_arch = j.get("sparse_arch", "")
        self.sparse_keys, self.num_hash = j.get("sparse_keys", 64), j.get("num_hash", 8)
        self.data_max_length = j.get("data_max_length", 2048)
        self.semantics = j.get("hax_semantics", "causal")
        self.lsh_resample_mode = j.get("hax_lsh_resample", "never")
        self.paper_without = list(j.get("hax_paper_without", []))
        self.lsh_statistics = j.get("hax_lsh_statistics", "none")
        self.ks_normalization = j.get("hax_ks_normalization", "position")

    @property
    def patterns(self):
        return self.sparse_arch.split("+") if self.sparse_arch else []

    @property
    def has_sparse(self):
        return bool(self.sparse_arch)

    @property
    def has_key_selection(self):
        return "key_selection" in self.patterns

    @property
    def has_lsh(self):
        return "sign_bin_lsh" in self.patterns or "argmax_lsh" in self.patterns

    def is_attention_layer(self, layer):
        return self.model_type == "samba" and layer in self.attn_layers

    @property
    def mlp_intermediate_size(self):
        wanted = int(self.hidden_size * self.hidden_ratio * 2.0 / 3.0)
        return 256 * ((wanted + 255) // 256)

    def __repr__(self):
        return f"HaxModelConfig({dict(vars(self))})"


def read_config(path):
    """The HaxModelConfig of a config.json file, as hax reads it: FileNotFoundError for a missing file, ValueError
    (hax's message, naming the file and the key) for one hax refuses."""
    from hax import _capi
    if not os.path.isfile(path):
        raise FileNotFoundError(f"cannot open model config '{path}': no such file")
    return HaxModelConfig(_capi.model_config(path), path)


def config_from_dict(config):
    """A HaxModelConfig of a config dict (the keys of config.json), checked by hax's reader like a file."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "config.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        parsed = read_config(path)
    parsed.where = "config"
    return parsed


# ---------------------------------------------------------------------------------------------------------------
# model.safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, data.

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}


def read_safetensors(path):
    """{name: float32 tensor} of a safetensors file, checked (ValueError naming the file and the tensor)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"cannot open '{path}': no such file")
    with open(path, "rb") as f:
        blob = f.read()

    def fail(message):
        raise ValueError(f"'{path}' is not a valid safetensors file: {message}")

    if len(blob) < 8:
        fail(f"{len(blob)} bytes, too short for the header length")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > len(blob) - 8:
        fail(f"the header length {header_len} runs past the end of the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(f"the header is not valid JSON ({e})")
    if not isinstance(header, dict):
        fail("the header is not a JSON object")
    data = memoryview(blob)[8 + header_len:]
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(meta, dict) or not {"dtype", "shape", "data_offsets"} <= set(meta):
            fail(f"tensor '{name}': the entry lacks dtype, shape or data_offsets")
        dtype, shape, offsets = meta["dtype"], meta["shape"], meta["data_offsets"]
        if dtype not in _DTYPES:
            fail(f"tensor '{name}' has dtype {dtype}; hax checkpoints are F32")
        if (not isinstance(shape, list) or
                not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            fail(f"tensor '{name}': bad shape {json.dumps(shape)}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or
                not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            fail(f"tensor '{name}': bad data_offsets {json.dumps(offsets)}")
        begin, end = offsets
        item = np.dtype(_DTYPES[dtype]).itemsize
        count = math.prod(shape)
        if not 0 <= begin <= end <= len(data):
            fail(f"tensor '{name}': data_offsets [{begin}, {end}] outside the {len(data)} data bytes "
                 "(is the file truncated?)")
        if end - begin != count * item:
            fail(f"tensor '{name}': {end - begin} bytes for shape {shape} of {dtype} ({count * item} expected)")
        array = np.frombuffer(data[begin:end], dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<"), count=count)
        tensor = torch.from_numpy(array.astype(np.float32)).reshape(shape)
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(f"'{path}': tensor '{name}' holds {bad} NaN or infinite value(s)")
        tensors[name] = tensor
    return tensors


# ---------------------------------------------------------------------------------------------------------------
# The modules.

def _ops():
    from hax.torch import ops  # imported late: `import hax.torch.model` should not need the shared library
    return ops


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight."""

    def __init__(self, width, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

    def extra_repr(self):
        return f"{self.weight.shape[0]}, eps={self.eps}"


class GatedRMSNorm(RMSNorm):
    """Mamba2's gated norm (norm_before_gate = False, one group): RMSNorm(y * silu(z))."""

    def forward(self, y, z):
        return super().forward(y * F.silu(z))


class _GateLossHolder(nn.Module):
    """A module that keeps the last forward's gate loss (a tensor of the autograd graph) as ``self.gate_loss``:
    copies and pickles (copy.deepcopy, torch.save) keep it detached, since a non-leaf tensor cannot be copied."""

    def __getstate__(self):
        state = self.__dict__.copy()
        if isinstance(state.get("gate_loss"), torch.Tensor):
            state["gate_loss"] = state["gate_loss"].detach()
        return state


class _SparseHost(_GateLossHolder):
    """A mixer that may carry a sparse-attention branch (HaxAttention) whose parameters, buffers and submodules are
    registered on the mixer itself, under the names HaxAttention gives them: the checkpoint's names
    (``layers.0.mixer.xx_proj.weight``, not ``layers.0.mixer.<branch>.xx_proj.weight``). The HaxAttention object is
    kept outside the module tree (no state_dict entries, no duplicate parameters); it shares the very Parameter,
    buffer and submodule objects, and this class keeps it in step: train()/eval() reach it, and after _apply (.to(),
    .double(), ...) or a forward that replaces a tensor, both sides point at the same tensors again."""

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "hax_attention", None)  # not a registered submodule, on purpose
        self.gate_loss = None

    def _adopt(self, branch):
        for name in list(branch._modules) + list(branch._parameters) + list(branch._buffers):
            if name in self._modules or name in self._parameters or name in self._buffers or hasattr(self, name):
                raise RuntimeError(f"HaxAttention's member '{name}' collides with a member of {type(self).__name__}")
        for name, child in branch._modules.items():
            self.add_module(name, child)
        for name, param in branch._parameters.items():
            self.register_parameter(name, param)
        for name, buf in branch._buffers.items():
            self.register_buffer(name, buf, persistent=name not in branch._non_persistent_buffers_set)
        object.__setattr__(self, "hax_attention", branch)

    def _push_to_branch(self):
        b = self.hax_attention
        for name in b._parameters:
            b._parameters[name] = self._parameters[name]
        for name in b._buffers:
            b._buffers[name] = self._buffers[name]
        for name in b._modules:
            b._modules[name] = self._modules[name]

    def _pull_from_branch(self):
        b = self.hax_attention
        for name in b._parameters:
            self._parameters[name] = b._parameters[name]
        for name in b._buffers:
            self._buffers[name] = b._buffers[name]

    def train(self, mode=True):
        super().train(mode)
        if self.hax_attention is not None:
            self.hax_attention.train(mode)
        return self

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if self.hax_attention is not None:
            self._push_to_branch()
        return self

    def sparse_term(self, xc, z):
        """The sparse branch's term of the mixer, E * attn (* silu(z)); sets self.gate_loss (None unless training
        with key selection)."""
        branch = self.hax_attention
        self._push_to_branch()
        if hasattr(branch, "gate_loss"):
            branch.gate_loss = None
        out = branch(xc, z)
        self._pull_from_branch()
        gate = getattr(branch, "gate_loss", None) if self.training else None
        if hasattr(branch, "gate_loss"):
            branch.gate_loss = None  # kept here only (detached when copied): the branch stays copyable
        self.gate_loss = gate
        return out


def _hax_attention(cfg, channels, layer):
    """The HaxAttention of one layer's mixer, with every sparse setting of the config."""
    from hax.torch.hax_attention import HaxAttention

    try:
        return HaxAttention(channels, cfg.state_size, sparse_arch=cfg.sparse_arch, num_hash=cfg.num_hash,
                            semantics=cfg.semantics, total_keys=cfg.sparse_keys, max_length=cfg.data_max_length,
                            seed=cfg.seed + layer, lsh_statistics=cfg.lsh_statistics,
                            ks_normalization=cfg.ks_normalization, lsh_resample=cfg.lsh_resample_mode,
                            paper_without=tuple(cfg.paper_without))
    except (ValueError, NotImplementedError, RuntimeError) as e:
        raise ValueError(f"{cfg.where}: sparse_arch \"{cfg.sparse_arch}\" ({cfg.semantics}): {e}") from e


class MambaMixer(_SparseHost):
    """Mamba-1's mixer (reference.md §3.3-3.4, §5.1), with the optional sparse branch:
    out = out_proj(((SSM(xc) + D xc + E attn(xc)) * silu(z)))."""

    def __init__(self, cfg, layer=0, sparse=True):
        super().__init__()
        D, I, N, R, K = cfg.hidden_size, cfg.intermediate_size, cfg.state_size, cfg.time_step_rank, cfg.conv_kernel
        self.d_inner, self.d_state, self.dt_rank = I, N, R
        self.in_proj = nn.Linear(D, 2 * I, bias=cfg.use_bias)
        self.conv1d = nn.Conv1d(I, I, K, groups=I, bias=cfg.use_conv_bias)  # weight (I, 1, K); used causally
        self.x_proj = nn.Linear(I, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, I, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(I, 1))
        self.D = nn.Parameter(torch.ones(I))
        self.out_proj = nn.Linear(I, D, bias=cfg.use_bias)
        if sparse and cfg.has_sparse:
            self._adopt(_hax_attention(cfg, I, layer))

    def forward(self, u):
        ops = _ops()
        I, N, R = self.d_inner, self.d_state, self.dt_rank
        xz = self.in_proj(u)                                              # (B, T, 2I)
        x = xz[..., :I].transpose(1, 2).contiguous()                      # (B, I, T)
        z = xz[..., I:].transpose(1, 2).contiguous()
        xc = ops.causal_conv1d_fn(x, self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu")
        xc_rows = xc.transpose(1, 2)                                      # (B, T, I)
        dt, Bm, Cm = self.x_proj(xc_rows).split([R, N, N], dim=-1)
        delta = F.linear(dt, self.dt_proj.weight).transpose(1, 2).contiguous()  # (B, I, T), bias in the scan
        A = -torch.exp(self.A_log.float())
        y = ops.selective_scan_fn(xc, delta, A, Bm.transpose(1, 2).contiguous(), Cm.transpose(1, 2).contiguous(),
                                  self.D.float(), z=z, delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        y = y.transpose(1, 2)                                             # (B, T, I), already * silu(z)
        if self.hax_attention is not None:
            y = y + self.sparse_term(xc_rows.contiguous(), xz[..., I:].contiguous())
        return self.out_proj(y)


class Mamba2Mixer(_SparseHost):
    """Mamba2's mixer (reference.md §4.3-4.4), with the optional sparse branch:
    out = out_proj(GatedRMSNorm(SSD(x) + D x + E attn(x), z))."""

    def __init__(self, cfg, layer=0):
        super().__init__()
        D, I, N, K = cfg.hidden_size, cfg.intermediate_size, cfg.state_size, cfg.conv_kernel
        H, G = cfg.num_heads, cfg.n_groups
        self.d_inner, self.d_state, self.nheads, self.headdim, self.ngroups = I, N, H, cfg.head_dim, G
        self.chunk_size = cfg.chunk_size
        conv_dim = I + 2 * G * N
        self.in_proj = nn.Linear(D, I + conv_dim + H, bias=cfg.use_bias)
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, K, groups=conv_dim, bias=cfg.use_conv_bias)
        self.dt_bias = nn.Parameter(torch.zeros(H))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, H + 1, dtype=torch.float32)))
        self.D = nn.Parameter(torch.ones(H))
        self.norm = GatedRMSNorm(I, cfg.layer_norm_epsilon)
        self.out_proj = nn.Linear(I, D, bias=cfg.use_bias)
        if cfg.has_sparse:
            self._adopt(_hax_attention(cfg, I, layer))

    def forward(self, u):
        ops = _ops()
        Bt, T, _ = u.shape
        I, N, H, P, G = self.d_inner, self.d_state, self.nheads, self.headdim, self.ngroups
        z, xBC, dt = self.in_proj(u).split([I, I + 2 * G * N, H], dim=-1)
        xBC = ops.causal_conv1d_fn(xBC.transpose(1, 2).contiguous(), self.conv1d.weight.squeeze(1), self.conv1d.bias,
                                   activation="silu").transpose(1, 2)    # (B, T, conv_dim)
        x, Bm, Cm = xBC.split([I, G * N, G * N], dim=-1)
        x = x.contiguous()
        A = -torch.exp(self.A_log.float())
        y = ops.mamba_chunk_scan_combined(x.view(Bt, T, H, P), dt.contiguous(), A,
                                          Bm.contiguous().view(Bt, T, G, N), Cm.contiguous().view(Bt, T, G, N),
                                          self.chunk_size, D=self.D, z=None, dt_bias=self.dt_bias, dt_softplus=True)
        y = y.reshape(Bt, T, I)
        if self.hax_attention is not None:
            y = y + self.sparse_term(x, None)  # Mamba2's gate comes in the gated norm
        return self.out_proj(self.norm(y, z))


def _rotary_tables(T, head_dim, theta, device):
    """cos, sin (T, head_dim / 2) of t / theta^(2i / head_dim), computed in float64 (as hax does) then rounded."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim // 2, dtype=torch.float64) * 2 / head_dim)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return torch.cos(angle).float().to(device), torch.sin(angle).float().to(device)


def _rotate(x, cos, sin):
    """GPT-NeoX rotary embedding of x (B, T, H, P): channel d pairs with d + P/2."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def sliding_window_attention(q, k, v, window, scale):
    """Causal softmax attention of q over the `window` most recent keys, itself included. q, k, v (B, H, T, P) ->
    (B, H, T, P). Never builds a T x T matrix for T > 2 * window: queries go in blocks of `window`, each attending
    to its own block and the one before (O(T * window) memory)."""
    B, H, T, P = q.shape
    w = window
    if T <= 2 * w:
        t = torch.arange(T, device=q.device)
        allowed = (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - w)
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale
        scores = scores.masked_fill(~allowed, float("-inf"))
        return torch.matmul(torch.softmax(scores, dim=-1), v)
    nc = (T + w - 1) // w
    pad = nc * w - T
    qb = F.pad(q, (0, 0, 0, pad)).view(B, H, nc, w, P)
    kp = F.pad(k, (0, 0, w, pad))  # one block of zeros in front: block c's keys are kp rows [c w, c w + 2w)
    vp = F.pad(v, (0, 0, w, pad))
    kb = kp.unfold(2, 2 * w, w)    # (B, H, nc, P, 2w)
    vb = vp.unfold(2, 2 * w, w)
    scores = torch.matmul(qb, kb) * scale  # (B, H, nc, w, 2w)
    i = torch.arange(w, device=q.device)[:, None]
    j = torch.arange(2 * w, device=q.device)[None, :]
    band = (j > i) & (j <= i + w)  # key (c - 1) w + j against query c w + i: 0 <= query - key < w
    allowed = band.expand(nc, w, 2 * w).clone()
    allowed[0, :, :w] = False      # block 0's previous block is the zero padding before t = 0
    scores = scores.masked_fill(~allowed, float("-inf"))
    out = torch.matmul(torch.softmax(scores, dim=-1), vb.transpose(-1, -2))  # (B, H, nc, w, P)
    return out.reshape(B, H, nc * w, P)[:, :, :T]


class SlidingWindowAttention(nn.Module):
    """Samba's attention (fla Attention, reference.md §5.3): multi-head, rotary (GPT-NeoX), causal sliding window
    of `window_size` keys (itself included), no biases."""

    def __init__(self, cfg):
        super().__init__()
        D = cfg.hidden_size
        self.num_heads = cfg.attn_num_heads
        self.head_dim = D // self.num_heads
        self.window = cfg.attn_window
        self.rope_theta = cfg.rope_theta
        self.q_proj = nn.Linear(D, D, bias=False)
        self.k_proj = nn.Linear(D, D, bias=False)
        self.v_proj = nn.Linear(D, D, bias=False)
        self.o_proj = nn.Linear(D, D, bias=False)
        self.gate_loss = None

    def forward(self, x):
        B, T, D = x.shape
        H, P = self.num_heads, self.head_dim
        cos, sin = _rotary_tables(T, P, self.rope_theta, x.device)
        q = _rotate(self.q_proj(x).view(B, T, H, P), cos, sin).transpose(1, 2)
        k = _rotate(self.k_proj(x).view(B, T, H, P), cos, sin).transpose(1, 2)
        v = self.v_proj(x).view(B, T, H, P).transpose(1, 2)
        o = sliding_window_attention(q, k, v, self.window, 1.0 / math.sqrt(P))
        return self.o_proj(o.transpose(1, 2).reshape(B, T, D))


class GatedMLP(nn.Module):
    """Samba's SwiGLU MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg):
        super().__init__()
        D, Fw = cfg.hidden_size, cfg.mlp_intermediate_size
        self.gate_proj = nn.Linear(D, Fw, bias=False)
        self.up_proj = nn.Linear(D, Fw, bias=False)
        self.down_proj = nn.Linear(Fw, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MambaBlock(nn.Module):
    """Pre-norm residual block of Mamba / Mamba2: h + mixer(norm(h))."""

    def __init__(self, cfg, layer):
        super().__init__()
        self.norm = RMSNorm(cfg.hidden_size, cfg.layer_norm_epsilon)
        self.mixer = Mamba2Mixer(cfg, layer) if cfg.model_type == "mamba2" else MambaMixer(cfg, layer)

    def forward(self, h):
        return h + self.mixer(self.norm(h))


class SambaBlock(nn.Module):
    """Samba's block: s = h + mixer(mixer_norm(h)); h = s + mlp(mlp_norm(s)), the mixer Mamba or attention."""

    def __init__(self, cfg, layer):
        super().__init__()
        self.mixer_norm = RMSNorm(cfg.hidden_size, cfg.layer_norm_epsilon)
        self.mixer = SlidingWindowAttention(cfg) if cfg.is_attention_layer(layer) else MambaMixer(cfg, layer, False)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.layer_norm_epsilon)
        self.mlp = GatedMLP(cfg)

    def forward(self, h):
        s = h + self.mixer(self.mixer_norm(h))
        return s + self.mlp(self.mlp_norm(s))


class HaxModel(_GateLossHolder):
    """A hax model: embeddings -> blocks -> norm_f -> logits = h @ embeddings.weight^T (tied output layer), or
    h @ lm_head.weight^T with "hax_untied_lm_head" (a Hugging Face checkpoint with tie_word_embeddings false)."""

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, HaxModelConfig):
            config = config_from_dict(dict(config))
        self.config = config
        block = SambaBlock if config.model_type == "samba" else MambaBlock
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([block(config, layer) for layer in range(config.num_hidden_layers)])
        self.norm_f = RMSNorm(config.hidden_size, config.layer_norm_epsilon)
        if config.untied_lm_head:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.gate_loss = torch.zeros(())

    def forward(self, input_ids):
        """input_ids (batch, T) int64 -> logits (batch, T, vocab). Sets self.gate_loss (0-dim: the gate loss summed
        over the layers in training mode with key selection, else 0).

        There is no attention mask: every row is a token of its sequence, so the batch is `batch` sequences of T
        tokens each (what `hax logits` computes for equal-length sequences). Under `paper` semantics the sparse
        branch's whole-sequence statistics count all T rows; hax pads shorter sequences of a batch with zero rows
        instead, so for those, run each length as a batch of its own."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise ValueError("input_ids must be a (batch, T) tensor of token ids, got "
                             f"{tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids)}")
        if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must hold integer token ids, got {input_ids.dtype}")
        if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size):
            raise ValueError(f"input_ids must be token ids in [0, {self.config.vocab_size}), got ids from "
                             f"{int(input_ids.min())} to {int(input_ids.max())}")
        h = self.embeddings(input_ids.long())
        gates = []
        for block in self.layers:
            h = block(h)
            gate = getattr(block.mixer, "gate_loss", None)
            if gate is not None:
                gates.append(gate.reshape(()).to(h.dtype))
        h = self.norm_f(h)
        self.gate_loss = torch.stack(gates).sum() if gates else h.new_zeros(())
        return F.linear(h, self.lm_head.weight if self.config.untied_lm_head else self.embeddings.weight)


# ---------------------------------------------------------------------------------------------------------------

def load(checkpoint_dir):
    """The nn.Module (HaxModel) of a hax checkpoint folder: config.json + model.safetensors (float32). Its state_dict
    names are the checkpoint's tensor names; forward(input_ids (batch, T)) gives the logits (batch, T, vocab) of
    `hax logits`. The module is returned in eval mode (call .train() to train it). FileNotFoundError or ValueError,
    naming the file, for a folder that is not a loadable checkpoint."""
    checkpoint_dir = os.fspath(checkpoint_dir)
    if not os.path.isdir(checkpoint_dir):
        raise FileNotFoundError(f"checkpoint folder '{checkpoint_dir}' does not exist (or is not a folder)")
    config_path = os.path.join(checkpoint_dir, "config.json")
    weights_path = os.path.join(checkpoint_dir, "model.safetensors")
    if not os.path.exists(config_path):
        runs = [sub for sub in ("best", "last") if os.path.isfile(os.path.join(checkpoint_dir, sub, "config.json"))]
        if runs:  # a `hax train` run folder
            raise FileNotFoundError(f"cannot open model config '{config_path}': '{checkpoint_dir}' is a run folder; "
                                    f"load its checkpoint {' or '.join(repr(os.path.join(checkpoint_dir, r)) for r in runs)}")
    cfg = read_config(config_path)
    tensors = read_safetensors(weights_path)
    model = HaxModel(cfg)
    expected = model.state_dict()
    missing = [name for name in expected if name not in tensors]
    unexpected = [name for name in tensors if name not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} tensor(s) the config's model has: {', '.join(missing[:8])}"
                         f"{', ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"has {len(unexpected)} tensor(s) the config's model does not: {', '.join(unexpected[:8])}"
                         f"{', ...' if len(unexpected) > 8 else ''}")
        raise ValueError(f"'{weights_path}' does not match '{config_path}' ({cfg.model_type}"
                         f"{' + ' + cfg.sparse_arch if cfg.sparse_arch else ''}): it {'; it '.join(parts)}")
    for name, value in expected.items():
        if tuple(tensors[name].shape) != tuple(value.shape):
            raise ValueError(f"'{weights_path}': tensor '{name}' has shape {list(tensors[name].shape)}, but "
                             f"'{config_path}' makes it {list(value.shape)}")
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model
