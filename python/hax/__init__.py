"""hax: state-space models with context-dependent sparse attention, on the CPU.

`hax.torch` makes hax's kernels usable from PyTorch: drop-in CPU versions of mamba_ssm's ops, HAX as a module, and
hax checkpoints as nn.Modules. The kernels live in the C library libhax_c.so (src/hax/capi/hax_c.h), found in the
repository's build/ folder or where the environment variable HAX_LIBRARY points.
"""
