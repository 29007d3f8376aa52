"""ctypes bindings of libhax_c.so (src/hax/capi/hax_c.h). Loaded once, on first use."""
import ctypes
import os
from pathlib import Path

ABI_VERSION = 3

_ptr = ctypes.c_void_p
_int = ctypes.c_int


class ScanArgs(ctypes.Structure):
    _fields_ = [("batch", _int), ("dim", _int), ("seq_len", _int), ("dstate", _int), ("groups", _int),
                ("delta_softplus", _int),
                ("u", _ptr), ("delta", _ptr), ("A", _ptr), ("B", _ptr), ("C", _ptr), ("D", _ptr), ("z", _ptr),
                ("delta_bias", _ptr)]


class SsdArgs(ctypes.Structure):
    _fields_ = [("batch", _int), ("seq_len", _int), ("heads", _int), ("head_dim", _int), ("groups", _int),
                ("dstate", _int), ("chunk_size", _int), ("dt_softplus", _int),
                ("x", _ptr), ("dt", _ptr), ("A", _ptr), ("B", _ptr), ("C", _ptr), ("D", _ptr), ("dt_bias", _ptr),
                ("initial_state", _ptr)]


class SparseArgs(ctypes.Structure):
    _fields_ = [("batch", _int), ("seq_len", _int), ("qk_dim", _int), ("v_dim", _int),
                ("sparse_arch", ctypes.c_char_p), ("total_keys", _int), ("max_length", _int), ("semantics", _int),
                ("q", _ptr), ("k", _ptr), ("v", _ptr), ("key_scores", _ptr), ("lsh_projection", _ptr),
                ("num_hash", _int)]


class BranchArgs(ctypes.Structure):
    _fields_ = [("batch", _int), ("seq_len", _int), ("channels", _int), ("state", _int),
                ("sparse_arch", ctypes.c_char_p), ("total_keys", _int), ("max_length", _int), ("num_hash", _int),
                ("semantics", _int), ("lsh_running_statistics", _int), ("ks_running_normalization", _int),
                ("xx_proj", _ptr), ("scorer", _ptr * 6), ("lsh_projection", _ptr), ("lsh_resample", ctypes.c_char_p),
                ("paper_without", ctypes.c_char_p)]


_SIGNATURES = {
    "hax_abi_version": (_int, []),
    "hax_last_error": (ctypes.c_char_p, []),
    "hax_set_num_threads": (None, [_int]),
    "hax_get_num_threads": (_int, []),
    "hax_selective_scan_saved_floats": (ctypes.c_size_t, [ctypes.POINTER(ScanArgs)]),
    "hax_selective_scan_forward": (_int, [ctypes.POINTER(ScanArgs), _ptr, _ptr, _ptr]),
    "hax_selective_scan_backward": (_int, [ctypes.POINTER(ScanArgs)] + [_ptr] * 11),
    "hax_causal_conv1d_forward": (_int, [_int] * 4 + [_ptr] * 4),
    "hax_causal_conv1d_backward": (_int, [_int] * 4 + [_ptr] * 6),
    "hax_ssd_saved_floats": (ctypes.c_size_t, [ctypes.POINTER(SsdArgs)]),
    "hax_ssd_forward": (_int, [ctypes.POINTER(SsdArgs), _ptr, _ptr, _ptr]),
    "hax_ssd_backward": (_int, [ctypes.POINTER(SsdArgs)] + [_ptr] * 11),
    "hax_sparse_attention_forward": (_int, [ctypes.POINTER(SparseArgs), _ptr, ctypes.POINTER(_ptr)]),
    "hax_sparse_attention_backward": (_int, [ctypes.POINTER(SparseArgs), _ptr, _ptr, _ptr, _ptr, _ptr]),
    "hax_context_pairs": (ctypes.c_int64, [_ptr]),
    "hax_branch_forward": (_int, [ctypes.POINTER(BranchArgs), _ptr, _int, ctypes.c_uint64, _ptr,
                                  ctypes.POINTER(ctypes.c_double), ctypes.POINTER(_ptr)]),
    "hax_branch_backward": (_int, [_ptr, _ptr, ctypes.c_float, _ptr, _ptr, _ptr * 6]),
    "hax_context_free": (None, [_ptr]),
    "hax_model_config_json": (ctypes.c_int64, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]),
}

_library = None


def library_path():
    """Where libhax_c.so is looked for: $HAX_LIBRARY, else the build/ folder of the repository holding this package."""
    explicit = os.environ.get("HAX_LIBRARY")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parents[2] / "build" / "libhax_c.so"


def lib():
    """The loaded library, with argument and result types set. ImportError (with what to do) if it is missing."""
    global _library
    if _library is None:
        path = library_path()
        if not path.is_file():
            raise ImportError(f"hax: the C library {path} does not exist: build it (scripts/build.sh, target hax_c) "
                              "or point HAX_LIBRARY at libhax_c.so")
        loaded = ctypes.CDLL(str(path))
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(loaded, name)
            function.restype, function.argtypes = restype, argtypes
        version = loaded.hax_abi_version()
        if version != ABI_VERSION:
            raise ImportError(f"hax: {path} has C ABI version {version}, this package needs {ABI_VERSION}: rebuild it")
        _library = loaded
    return _library


def call(name, *args):
    """Calls a hax_* function that returns a status; a failure raises ValueError with the library's message."""
    if getattr(lib(), name)(*args) != 0:
        raise ValueError(lib().hax_last_error().decode())


def model_config(path):
    """config.json at path, read and checked by hax's own reader, with every default filled in (a dict). A refusal
    raises ValueError with hax's message, which names the file and the key."""
    import json
    encoded = str(path).encode()
    length = lib().hax_model_config_json(encoded, None, 0)
    if length < 0:
        raise ValueError(lib().hax_last_error().decode())
    text = ctypes.create_string_buffer(length + 1)
    if lib().hax_model_config_json(encoded, text, length + 1) != length:
        raise ValueError(lib().hax_last_error().decode() or f"{path}: the config changed while being read")
    return json.loads(text.value.decode())


class Context:
    """Owns a hax_context* (what a forward keeps for its backward); freed with the Python object."""

    def __init__(self):
        self.handle = _ptr()

    def __del__(self):
        if self.handle and _library is not None:
            _library.hax_context_free(self.handle)
            self.handle = _ptr()
