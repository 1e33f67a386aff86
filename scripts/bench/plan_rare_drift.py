#!/usr/bin/env python3
"""scripts/bench/plan_rare_drift.py — how far a run's never-seen embedding rows drift together.

  plan_rare_drift.py LABEL=RUN_DIR [...]     (the venv's python: numpy and safetensors)

Issue 16 §2, session 7: why Brotli's never-seen rows depend on the width. The rows of tokens a run's
training prefix never holds (counted as plan_embedding_rows.py does: the packing loader's order, the
steps from train.log) get only the tied head's shared softmax gradient, so Adam moves them by one
shared update: they drift together from their N(0, TIED_EMBED_INIT_STD²) start. For each run this
prints, from final_model.safetensors' tok_emb.weight: the drift (the never-seen rows' mean row, its
RMS over the columns), the noise (the rows' standard deviation about that mean) and drift / noise.
The larger the ratio, the more of those rows quantize to the same codes (whole repeated rows, which
Brotli's LZ matches need). Measured (session 7): 1.20 at 10 steps × 384 wide, 1.50 at 10 × 256,
3.11 at 23 × 256, 3.53 at 14 × 128, 2.26 at 35 × 512, 18.0 at 205 × 128.
"""
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plan_embedding_rows as per  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for spec in sys.argv[1:]:
        label, run_dir = spec.split("=")
        with open(os.path.join(run_dir, "config.json")) as f:
            cfg = json.load(f)
        steps = per.run_steps(run_dir)
        counts, _ = per.prefix_counts(cfg, steps)
        weights = load_file(os.path.join(run_dir, "final_model.safetensors"))
        if "tok_emb.weight" not in weights:
            sys.exit(f"{run_dir}/final_model.safetensors: no tok_emb.weight")
        w = weights["tok_emb.weight"].astype(np.float64)  # [vocab, dim]
        rare = w[counts == 0]                             # [never-seen rows, dim]
        if len(rare) < 2:
            print(f"{label}: {len(rare)} never-seen rows")
            continue
        drift = rare.mean(axis=0)                         # [dim]
        noise = (rare - drift).std()
        rms = float(np.sqrt((drift ** 2).mean()))
        print(f"{label}: {steps} steps, {w.shape[1]} wide, {len(rare):,} never-seen rows: drift {rms:.4f}, "
              f"noise {noise:.5f}, drift / noise {rms / noise:.2f}")


if __name__ == "__main__":
    main()
