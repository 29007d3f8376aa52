"""Argument checks and conversions shared by the ops: every error names the argument and what was expected."""
import torch

FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_tensor(t, name, ndim=None, shape=None, optional=False):
    """t must be a CPU floating-point tensor with `ndim` dimensions and, where `shape` gives a size (not None), that
    size. Returns t unchanged (None passes when optional)."""
    if t is None:
        if optional:
            return None
        raise ValueError(f"{name} is required, got None")
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on {t.device}: hax's ops run on the CPU (move it with .cpu())")
    if t.dtype not in FLOATING:
        raise TypeError(f"{name} must be a floating-point tensor (float32, float64, float16 or bfloat16), got {t.dtype}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {describe(shape)}, got shape {tuple(t.shape)}")
    if shape is not None:
        for axis, want in enumerate(shape):
            if want is not None and t.shape[axis] != want:
                raise ValueError(f"{name} must have shape {describe(shape)}, got {tuple(t.shape)} (size {t.shape[axis]} "
                                 f"at dimension {axis}, expected {want})")
    return t


def describe(shape):
    if shape is None:
        return ""
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"


def f32(t):
    """The float32, contiguous version of t (t itself when it already is), detached: the kernels' input."""
    if t is None:
        return None
    return t.detach().to(torch.float32).contiguous()


def ptr(t):
    """The address of a contiguous float32 tensor, or None. Never ptr(f32(x)) in a call's arguments: the temporary
    f32(x) may be freed before the call runs; keep it in a name first."""
    return None if t is None else t.data_ptr()


def spec(t):
    """What a backward needs to remember of an input: its dtype and shape (None for an absent input)."""
    return None if t is None else (t.dtype, t.shape)


def like(grad, input_spec):
    """A float32 gradient back in the dtype and shape of the input it belongs to (spec(input)); None when there is
    no such input."""
    if input_spec is None or grad is None:
        return None
    dtype, shape = input_spec
    return grad.to(dtype).reshape(shape)
