#!/usr/bin/env python3
"""scripts/bench/lqer_sizes.py — artifact bytes and quantization error with and without LQER, for
each compressor, on the same trained weights of a full-size 11 × 512 model (the frontier_0427 stack).

  lqer_sizes.py --run RUN_DIR [--val] [--val-tokens 4096] [--compressors brotli,golf,pergroup]
                [--pack-set KEY=VALUE]... [--work DIR] [--keep] [--json OUT.json] [--build-dir build]
  lqer_sizes.py [--steps 4] [--tokens 2048] [--ema-decay D] ...      (trains its own run first)

Weights:
  --run RUN_DIR  an existing golf-train run (config.json, ema_model.safetensors,
                 hessians.safetensors), e.g. the CPU-trained frontier_0427 run of the bench. It is
                 only read: golf-pack writes its artifacts and reports into the work folder (the
                 script checks that the run directory is unchanged afterwards).
  otherwise      Tiny Shakespeare (../shared/data) with the challenge's 8192-piece tokenizer (90/10
                 split) → golf-train --config train/configs/frontier_0427.json at full size on
                 CPU, --steps optimizer steps of --tokens tokens (256-token segments), then the
                 calibration Hessians (2 batches).

Then golf-pack of that one run for each compressor (COMPRESSOR=brotli, golf, pergroup: pergroup, the
slowest, last) × LQER setting (LQER_ENABLED=0, 1; the run's other LQER_* settings), ARTIFACT_BUDGET lifted (a benchmark,
not a submission). Reported per row: artifact bytes (model, and total with counted code), golf-pack's
wall seconds (GPTQ + LQER, and the compressor alone), the relative quantization error
sqrt(Σ‖W − Ŵ‖²_F / Σ‖W‖²_F) over all GPTQ matrices (Ŵ with the LQER correction where present), the
corrected tensors' ‖W − Ŵ‖_F before → after, and with --val the pre- and post-quantization val bpb
on the first --val-tokens val tokens of the run's DATA_PATH.

The compressors are lossless (every compressor decodes to the same tensors:
tests/pack/golf_pack_cli_test.cpp EveryCompressorWritesTheSameTensors…), so the quantization error
and the post-quantization bpb depend only on the LQER setting: --val is run once per LQER setting,
on its first compressor, and shown for the others as "same".
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
# The GPTQ'd weights of a golf model: every bank matrix and the tied embedding.
GPTQ_WEIGHTS = ("qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank", "tok_emb.weight")


def die(msg):
    sys.exit(f"lqer_sizes.py: error: {msg}")


def sh(cmd, log):
    t0 = time.monotonic()
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        die(f"{' '.join(cmd[:2])} failed (exit {r.returncode}); log {log}:\n{tail}")
    return time.monotonic() - t0


def write_json_atomic(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def snapshot(folder):
    """name → (size, mtime_ns) of every file under folder: to prove the run directory untouched."""
    out = {}
    for base, _, files in os.walk(folder):
        for name in files:
            p = os.path.join(base, name)
            st = os.stat(p)
            out[os.path.relpath(p, folder)] = (st.st_size, st.st_mtime_ns)
    return out


def training_of(run):
    """One line on the training the weights come from: the run's last 'step:' line of train.log."""
    log = os.path.join(run, "train.log")
    with open(os.path.join(run, "config.json")) as f:
        cfg = json.load(f)
    last = None
    if os.path.exists(log):
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("step:") and "train_loss:" in line:
                    last = line.strip()
    shape = f"{cfg.get('NUM_LAYERS')} × {cfg.get('MODEL_DIM')}, vocab {cfg.get('VOCAB_SIZE')}"
    how = (f"TRAIN_BATCH_TOKENS={cfg.get('TRAIN_BATCH_TOKENS')} TRAIN_SEQ_LEN={cfg.get('TRAIN_SEQ_LEN')} "
           f"EMA_DECAY={cfg.get('EMA_DECAY')} DEVICE={cfg.get('DEVICE')}")
    if last is None:
        return f"{shape}; {how}; no step line in {log}"
    m = re.match(r"step:(\d+)/\d+ train_loss:(\S+) train_time:(\d+)ms", last)
    if not m:
        return f"{shape}; {how}; last log line: {last}"
    steps, loss, ms = int(m.group(1)), m.group(2), int(m.group(3))
    tokens = steps * int(cfg.get("TRAIN_BATCH_TOKENS", 0))
    return (f"{shape}; {steps} steps ({tokens:,} tokens) in {ms / 1000:.0f} s, last logged train_loss {loss}; {how}")


