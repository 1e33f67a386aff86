#!/usr/bin/env python3
"""scripts/bench/plan_calibrate.py — calibrate golf-pack plan's size model on real packed runs.

  plan_calibrate.py measure RUN_DIR --label L [--grid N] [--compressors brotli,golf] [--work DIR]
                           [--total-only C1,C2]
      Packs RUN_DIR (golf-pack, GPTQ with the run's Hessians) under the first N settings of GRID,
      then measures each artifact under every compressor (golf-pack plan --measure: each part's
      bytes by ablation through the real serializer; for the compressors in --total-only only the
      artifact's bytes, which enter the fit's code line but not its small parts) and appends one
      JSON line per (setting, compressor) to scripts/bench/plan_calibration.jsonl.
      The data in the repo: 4x128 --grid 3 and 6x256 --grid 1 (ablation, brotli and golf), 11x512
      (the lead's run) and 8x384 --grid 1 --total-only brotli,golf.
  plan_calibrate.py fit [--exclude LABEL] [--print]
      (the shipped pack/plan_calibration.h is `fit --exclude 8x384`: 8x384 is the held-out run)
      Fits the size model of every compressor in the data by least squares and writes
      pack/plan_calibration.h (with --exclude: leaves that run out; with --print: prints the
      coefficients as JSON instead of writing the header).

The model (pack/plan.h): GPTQ codes cost a + b·x bits each, x = log2(qmax / k); scales, fp16 values,
LQER codes and the table cost a fitted number of bytes per unit. a, b: weighted least squares of the
mean bits per code of each artifact on its code-weighted mean x (weights: its code count, so large
models count most); the others: ratio of sums over all artifacts.
Environment: GOLF_BUILD_DIR (default ROOT/build).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "scripts", "bench", "plan_calibration.jsonl")
HEADER = os.path.join(ROOT, "pack", "plan_calibration.h")

# Settings that move x = log2(qmax / k) for the matrices and the embedding in different directions.
GRID = [
    [],  # the run's own settings
    ["MATRIX_BITS=5", "EMBED_BITS=6"],
    ["ATTN_CLIP_SIGMAS=19.5", "MLP_CLIP_SIGMAS=17.25", "EMBED_CLIP_SIGMAS=21"],
    ["MATRIX_BITS=7", "EMBED_BITS=8"],
    ["ATTN_CLIP_SIGMAS=9.75", "MLP_CLIP_SIGMAS=8.625", "EMBED_CLIP_SIGMAS=10.5"],
]


def build_dir():
    return os.environ.get("GOLF_BUILD_DIR", os.path.join(ROOT, "build"))


def sets_args(sets):
    return [a for s in sets for a in ("--set", s)]


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit(f"plan_calibrate: {' '.join(cmd)} failed:\n{r.stdout[-3000:]}")
    return r.stdout


def measure(args):
    golf_pack = os.path.join(build_dir(), "pack", "golf-pack")
    config = os.path.join(args.run_dir, "config.json")
    work = args.work or tempfile.mkdtemp(prefix="plan-calibrate-")
    os.makedirs(work, exist_ok=True)
    for i, sets in enumerate(GRID[: args.grid]):
        # Pack once (COMPRESSOR=golf is the quick one; the budget is lifted so wide settings pack).
        artifact = os.path.join(work, f"{args.label}-g{i}.golf")
        if not os.path.exists(artifact):  # golf-pack writes it atomically: present means complete
            run([golf_pack, args.run_dir, "--out", artifact, "--set", "COMPRESSOR=golf",
                 "--set", "ARTIFACT_BUDGET=1000000000"] + sets_args(sets))
        for compressor in args.compressors.split(","):
            out = os.path.join(work, f"{args.label}-g{i}-{compressor}.json")
            total_only = ["--total-only"] if compressor in args.total_only.split(",") else []
            run([golf_pack, "plan", "--measure", artifact, "--config", config, "--json", out,
                 "--set", f"COMPRESSOR={compressor}"] + total_only + sets_args(sets))
            with open(out) as f:
                m = json.load(f)
            m.update({"label": args.label, "run": args.run_dir, "sets": sets})
            with open(DATA, "a") as f:  # one line per measurement, kept if a later one fails
                f.write(json.dumps(m, sort_keys=True) + "\n")
            print(f"{args.label} g{i} {compressor}: {m['measured']['file_bytes']:,} bytes", flush=True)


def code_spread(bits, clip):
    return math.log2((2 ** (bits - 1) - 1) / clip)


def summarize(m):
    """Per-artifact sums the model needs: GPTQ codes and their x, scales, values, LQER raw bytes."""
    s = {"codes": 0, "codes_x": 0.0, "scales": 0, "values": 0, "lqer_raw": 0.0, "gate_codes": 0}
    for t in m["tensors"]:
        s["scales"] += t["scales"]
        s["values"] += t["values"]
        if t["group"] == "lqer factors":
            s["lqer_raw"] += t["codes"] * t["bits"] / 8
        elif t["group"] == "gate":
            s["gate_codes"] += t["codes"]
        elif t["codes"]:
            s["codes"] += t["codes"]
            s["codes_x"] += t["codes"] * code_spread(t["bits"], t["clip_sigmas"])
    s["table_raw"] = m["table_raw_bytes"]
    return s


def fit_rows(rows):
    """Coefficients for one compressor from its measured rows.

    The small parts (bytes per scale, per fp16 value, LQER ratio, table ratio) come from the rows
    measured by ablation (ratio of sums). The code line uses every row: an ablation row gives its
    GPTQ code bytes directly, a total-only row its file bytes less the small parts as modelled.
    """
    ablated = [m for m in rows if "gptq_codes" in m["measured"]]
    if not ablated:
        return None
    sums = [summarize(m) for m in ablated]
    meas = [m["measured"] for m in ablated]

    def ratio(part, unit, minus=None):
        num = sum(d[part] - (s[minus] if minus else 0) for s, d in zip(sums, meas))
        den = sum(s[unit] for s in sums)
        return num / den if den else None

    lqer = ratio("lqer_codes", "lqer_raw")
    model = {
        "scale_bytes": ratio("scales", "scales"),
        "value_bytes": ratio("fp16_values", "values"),
        # no LQER in the data: its codes at their raw bits (an upper bound of their entropy)
        "lqer_ratio": 1.0 if lqer is None else lqer,
        "table_ratio": ratio("table", "table_raw", minus="gate_codes"),
    }
    # One row per (run, settings): the ablation row where there is one.
    by_key = {}
    for m in rows:
        key = (m["label"], tuple(m["sets"]))
        if key not in by_key or "gptq_codes" in m["measured"]:
            by_key[key] = m
    w, xs, ys = [], [], []
    for m in by_key.values():
        s, d = summarize(m), m["measured"]
        if "gptq_codes" in d:
            code_bytes = d["gptq_codes"]
        else:
            code_bytes = (d["file_bytes"] - 22 - s["scales"] * model["scale_bytes"] - s["values"] * model["value_bytes"]
                          - s["lqer_raw"] * model["lqer_ratio"] - s["gate_codes"] - s["table_raw"] * model["table_ratio"])
        w.append(s["codes"])
        xs.append(s["codes_x"] / s["codes"])
        ys.append(8 * code_bytes / s["codes"])
    # Weighted least squares of mean bits/code on mean x, weights = codes (large models count most).
    sw = sum(w)
    mx = sum(wi * x for wi, x in zip(w, xs)) / sw
    my = sum(wi * y for wi, y in zip(w, ys)) / sw
    sxx = sum(wi * (x - mx) ** 2 for wi, x in zip(w, xs))
    if sxx <= 1e-12:
        sys.exit("plan_calibrate: every artifact has the same x: measure more grid settings (--grid)")
    b = sum(wi * (x - mx) * (y - my) for wi, x, y in zip(w, xs, ys)) / sxx
    a = my - b * mx
    model.update({
        "code_bits_intercept": a,
        "code_bits_slope": b,
        "artifacts": len(by_key),
        "labels": sorted({m["label"] for m in by_key.values()}),
        "residual_bits_per_code": max(abs(y - (a + b * x)) for x, y in zip(xs, ys)),
    })
    return model


def load(exclude=None):
    rows = []
    with open(DATA) as f:
        for line in f:
            if line.strip():
                m = json.loads(line)
                if m["label"] != exclude:
                    rows.append(m)
    by = {}
    for m in rows:
        by.setdefault(m["config"]["COMPRESSOR"], []).append(m)
    return by


def fit(args):
    models = {c: fit_rows(rows) for c, rows in sorted(load(args.exclude).items())}
    models = {c: m for c, m in models.items() if m}
    if args.print:
        print(json.dumps(models, indent=2))
        return
    lines = [
        "// pack/plan_calibration.h — GENERATED by scripts/bench/plan_calibrate.py fit from",
        "// scripts/bench/plan_calibration.jsonl (real packed runs measured by `golf-pack plan --measure`).",
        "// Do not edit by hand: measure more runs and rerun the script.",
        "#pragma once",
        "#include <vector>",
        "",
        '#include "pack/plan.h"',
        "",
        "namespace golf::pack {",
        "",
        "// compressor, bits/code = a + b·log2(qmax/k), bytes per scale, per fp16 value, LQER ratio, table ratio,",
        "// artifacts fitted on",
        "inline const std::vector<SizeModel> kCalibratedSizeModels = {",
    ]
    for c, m in models.items():
        lines.append(f'    {{"{c}", {m["code_bits_intercept"]:.6f}, {m["code_bits_slope"]:.6f}, {m["scale_bytes"]:.6f}, '
                     f'{m["value_bytes"]:.6f}, {m["lqer_ratio"]:.6f}, {m["table_ratio"]:.6f}, {m["artifacts"]}}},'
                     f'  // runs: {", ".join(m["labels"])}; worst residual {m["residual_bits_per_code"]:.4f} bits/code')
    lines += ["};", "", "}  // namespace golf::pack", ""]
    with open(HEADER + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(HEADER + ".tmp", HEADER)
    print(f"wrote {HEADER}")
    print(json.dumps(models, indent=2))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("run_dir")
    m.add_argument("--label", required=True)
    m.add_argument("--grid", type=int, default=len(GRID))
    m.add_argument("--compressors", default="brotli,golf")
    m.add_argument("--work")
    m.add_argument("--total-only", default="")
    f = sub.add_parser("fit")
    f.add_argument("--exclude")
    f.add_argument("--print", action="store_true")
    args = p.parse_args()
    measure(args) if args.cmd == "measure" else fit(args)


if __name__ == "__main__":
    main()
