#!/usr/bin/env python3
"""The Python side of the safetensors tests: Hugging Face's own `safetensors` package, not golf code.

A SPEC is a JSON file describing a checkpoint by value:

    {"tensors": {"name": {"dtype": "BF16", "shape": [2, 2], "values": [0.5, -1.25, 3.0, 256.0]}, ...},
     "metadata": {"key": "value", ...}}

values are the elements in row-major order (numbers; true/false or 0/1 for BOOL).

usage:
  safetensors_check.py check FILE SPEC.json   load FILE with safetensors.torch.load_file and compare
                                              names, dtypes, shapes, values and metadata with SPEC;
                                              prints "ok" or every difference (exit 1)
  safetensors_check.py save SPEC.json FILE    build SPEC's tensors with torch and write FILE with
                                              safetensors.torch.save_file
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U16": torch.uint16, "U8": torch.uint8, "BOOL": torch.bool,
}


def as_python(values, dtype):
    """Plain Python numbers to compare exactly: floats as float64, integers as int, bools as bool."""
    if dtype == torch.bool:
        return [bool(v) for v in values]
    if dtype.is_floating_point:
        return [float(v) for v in values]
    return [int(v) for v in values]


def flat_values(t):
    if t.dtype == torch.bool:
        return t.flatten().tolist()
    if t.dtype.is_floating_point:
        return t.to(torch.float64).flatten().tolist()
    return t.to(torch.int64).flatten().tolist()


def check(path, spec_path):
    spec = json.load(open(spec_path))
    tensors = load_file(path)
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    problems = []
    if sorted(tensors) != sorted(spec["tensors"]):
        problems.append(f"names {sorted(tensors)} != expected {sorted(spec['tensors'])}")
    for name, want in spec["tensors"].items():
        if name not in tensors:
            continue
        t, dtype = tensors[name], DTYPES[want["dtype"]]
        if t.dtype != dtype:
            problems.append(f"{name}: dtype {t.dtype} != expected {dtype}")
        elif list(t.shape) != want["shape"]:
            problems.append(f"{name}: shape {list(t.shape)} != expected {want['shape']}")
        elif flat_values(t) != as_python(want["values"], dtype):
            problems.append(f"{name}: values {flat_values(t)} != expected {as_python(want['values'], dtype)}")
    if metadata != spec.get("metadata", {}):
        problems.append(f"metadata {metadata} != expected {spec.get('metadata', {})}")
    print("\n".join(problems) if problems else "ok")
    return 1 if problems else 0


def save(spec_path, path):
    spec = json.load(open(spec_path))
    tensors = {}
    for name, want in spec["tensors"].items():
        dtype = DTYPES[want["dtype"]]
        tensors[name] = torch.tensor(as_python(want["values"], dtype), dtype=dtype).reshape(want["shape"])
    save_file(tensors, path, metadata=spec.get("metadata") or None)
    return 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "check":
        return check(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 4 and sys.argv[1] == "save":
        return save(sys.argv[2], sys.argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