def relative_error(rep, weights):
    """sqrt(Σ‖W − Ŵ‖² / Σ‖W‖²) over the GPTQ matrices of a golf-pack report (Ŵ with LQER where present)."""
    err2, params = 0.0, 0
    corrected = []
    for t in rep["tensors"]:
        if t["bits"] == 16 or t.get("frob_error", 0) == 0:
            continue  # fp16 passthrough, and the int8 QuantGate gates (not GPTQ: no error reported)
        e = t["lqer_frob_error"] if t.get("lqer") else t["frob_error"]
        err2 += e * e
        params += t["params"]
        if t.get("lqer"):
            corrected.append({"name": t["name"], "before": t["frob_error"], "after": t["lqer_frob_error"]})
    present = [n for n in GPTQ_WEIGHTS if n in weights]
    norm2 = sum(float(weights[n].double().pow(2).sum()) for n in present)
    numel = sum(weights[n].numel() for n in present)
    if params != numel:  # the report's GPTQ matrices must be exactly these weights
        die(f"the report's GPTQ matrices hold {params:,} values, {', '.join(present)} hold {numel:,}")
    return math.sqrt(err2 / norm2), corrected


def make_run(a, work, b):
    """Train the full-size model briefly on Tiny Shakespeare; returns (run dir, training seconds)."""
    data_bin, train_bin = (os.path.join(b, d, f"golf-{d}") for d in ("data", "train"))
    tok = os.path.join(SHARED, "tokenizers", "fineweb_8192_bpe.model")
    text = os.path.join(SHARED, "data", "tinyshakespeare.txt")
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
    if os.path.exists(os.path.join(run, "hessians.safetensors")):
        return run, 0.0
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
    return run, sh(cmd, os.path.join(work, "train.log"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="an existing golf-train run directory to pack (read only); default: train one")
    ap.add_argument("--steps", type=int, default=4, help="without --run: optimizer steps")
    ap.add_argument("--tokens", type=int, default=2048, help="without --run: tokens per training step")
    ap.add_argument("--ema-decay", type=float, help="without --run: EMA_DECAY (default: the config's 0.9965, which "
                    "after a few steps leaves the packed EMA weights close to the init; 0 packs the trained weights)")
    ap.add_argument("--val", action="store_true", help="also measure val bpb before/after quantization")
    ap.add_argument("--val-tokens", type=int, help="VAL_MAX_TOKENS for --val (default: the run's)")
    ap.add_argument("--work", help="work folder (default: a temporary one, removed unless --keep)")
    ap.add_argument("--build-dir", default=os.environ.get("GOLF_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--compressors", default="brotli,golf,pergroup",
                    help="comma-separated, packed in this order (rows: each compressor with each LQER setting)")
    ap.add_argument("--lqer", default="0,1", help="LQER_ENABLED settings to pack, comma-separated")
    ap.add_argument("--pack-set", action="append", default=[], metavar="KEY=VALUE",
                    help="another golf-pack setting for every row (repeatable), e.g. PASSTHROUGH_MAX_NUMEL=4096")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", help="also write the rows as JSON here (rewritten after every row)")
    a = ap.parse_args()
    compressors = [c for c in a.compressors.split(",") if c]
    lqer_settings = [int(x) for x in a.lqer.split(",") if x]
    if a.run:
        for f in ("config.json", "ema_model.safetensors", "hessians.safetensors"):
            if not os.path.exists(os.path.join(a.run, f)):
                die(f"--run {a.run}: no {f} (a finished golf-train run has config.json, ema_model.safetensors "
                    "and hessians.safetensors)")
    work = a.work or tempfile.mkdtemp(prefix="lqer-sizes-")
    os.makedirs(work, exist_ok=True)
    b = a.build_dir
    pack_bin = os.path.join(b, "pack", "golf-pack")
    if not os.access(pack_bin, os.X_OK):
        die(f"no {pack_bin}: build golf-pack (cmake --build {b} --target golf-pack) or pass --build-dir")
    try:
        if a.run:
            run, train_s = os.path.abspath(a.run), None
        else:
            run, train_s = make_run(a, work, b)
        before = snapshot(run)
        source = training_of(run) + (f" (trained here in {train_s:.0f} s)" if train_s else "")

        import torch  # noqa: E402,F401  (the pinned venv's; only to read the weights)
        from safetensors.torch import load_file  # noqa: E402
        weights = load_file(os.path.join(run, "ema_model.safetensors"))

        print(f"# weights: {run}\n#   {source}\n# work {work}", flush=True)
        header = (f"{'LQER':>4} {'compressor':<10} {'model bytes':>12} {'total bytes':>12} {'rel ‖W−Ŵ‖':>10} "
                  f"{'pre bpb':>8} {'quant bpb':>9} {'gap':>8} {'quant s':>7} {'comp s':>7} {'pack s':>7}")
        print(header, flush=True)
        rows = []
        measured = {}  # LQER setting → its --val figures, measured with the first compressor
        for comp in compressors:  # compressor-major: the slow pergroup rows can go last
            for lqer in lqer_settings:
                out = os.path.join(work, f"lqer{lqer}_{comp}.golf")
                cmd = [pack_bin, run, "--out", out, "--set", f"LQER_ENABLED={lqer}", "--set", f"COMPRESSOR={comp}",
                       "--set", "ARTIFACT_BUDGET=1000000000"]
                for kv in a.pack_set:
                    cmd += ["--set", kv]
                with_val = a.val and lqer not in measured
                if with_val:
                    cmd += ["--val"] + (["--set", f"VAL_MAX_TOKENS={a.val_tokens}"] if a.val_tokens else [])
                secs = sh(cmd, out + ".log")
                with open(out + ".json") as f:
                    rep = json.load(f)
                if os.path.getsize(out) != rep["bytes_model"]:
                    die(f"{out} has {os.path.getsize(out):,} bytes, its report says {rep['bytes_model']:,}")
                rel, corrected = relative_error(rep, weights)
                row = {"lqer": lqer, "compressor": comp, "bytes_model": rep["bytes_model"],
                       "bytes_total": rep["bytes_total"], "rel_error": rel, "corrected": corrected,
                       "quantize_seconds": round(rep["quantize_seconds"], 1),
                       "compress_seconds": round(rep["compress_seconds"], 1), "pack_seconds": round(secs, 1)}
                if with_val:
                    measured[lqer] = {"pre_bpb": rep["pre_quant"]["val_bpb"], "post_bpb": rep["quantized"]["val_bpb"],
                                      "measured_on": comp}
                row.update(measured.get(lqer, {}))
                rows.append(row)
                bpb = (f"{row['pre_bpb']:>8.5f} {row['post_bpb']:>9.5f} {row['post_bpb'] - row['pre_bpb']:>+8.5f}"
                       if with_val else f"{'same' if lqer in measured else '-':>8} {'same' if lqer in measured else '-':>9} {'':>8}")
                print(f"{lqer:>4} {comp:<10} {row['bytes_model']:>12,} {row['bytes_total']:>12,} {rel:>10.5f} {bpb} "
                      f"{row['quantize_seconds']:>7} {row['compress_seconds']:>7} {row['pack_seconds']:>7}", flush=True)
                if a.json:
                    write_json_atomic(a.json, {"weights": run, "training": source, "rows": rows})
        for r in rows:
            if r["corrected"] and r["compressor"] == compressors[0]:  # (the same for every compressor)
                print("LQER corrected (‖W − Ŵ‖_F before → after): " +
                      "; ".join(f"{c['name']} {c['before']:.4f}→{c['after']:.4f}" for c in r["corrected"]))
        by = {(r["lqer"], r["compressor"]): r["bytes_model"] for r in rows}
        for comp in compressors:
            if (0, comp) in by and (1, comp) in by:
                print(f"LQER costs {by[(1, comp)] - by[(0, comp)]:+,} bytes with {comp}")
        if snapshot(run) != before:
            die(f"the run directory {run} changed while packing")
    finally:
        if not a.keep and not a.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
