#!/usr/bin/env python3
"""scripts/bench/plan_embedding_rows.py — embedding bits per code against training-prefix token counts.

  plan_embedding_rows.py LABEL=RUN_DIR=ARTIFACT [...] [--edges 0,1,2,4,16,64] [--json OUT.json]

Issue 16 §2: golf codes the tied embedding well below the Gaussian entropy H on briefly trained
runs. Hypothesis: rows of tokens the training prefix rarely or never holds get only the tied head's
shared softmax gradient, move together and nearly repeat after quantization. For each run this
  1. counts every token of the run's training prefix: the packing loader's order reproduced from
     train/loader.cpp (PackingSource): the train shards in sorted order, each read from its first
     BOS in spans of tokens_per_rank + 1 tokens (inputs and targets), cursor += world · span, a
     shard's tail that does not hold a whole global span dropped; steps · accum spans, steps read
     from the run's train.log ("stopping_early: step:N" or the last "step:N/" line). Checked
     (session 6, by a one-off program around train/loader.h's Loader): the histogram is identical
     to golf's own packing Loader's for 10, 14 and 35 steps of the bench shards; the planner's C++
     count (pack/plan_tokens.cpp) is tested against that Loader (PlanTokens tests) and gave the
     same rows seen ≥ 16 as this script on all four runs;
  2. runs golf-plan-rows on the run's artifact (its tok_emb.weight codes) with those counts: per count
     bucket, the rows' codes coded alone by golf's real coder and by Brotli (bits/code), their order-0 entropy
     and the share of near-repeat rows;
  3. prints the table (count bucket → rows, bits/code) beside H, the rounded-Gaussian entropy of
     the embedding's SDClip codes (pack/plan.cpp's model).
Only LOADER=packing runs on one process are reproduced (every run measured here); others are refused.
Environment: GOLF_BUILD_DIR (golf-plan-rows).
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plan_calibrate as pc  # noqa: E402

BOS = 1


def read_shard(path):
    import numpy as np  # only here: plan_table.py imports run_steps without numpy
    header = np.fromfile(path, dtype="<i4", count=256)
    if header[0] != 20240520 or header[1] != 1:
        sys.exit(f"{path}: not a shard (magic/version {header[0]}/{header[1]})")
    tokens = np.fromfile(path, dtype="<u2", offset=1024)
    if len(tokens) != header[2]:
        sys.exit(f"{path}: header says {header[2]} tokens, file holds {len(tokens)}")
    return tokens


def run_steps(run_dir):
    steps = None
    with open(os.path.join(run_dir, "train.log")) as f:
        for line in f:
            m = re.match(r"stopping_early: step:(\d+)", line) or re.match(r"step:(\d+)/", line)
            if m:
                steps = int(m.group(1))
    if steps is None:
        sys.exit(f"{run_dir}/train.log: no step lines")
    return steps


def prefix_counts(cfg, steps, world=1):
    """Token counts of the first `steps` optimizer steps of the packing loader (one process)."""
    import numpy as np
    if cfg.get("LOADER", "packing") != "packing":
        sys.exit(f"LOADER={cfg['LOADER']}: only the packing loader is reproduced")
    accum = cfg.get("GRAD_ACCUM_STEPS", 0) or 8 // world
    tokens_per_rank = cfg["TRAIN_BATCH_TOKENS"] // (world * accum)
    span = tokens_per_rank + 1
    shards = [read_shard(p) for p in sorted(glob.glob(os.path.join(cfg["DATA_PATH"], "fineweb_train_*.bin")))]
    first_bos = [int(np.argmax(s == BOS)) for s in shards]
    counts = np.zeros(cfg["VOCAB_SIZE"], dtype=np.int64)
    shard, cursor = 0, first_bos[0]
    for _ in range(steps * accum):
        if cursor + world * span > len(shards[shard]):
            shard = (shard + 1) % len(shards)
            cursor = first_bos[shard]
        counts += np.bincount(shards[shard][cursor:cursor + world * span], minlength=len(counts))
        cursor += world * span
    return counts, steps * accum * world * span


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="LABEL=RUN_DIR=ARTIFACT")
    p.add_argument("--edges", default="0,1,2,4,16,64")
    p.add_argument("--json")
    args = p.parse_args()
    tool = os.path.join(pc.build_dir(), "pack", "golf-plan-rows")
    results = []
    for spec in args.runs:
        label, run_dir, artifact = spec.split("=")
        with open(os.path.join(run_dir, "config.json")) as f:
            cfg = json.load(f)
        steps = run_steps(run_dir)
        counts, tokens = prefix_counts(cfg, steps)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(str(int(c)) for c in counts) + "\n")
            counts_path = f.name
        try:
            out = subprocess.run([tool, artifact, counts_path, "--edges", args.edges], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        finally:
            os.unlink(counts_path)
        if out.returncode != 0:
            sys.exit(out.stdout)
        r = json.loads(out.stdout)
        qmax = 2 ** (r["bits"] - 1) - 1
        r["gaussian_bits"] = pc.rounded_gaussian_bits(qmax / cfg["EMBED_CLIP_SIGMAS"], qmax)
        r.update({"label": label, "steps": steps, "prefix_tokens": tokens,
                  "distinct_tokens": int((counts > 0).sum()), "seen_rows": {str(t): int((counts >= t).sum())
                                                                          for t in (1, 2, 4, 16, 64)}})
        results.append(r)
        print(f"\n{label}: {steps} steps, {tokens:,} prefix tokens, {r['distinct_tokens']:,} of {len(counts):,} "
              f"tokens seen; whole tok_emb {r['matrix_golf_bytes']:,} golf bytes "
              f"= {8 * (r['matrix_golf_bytes'] - 1) / (r['rows'] * r['cols']):.3f} bits/code; brotli "
              f"{8 * r['matrix_brotli_bytes'] / (r['rows'] * r['cols']):.3f} bits/code; "
              f"H = {r['gaussian_bits']:.3f}")
        print("| count | rows | golf bits/code | − H | brotli bits/code | − H | order-0 bits | near-repeat rows |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for b in r["buckets"]:
            if not b["rows"]:
                continue
            rng = f"{b['lo']}+" if b["hi"] < 0 else (f"{b['lo']}" if b["hi"] == b["lo"] + 1 else f"{b['lo']}–{b['hi'] - 1}")
            print(f"| {rng} | {b['rows']:,} | {b['golf_bits_per_code']:.3f} | {b['golf_bits_per_code'] - r['gaussian_bits']:+.3f} "
                  f"| {b['brotli_bits_per_code']:.3f} | {b['brotli_bits_per_code'] - r['gaussian_bits']:+.3f} "
                  f"| {b['order0_bits_per_code']:.3f} | {100 * b['near_repeat_share']:.0f} % |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
