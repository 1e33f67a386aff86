#!/usr/bin/env python3
"""scripts/bench/lqer_sizes.py — artifact bytes and quantization error with and without LQER, on
the same trained weights of a full-size 11 × 512 model (the frontier_0427 stack, briefly trained).

  lqer_sizes.py [--steps 4] [--tokens 2048] [--val] [--work DIR] [--build-dir build]
                [--compressors brotli[,pergroup]] [--keep] [--json OUT.json]

1. Shards: Tiny Shakespeare (../shared/data) with the challenge's 8192-piece tokenizer, 90/10 split.
2. golf-train --config train/configs/frontier_0427.json, full size (11 × 512, vocab 8192), on CPU,
   --steps optimizer steps of --tokens tokens (256-token segments), then the calibration Hessians
   (2 batches).
3. golf-pack of that one run for each LQER setting × compressor, ARTIFACT_BUDGET lifted (a
   benchmark, not a submission); with --val also the pre- and post-quant val bpb on the first
   4,096 val tokens.
Reported per row: artifact bytes (model and total with counted code), the relative quantization
error sqrt(Σ‖W − Ŵ‖²_F / Σ‖W‖²_F) over all GPTQ matrices (Ŵ with the LQER correction where
present), the three corrected tensors' ‖W − Ŵ‖_F before → after, and (--val) the val bpb gap.

Column hook for per-group compression: --compressors takes a comma-separated list; "brotli" is
golf-pack's current single stream (no setting passed); any other name is passed as
--set COMPRESSOR=<name> (the per-group coder adds that setting), so the table grows one row per
compressor and LQER setting without changing this script.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")


def sh(cmd, log):
    t0 = time.monotonic()
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        sys.exit(f"lqer_sizes.py: {' '.join(cmd[:2])} failed (exit {r.returncode}); log {log}:\n{tail}")
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=2048, help="tokens per training step")
    ap.add_argument("--val", action="store_true", help="also measure val bpb before/after quantization")
    ap.add_argument("--ema-decay", type=float, help="EMA_DECAY (default: the config's 0.9965, which after a few "
                    "steps leaves the packed EMA weights close to the init; 0 packs the raw trained weights)")
    ap.add_argument("--work", help="work folder (default: a temporary one, removed unless --keep)")
    ap.add_argument("--build-dir", default=os.environ.get("GOLF_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--compressors", default="brotli")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", help="also write the rows as JSON here")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="lqer-sizes-")
    os.makedirs(work, exist_ok=True)
    b = a.build_dir
    data_bin, train_bin, pack_bin = (os.path.join(b, d, f"golf-{d}") for d in ("data", "train", "pack"))
    tok = os.path.join(SHARED, "tokenizers", "fineweb_8192_bpe.model")
    text = os.path.join(SHARED, "data", "tinyshakespeare.txt")
    try:
        data = os.path.join(work, "data")
        if not os.path.isdir(data):
            with open(text, encoding="utf-8") as f:
                t = f.read()
            cut = len(t) * 9 // 10
            for name, part in (("train.txt", t[:cut]), ("val.txt", t[cut:])):
                with open(os.path.join(work, name), "w", encoding="utf-8") as f:
                    f.write(part)
            for split in ("train", "val"):
                sh([data_bin, "shards", "--input", os.path.join(work, f"{split}.txt"), "--tokenizer", tok,
                    "--out", data, "--split", split], os.path.join(work, f"shards_{split}.log"))
        run = os.path.join(work, "runs", "full")
        train_s = 0.0
        if not os.path.exists(os.path.join(run, "hessians.safetensors")):
            sets = {"DATA_PATH": data, "TOKENIZER_PATH": tok, "OUTPUT_DIR": os.path.join(work, "runs"), "RUN_ID": "full",
                    "DEVICE": "cpu", "MAX_WALLCLOCK_SECONDS": 0, "ITERATIONS": a.steps, "WARMUP_STEPS": 0,
                    "TRAIN_SEQ_LEN": 256, "TRAIN_BATCH_TOKENS": a.tokens, "GRAD_ACCUM_STEPS": 1, "VAL_LOSS_EVERY": 0,
                    "VAL_MAX_TOKENS": 4096, "VAL_BATCH_TOKENS": 4096, "CHECKPOINT_EVERY": 0,
                    "GPTQ_CALIBRATION_BATCHES": 2, "TRAIN_LOG_EVERY": 1}
            if a.ema_decay is not None:
                sets["EMA_DECAY"] = a.ema_decay
            cmd = [train_bin, "--config", os.path.join(ROOT, "train", "configs", "frontier_0427.json")]
            for k, v in sets.items():
                cmd += ["--set", f"{k}={v}"]
            train_s = sh(cmd, os.path.join(work, "train.log"))

        import torch  # noqa: E402  (the pinned venv's; only to read the weights)
        from safetensors.torch import load_file  # noqa: E402
        weights = load_file(os.path.join(run, "ema_model.safetensors"))

        rows = []
        for lqer in (0, 1):
            for comp in a.compressors.split(","):
                out = os.path.join(work, f"lqer{lqer}_{comp}.golf")
                cmd = [pack_bin, run, "--out", out, "--set", f"LQER_ENABLED={lqer}",
                       "--set", "ARTIFACT_BUDGET=1000000000"] + (["--val"] if a.val else [])
                if comp != "brotli":
                    cmd += ["--set", f"COMPRESSOR={comp}"]
                secs = sh(cmd, out + ".log")
                with open(out + ".json") as f:
                    rep = json.load(f)
                err2 = norm2 = 0.0
                corrected = []
                for t in rep["tensors"]:
                    if t["bits"] == 16 or t.get("frob_error", 0) == 0:
                        continue
                    e = t["lqer_frob_error"] if t.get("lqer") else t["frob_error"]
                    err2 += e * e
                    if t.get("lqer"):
                        corrected.append(f"{t['name']} {t['frob_error']:.4f}→{t['lqer_frob_error']:.4f}")
                # ‖W‖² of the same matrices, from the banks (every bank matrix and tok_emb are GPTQ'd here).
                for name in ("qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank", "tok_emb.weight"):
                    norm2 += float(weights[name].double().pow(2).sum())
                rows.append({"lqer": lqer, "compressor": comp, "bytes_model": rep["bytes_model"],
                             "bytes_total": rep["bytes_total"], "rel_error": math.sqrt(err2 / norm2),
                             "pre_bpb": rep.get("pre_quant", {}).get("val_bpb", math.nan),
                             "post_bpb": rep.get("quantized", {}).get("val_bpb", math.nan),
                             "corrected": corrected, "pack_seconds": round(secs, 1)})
        print(f"# 11 × 512 frontier_0427 model, {a.steps} CPU training steps of {a.tokens} tokens "
              f"({train_s:.0f} s), work {work}")
        print(f"{'LQER':>4} {'compressor':<10} {'model bytes':>12} {'total bytes':>12} {'rel ‖W−Ŵ‖':>10} "
              f"{'pre bpb':>8} {'quant bpb':>9} {'gap':>8} {'pack s':>7}")
        for r in rows:
            print(f"{r['lqer']:>4} {r['compressor']:<10} {r['bytes_model']:>12,} {r['bytes_total']:>12,} "
                  f"{r['rel_error']:>10.5f} {r['pre_bpb']:>8.4f} {r['post_bpb']:>9.4f} "
                  f"{r['post_bpb'] - r['pre_bpb']:>+8.4f} {r['pack_seconds']:>7}")
        for r in rows:
            if r["corrected"]:
                print(f"LQER ({r['compressor']}) corrected: " + "; ".join(r["corrected"]))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(rows, f, indent=2)
    finally:
        if not a.keep and not a.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
