"""hax's CPU kernels for PyTorch: drop-in replacements for mamba_ssm's CUDA-only ops (selective_scan_fn,
causal_conv1d_fn, mamba_chunk_scan_combined), context-dependent sparse attention (sparse_attention, HaxAttention),
and hax checkpoints as nn.Modules (load)."""
from hax.torch.ops import causal_conv1d_fn, mamba_chunk_scan_combined, selective_scan_fn, sparse_attention
from hax.torch.hax_attention import HaxAttention


def load(checkpoint_dir):
    """A hax checkpoint folder (config.json + model.safetensors) as an nn.Module built on these ops; its logits equal
    `hax logits`."""
    from hax.torch.model import load as load_model
    return load_model(checkpoint_dir)


def set_num_threads(threads):
    """Threads of hax's kernels (OpenMP), independent of torch.set_num_threads."""
    from hax import _capi
    _capi.lib().hax_set_num_threads(int(threads))


__all__ = ["selective_scan_fn", "causal_conv1d_fn", "mamba_chunk_scan_combined", "sparse_attention", "HaxAttention",
           "load", "set_num_threads"]
