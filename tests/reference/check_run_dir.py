#!/usr/bin/env python3
"""Loads a golf-train run directory's weights and Hessians with Python's safetensors/torch, checks
them against the config stored in the metadata, and prints a JSON summary.

usage: check_run_dir.py RUN_DIR
"""
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file


def main():
    run = sys.argv[1]
    out = {}
    for name in ("final_model", "ema_model", "hessians"):
        path = os.path.join(run, f"{name}.safetensors")
        tensors = load_file(path)
        with safe_open(path, "pt") as f:
            config = json.loads(f.metadata()["config"])
        assert all(torch.isfinite(t).all() for t in tensors.values()), f"{name}: non-finite values"
        out[name] = {"tensors": len(tensors), "elements": sum(t.numel() for t in tensors.values())}
        L, d = config["NUM_LAYERS"], config["MODEL_DIM"]
        if name == "hessians":
            for key, h in tensors.items():
                assert h.shape[0] == h.shape[1] and torch.allclose(h, h.T, atol=1e-5), f"{key}: not symmetric"
                assert torch.linalg.eigvalsh(h.double()).min() > -1e-6 * h.diagonal().max(), f"{key}: not PSD"
            assert len(tensors) == 6 * L + 1, len(tensors)
        else:
            assert tensors["qo_bank"].shape == (2 * L, d, d)
            assert tensors["tok_emb.weight"].shape == (config["VOCAB_SIZE"], d)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
