#!/usr/bin/python3
"""Interop oracle for hax's tensor files (tests/tensor_io). It shares no code with hax: safetensors files are parsed
and written here with json + numpy (the `safetensors` package is not needed), bf16 comes from PyTorch.

usage:
  safetensors_check.py safetensors IN OUT
      Checks IN strictly (header, dtypes, offsets tiling the data buffer), prints a JSON summary of it on stdout
      ({"metadata": {...}, "tensors": {name: {"dtype", "shape", "sum"}}}), and writes OUT with, for every F32
      tensor NAME of IN: NAME = 2 * x + 1 (F32), NAME.bf16 = x rounded by torch to bfloat16 (BF16) and
      NAME.f16 = x rounded by numpy to float16 (F16); metadata {"writer": "safetensors_check.py"}.
  safetensors_check.py npy IN OUT
      Loads IN with numpy.load, prints {"dtype", "shape", "sum"} on stdout, and saves OUT with numpy.save:
      2 * x + 1 for float32, 3 * x for int32 (dtype kept).
Exits with status 77 (and a message) when numpy, or torch for the safetensors mode, is not installed: the tests skip.
"""
import json
import struct
import sys

MISSING_MODULE = 77
try:
    import numpy as np
except ImportError:
    sys.exit(MISSING_MODULE)

ELEMENT_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                 "BOOL": 1}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    assert 8 + header_len <= len(blob), "header length past the end of the file"
    assert (8 + header_len) % 8 == 0, "data buffer not 8-byte aligned"
    header = json.loads(blob[8:8 + header_len])
    data = blob[8 + header_len:]
    metadata = header.pop("__metadata__", {})
    covered = 0
    tensors = {}
    for name, meta in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        begin, end = meta["data_offsets"]
        assert begin == covered, f"{name}: data does not start where the previous tensor ended"
        count = int(np.prod(meta["shape"], dtype=np.int64))
        assert end - begin == count * ELEMENT_BYTES[meta["dtype"]], f"{name}: shape and offsets disagree"
        covered = end
        if meta["dtype"] == "F32":
            tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(meta["shape"])
    assert covered == len(data), "data buffer not covered exactly"
    return header, metadata, tensors


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, dtype, shape, raw little-endian bytes)."""
    header, offset = {"__metadata__": metadata}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, raw in tensors:
            f.write(raw)


def check_safetensors(path_in, path_out):
    try:
        import torch
    except ImportError:
        sys.exit(MISSING_MODULE)
    header, metadata, tensors = read_safetensors(path_in)
    summary = {"metadata": metadata, "tensors": {}}
    for name, meta in header.items():
        value = tensors.get(name)
        summary["tensors"][name] = {"dtype": meta["dtype"], "shape": meta["shape"],
                                    "sum": None if value is None else float(value.astype(np.float64).sum())}
    print(json.dumps(summary, sort_keys=True))
    out = []
    for name, x in tensors.items():
        doubled = (x * np.float32(2) + np.float32(1)).astype("<f4")
        bf16 = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().astype("<i2")
        out.append((name, "F32", x.shape, doubled.tobytes()))
        out.append((name + ".bf16", "BF16", x.shape, bf16.tobytes()))
        out.append((name + ".f16", "F16", x.shape, x.astype("<f2").tobytes()))
    write_safetensors(path_out, out, {"writer": "safetensors_check.py"})


def check_npy(path_in, path_out):
    x = np.load(path_in)
    print(json.dumps({"dtype": x.dtype.str, "shape": list(x.shape), "sum": float(x.astype(np.float64).sum())}))
    if x.dtype == np.float32:
        np.save(path_out, (x * np.float32(2) + np.float32(1)).astype(np.float32))
    elif x.dtype == np.int32:
        np.save(path_out, (x * np.int32(3)).astype(np.int32))
    else:
        sys.exit(f"unexpected dtype {x.dtype}")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("safetensors", "npy"):
        sys.exit(__doc__)
    (check_safetensors if sys.argv[1] == "safetensors" else check_npy)(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
