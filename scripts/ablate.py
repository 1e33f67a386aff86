#!/usr/bin/env python3
"""scripts/ablate.py — ablation runner: variants × seeds through golf-train → golf-pack → golf-eval,
summarized like the SMAT card's table (mean bpb, std, Δ vs baseline, seed wins) plus a significance
verdict per variant, written as markdown (stdout, OUT/ablation.md), JSON and PNG.

  ablate.py --config BASE.json --variant SPEC [--variant SPEC ...] [--seeds 42 1337 2025]
            [--set K=V ...] [--budget-seconds S | --iterations N] [--runs-root runs] [--tag ablate]
            [--out DIR] [--pack-args "..."] [--eval-args "..."] [--reuse] [--dry-run]
            [--min-delta 0.005] [--alpha 0.01] [--build-dir DIR]

Variant SPEC (one per --variant, in table order):
  NAME                     train-time variant with no overrides (BASE + --set as they are)
  NAME:K=V[,K=V...]        train-time variant: golf-train --set K=V for each override
                           e.g.  smat_full:SMAT_USE_S=1,SMAT_USE_G=1   value_residual:VALUE_RESIDUAL=1
  NAME@PARENT[:K=V,...]    eval-time variant: no training; re-evaluates PARENT's packed artifact
                           (PARENT is a train-time variant of this list) with golf-eval --set K=V
                           e.g.  lambda0@smat_full:SMAT_ABLATION=lambda0
  NAME: letters, digits, '.', '_', '-'. KEY: [A-Za-z_][A-Za-z0-9_]*. A value may contain commas
  (the list splits only at a comma followed by KEY=). The baseline is the variant named
  "baseline" if there is one, else the first. SEED, RUN_ID and OUTPUT_DIR are set per run.

Presets (--preset NAME adds its rows before any --variant):
  frontier_0427   issue 14: each part of the 04-27 stack switched off alone; use with
                  --config train/configs/frontier_0427.json. Rows: baseline, no_sparse_gate,
                  attn_out_gate (R16's 2σ gate instead), no_smear, classic_ns (no Polar Express),
                  min_lr0, no_quant_gate, no_lqer, lqer_sym (LQER's symmetric fallback form).
                  QuantGate and LQER are golf-pack settings: their rows retrain with the same seed
                  (golf-train is deterministic on one device) and differ only in the pack.

Per train-time variant V and seed S (RUN_ID = TAG_V_seedS, RUN_DIR = RUNS_ROOT/RUN_ID):
  golf-train --config BASE --set SEED=S --set RUN_ID=... --set OUTPUT_DIR=RUNS_ROOT [--set budget]
             [--set <--set>...] [--set <V's overrides>...]
     budget: --budget-seconds S → MAX_WALLCLOCK_SECONDS=S; --iterations N → ITERATIONS=N and
     MAX_WALLCLOCK_SECONDS=0 (neither: the config decides)
  golf-pack  RUN_DIR [<--pack-args>]
  golf-eval  RUN_DIR/final_model.golf --out RUN_DIR/eval.json --set ... [<--eval-args>]
     the --set values are the eval stage's settings (golf-train --print-config --stage eval: DATA_PATH,
     TOKENIZER_PATH, DEVICE, SEED, VAL_MAX_TOKENS, DIST_TIMEOUT_SECONDS, SMAT_ABLATION, EVAL_*, TTT_*
     except TTT_ENABLED, PHASED_TTT_*, GLOBAL_TTT_*; TTT_MODE picks the TTT) from RUN_DIR/config.json
     (as scripts/record.py, through scripts/golf_pipeline.py)
An eval-time variant E@P writes PARENT_RUN_DIR/eval_E.json, with P's eval --set values then E's.
Stage output goes to OUT/logs/RUN_ID.{train,pack,eval}.log (eval-time: RUN_ID = TAG_E_seedS).

A run whose stage fails (non-zero exit; golf-eval's 3 = a compliance check failed), whose
eval JSON is missing/malformed, failed a compliance check or read training data, is FAILED: it
stays in the table and JSON with its reason and is left out of the means. The score is the eval
JSON's final protocol (final.val_bpb / final.val_loss).

Table: variant | seeds ok | mean bpb | std | Δ bpb | Δ nats | seed wins | artifact bytes | significance
  Δ = variant − baseline (negative: better), nats from val_loss (per token). seed wins: seeds where
  both ran and the variant's bpb is below the baseline's on the same seed. significance:
  scripts/significance.py test_improvement (one-sided: baseline − variant > --min-delta nats at
  p < --alpha; Welch when the baseline has ≥ 2 seeds), tested in bpb with the runs' nats/bpb.
Outputs (each written to a temporary file and renamed): OUT/ablation.json (all per-run numbers and
the summary), OUT/ablation.png (per-seed bpb per variant, mean ± std), OUT/ablation.md.
--reuse: existing run directories are kept and each stage whose output is there is skipped
(a run directory without finished training is continued with golf-train --resume); without it an
existing run directory is an error. --dry-run prints the commands and runs nothing.
Exit: 0 all runs ok; 3 outputs written with FAILED runs; 2 bad input (nothing run).
Binaries: --build-dir, else GOLF_BUILD_DIR, else ROOT/build. OUT default: RUNS_ROOT/TAG.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import golf_pipeline as gp  # noqa: E402  (the tools, the run directory, the tools' JSON)
import significance  # noqa: E402
from golf_pipeline import NAME_RE, PER_RUN_KEYS, atomic_write, mean_std  # noqa: E402,F401  (atomic_write: tests)
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SPLIT_RE = re.compile(r",(?=[A-Za-z_][A-Za-z0-9_]*=)")


# --preset rows (NAME → variant specs); every key is a golf Config field (tests/scripts/test_ablate.py).
PRESETS = {
    "frontier_0427": [
        "baseline",
        "no_sparse_gate:SPARSE_ATTN_GATE_ENABLED=0",
        "attn_out_gate:SPARSE_ATTN_GATE_ENABLED=0,ATTN_OUT_GATE_ENABLED=1",
        "no_smear:SMEAR_GATE_ENABLED=0",
        "classic_ns:MUON_POLAR_EXPRESS=0",
        "min_lr0:MIN_LR=0.0",
        "no_quant_gate:GATED_ATTN_QUANT_GATE=0",
        "no_lqer:LQER_ENABLED=0",
        "lqer_sym:LQER_ASYM_ENABLED=0",
    ],
}


class SpecError(Exception):
    """A bad command line (exit 2)."""


# ---- variant specs ---------------------------------------------------------------------------------

def parse_overrides(text: str, where: str) -> list[tuple[str, str]]:
    """'K=V,K=V' → [(K, V), ...]; commas inside a value are kept (split only before KEY=)."""
    if text == "":
        raise SpecError(f"{where}: empty override list after ':' (drop the ':' for no overrides)")
    out, seen = [], set()
    for part in SPLIT_RE.split(text):
        if "=" not in part:
            raise SpecError(f"{where}: override {part!r} is not KEY=VALUE")
        key, value = part.split("=", 1)
        if not KEY_RE.match(key):
            raise SpecError(f"{where}: bad key {key!r} in {part!r} (expected [A-Za-z_][A-Za-z0-9_]*)")
        if key in PER_RUN_KEYS:
            raise SpecError(f"{where}: {key} is set per run by ablate.py (use --seeds / --runs-root / --tag)")
        if key in seen:
            raise SpecError(f"{where}: {key} is given twice")
        seen.add(key)
        out.append((key, value))
    return out


def parse_variant(spec: str) -> dict:
    """'NAME[@PARENT][:K=V,...]' → {name, parent (None: train-time), overrides: [(K, V)], spec}."""
    head, sep, rest = spec.partition(":")
    name, at, parent = head.partition("@")
    if not name or not NAME_RE.match(name):
        raise SpecError(f"--variant {spec!r}: name {name!r} may only use letters, digits, '.', '_' and '-' "
                        "(syntax NAME[:K=V,...] or NAME@PARENT[:K=V,...])")
    if at and (not parent or not NAME_RE.match(parent)):
        raise SpecError(f"--variant {spec!r}: bad parent {parent!r} after '@' (syntax NAME@PARENT[:K=V,...])")
    overrides = parse_overrides(rest, f"--variant {spec!r}") if sep else []
    return {"name": name, "parent": parent if at else None, "overrides": overrides, "spec": spec}


def parse_variants(specs: list[str]) -> tuple[list[dict], str]:
    """All --variant specs, checked together → (variants, baseline name)."""
    if not specs:
        raise SpecError("no --variant given")
    variants = [parse_variant(s) for s in specs]
    by_name = {}
    for v in variants:
        if v["name"] in by_name:
            raise SpecError(f"--variant {v['spec']!r}: variant {v['name']!r} is defined twice")
        by_name[v["name"]] = v
    for v in variants:
        p = v["parent"]
        if p is None:
            continue
        if p not in by_name:
            raise SpecError(f"--variant {v['spec']!r}: parent {p!r} is not a variant of this list")
        if by_name[p]["parent"] is not None:
            raise SpecError(f"--variant {v['spec']!r}: parent {p!r} is itself eval-time; name its train-time parent")
    baseline = "baseline" if "baseline" in by_name else variants[0]["name"]
    return variants, baseline


def parse_set(kv: str, opt: str = "--set") -> tuple[str, str]:
    if "=" not in kv:
        raise SpecError(f"{opt} {kv!r}: expected KEY=VALUE")
    k, v = kv.split("=", 1)
    if not KEY_RE.match(k):
        raise SpecError(f"{opt} {kv!r}: bad key {k!r}")
    if k in PER_RUN_KEYS:
        raise SpecError(f"{opt} {k} is set per run by ablate.py (use --seeds / --runs-root / --tag)")
    return k, v


# ---- one run ---------------------------------------------------------------------------------------

@dataclass
class AblationRun:
    """One (variant, seed): where it runs, what ran (stages: stage → {cmd, rc, seconds, log} or
    {skipped}), and the numbers read from its eval JSON and pack report (read_result)."""
    variant: str
    seed: int
    run_id: str
    run_dir: str                          # the training run's directory (the parent's for eval-time variants)
    eval_json: str
    parent_run_id: Optional[str] = None   # eval-time variant: the train-time run whose artifact it scores
    train_sets: Optional[list] = None     # golf-train --set arguments (None: eval-time)
    eval_overrides: list = field(default_factory=list)
    status: str = "pending"               # pending | ok | FAILED | dry-run
    reason: Optional[str] = None
    log: Optional[str] = None             # the failed stage's log
    stages: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    val_bpb: Optional[float] = None       # the final protocol's (eval JSON "final")
    val_loss: Optional[float] = None
    protocol: Optional[str] = None
    plain_val_bpb: Optional[float] = None
    sliding_val_bpb: Optional[float] = None
    ttt_val_bpb: Optional[float] = None
    bytes_total: Optional[int] = None
    bytes_model: Optional[int] = None
    bytes_code: Optional[int] = None
    pre_quant_val_bpb: Optional[float] = None
    quantized_val_bpb: Optional[float] = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# ---- reading results -----------------------------------------------------------------------------------

def read_result(run: AblationRun) -> AblationRun:
    """Fill run's numbers from its eval JSON (and the pack JSON); a problem makes it FAILED."""
    ev, why = gp.read_json(run.eval_json)
    if why:
        return fail(run, why)
    if not isinstance(ev, dict):
        return fail(run, f"{os.path.basename(run.eval_json)} is not a JSON object")
    run.val_bpb, run.val_loss = gp.num(ev, "final", "val_bpb"), gp.num(ev, "final", "val_loss")
    run.protocol = ev["final"].get("protocol") if isinstance(ev.get("final"), dict) else None
    for proto in ("plain", "sliding", "ttt"):
        setattr(run, f"{proto}_val_bpb", gp.num(ev, "results", proto, "val_bpb"))
    pack, _ = gp.read_json(gp.RunDir(run.run_dir).pack_report)
    for key in ("bytes_total", "bytes_model", "bytes_code"):
        v = gp.num(ev, key)
        if v is None and isinstance(pack, dict):
            v = gp.num(pack, key)
        setattr(run, key, None if v is None else int(v))
    if isinstance(pack, dict):
        run.pre_quant_val_bpb = gp.num(pack, "pre_quant", "val_bpb")
        run.quantized_val_bpb = gp.num(pack, "quantized", "val_bpb")
        limit = gp.num(pack, "limit")
        if limit is not None and run.bytes_total is not None and run.bytes_total > limit:
            run.notes.append(
                f"artifact {run.bytes_total:,} bytes is over the {int(limit):,} limit")
    if run.val_bpb is None or run.val_loss is None:
        return fail(run, f"{os.path.basename(run.eval_json)}: no final val_bpb/val_loss")
    if ev.get("train_data_read") is True:
        return fail(run, "eval read training data (train_data_read: true)")
    checks = ev.get("compliance", [])
    if isinstance(checks, list):
        bad = [c for c in checks if not isinstance(c, dict) or c.get("passed") is not True]
        if bad:
            return fail(run, "; ".join(
                f"compliance check {c.get('check', '?')} failed" + (f": {c['detail']}" if c.get("detail") else "")
                if isinstance(c, dict) else f"compliance entry {c!r}" for c in bad))
    run.status = "ok"
    return run


def fail(run: AblationRun, reason: str) -> AblationRun:
    run.status = "FAILED"
    run.reason = reason
    return run


# ---- summary ---------------------------------------------------------------------------------------

def _ok(runs, variant):
    return {r.seed: r for r in runs if r.variant == variant and r.status == "ok"}


def compare(runs, variant, reference, seeds, min_delta_nats=0.005, alpha=0.01):
    """Δ (variant − reference), seed wins and the significance of reference − variant > min_delta."""
    v, b = _ok(runs, variant), _ok(runs, reference)
    out = {"reference": reference, "delta_bpb": None, "delta_nats": None, "paired_delta_bpb": None,
           "seed_wins": None, "seeds_compared": 0, "significance": None, "significance_note": None}
    mv, mb = mean_std([r.val_bpb for r in v.values()])[0], mean_std([r.val_bpb for r in b.values()])[0]
    if mv is not None and mb is not None:
        out["delta_bpb"] = mv - mb
        out["delta_nats"] = (mean_std([r.val_loss for r in v.values()])[0]
                             - mean_std([r.val_loss for r in b.values()])[0])
    common = [s for s in seeds if s in v and s in b]
    out["seeds_compared"] = len(common)
    if common:
        out["seed_wins"] = sum(v[s].val_bpb < b[s].val_bpb for s in common)
        out["paired_delta_bpb"] = math.fsum(v[s].val_bpb - b[s].val_bpb for s in common) / len(common)
    if variant == reference:
        out["significance_note"] = "baseline"
    elif not b:
        out["significance_note"] = "baseline has no successful seed: no test"
    elif len(v) < 2:
        out["significance_note"] = "n<2: no test"
    else:
        ratios = [r.val_loss / r.val_bpb for r in list(b.values()) + list(v.values()) if r.val_bpb > 0]
        try:
            res = significance.test_improvement([v[s].val_bpb for s in seeds if s in v],
                                                [b[s].val_bpb for s in seeds if s in b],
                                                min_delta_nats=min_delta_nats, alpha=alpha,
                                                nats_per_bpb=math.fsum(ratios) / len(ratios), unit="bpb")
            out["significance"] = gp.json_safe(res)
            out["significance_note"] = (f"{'SIGNIFICANT' if res['significant'] else 'not significant'} "
                                        f"(t={res['t']:.2f}, p={_p(res['p'])})")
        except (ValueError, ZeroDivisionError) as e:
            out["significance_note"] = f"no test: {e}"
    return out


def _p(p):
    return "nan" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}"


def summarize(variants, baseline, runs, seeds, min_delta_nats=0.005, alpha=0.01) -> list[dict]:
    rows = []
    for v in variants:
        mine = [r for r in runs if r.variant == v["name"]]
        ok = [r for r in mine if r.status == "ok"]
        m, s = mean_std([r.val_bpb for r in ok])
        row = {"variant": v["name"], "kind": "eval" if v["parent"] else "train", "parent": v["parent"],
               "overrides": dict(v["overrides"]), "n": len(mine), "n_ok": len(ok),
               "failed": [{"seed": r.seed, "reason": r.reason, "log": r.log}
                          for r in mine if r.status != "ok"],
               "mean_bpb": m, "std_bpb": s,
               "mean_loss": mean_std([r.val_loss for r in ok])[0],
               "std_loss": mean_std([r.val_loss for r in ok])[1],
               "bytes_total_mean": mean_std([r.bytes_total for r in ok])[0],
               "protocols": sorted({str(r.protocol) for r in ok})}
        row.update(compare(runs, v["name"], baseline, seeds, min_delta_nats, alpha))
        if v["parent"]:
            row["vs_parent"] = compare(runs, v["name"], v["parent"], seeds, min_delta_nats, alpha)
        rows.append(row)
    return rows


def _f(v, fmt):
    return "—" if v is None else fmt.format(v)


def render_table(rows, baseline, min_delta_nats=0.005, alpha=0.01) -> str:
    head = ["variant", "seeds ok", "mean bpb", "std", "Δ bpb", "Δ nats", "seed wins", "artifact bytes",
            f"significance (Δ > {min_delta_nats} nats, p < {alpha})"]
    L = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        name = r["variant"] + (f" (eval of {r['parent']})" if r["parent"] else "")
        is_base = r["variant"] == baseline
        if r["n_ok"] == 0:
            reasons = "; ".join(sorted({str(f["reason"]) for f in r["failed"]}))
            L.append(f"| {name} | 0/{r['n']} | **FAILED** | — | — | — | — | — | FAILED: {reasons} |")
            continue
        wins = "" if is_base else (f"{r['seed_wins']}/{r['seeds_compared']}" if r["seeds_compared"] else "—")
        L.append("| " + " | ".join([
            name + (" (baseline)" if is_base and r["variant"] != "baseline" else ""),
            f"{r['n_ok']}/{r['n']}" + (" (FAILED: " + ", ".join(str(f["seed"]) for f in r["failed"]) + ")"
                                      if r["failed"] else ""),
            _f(r["mean_bpb"], "{:.5f}"), _f(r["std_bpb"], "{:.5f}"),
            "" if is_base else _f(r["delta_bpb"], "{:+.5f}"), "" if is_base else _f(r["delta_nats"], "{:+.5f}"),
            wins, _f(r["bytes_total_mean"], "{:,.0f}"),
            "" if is_base else str(r["significance_note"])]) + " |")
    notes = []
    for r in rows:
        if r.get("vs_parent") and r["vs_parent"]["delta_bpb"] is not None:
            p = r["vs_parent"]
            notes.append(f"- {r['variant']} vs its parent {r['parent']}: Δ {p['delta_bpb']:+.5f} bpb "
                         f"({p['delta_nats']:+.5f} nats), seed wins {p['seed_wins']}/{p['seeds_compared']}, "
                         f"{p['significance_note']}")
    for r in rows:
        for f in r["failed"]:
            notes.append(f"- FAILED {r['variant']} seed {f['seed']}: {f['reason']}"
                         + (f" (log {f['log']})" if f.get("log") else ""))
    L.append("")
    L.append("Δ = variant − baseline (negative: better); nats per token from val_loss. seed wins: same-seed "
             "runs where the variant's bpb is lower. std: sample std over seeds. Significance: one-sided "
             "t-test (scripts/significance.py) that baseline − variant exceeds the threshold.")
    if notes:
        L += [""] + notes
    return "\n".join(L) + "\n"


# ---- outputs ---------------------------------------------------------------------------------------

def plot(rows, runs, seeds, baseline, path, title=None):
    import io
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows) + 2), 4.5))
    cmap = plt.get_cmap("tab10")
    xs = list(range(len(rows)))
    offsets = {s: (i - (len(seeds) - 1) / 2) * 0.08 for i, s in enumerate(seeds)}
    labelled = set()

    def label(text):
        if text in labelled:
            return None
        labelled.add(text)
        return text

    for x, r in zip(xs, rows):
        for i, s in enumerate(seeds):
            run = next((q for q in runs if q.variant == r["variant"] and q.seed == s), None)
            if run is not None and run.status == "ok":
                ax.plot(x + offsets[s], run.val_bpb, "o", color=cmap(i % 10), alpha=0.8, label=label(f"seed {s}"))
        if r["mean_bpb"] is not None:
            ax.errorbar(x + 0.3, r["mean_bpb"], yerr=r["std_bpb"] or 0, fmt="s", color="black", capsize=4,
                        label=label("mean ± std"))
    base = next((r for r in rows if r["variant"] == baseline), None)
    if base and base["mean_bpb"] is not None:
        ax.axhline(base["mean_bpb"], color="gray", ls="--", lw=1, label="baseline mean")
    labels = []
    for r in rows:
        lab = r["variant"] + (f"\n(eval of {r['parent']})" if r["parent"] else "")
        if r["failed"]:
            lab += f"\n{len(r['failed'])} FAILED"
        labels.append(lab)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel("val bpb (final protocol; lower is better)")
    ax.set_title(title or "ablation")
    ax.grid(axis="y", alpha=0.3)
    if labelled:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def write_outputs(out_dir, meta, variants, baseline, runs, seeds, min_delta_nats=0.005, alpha=0.01):
    rows = summarize(variants, baseline, runs, seeds, min_delta_nats, alpha)
    table = render_table(rows, baseline, min_delta_nats, alpha)
    doc = dict(meta, baseline=baseline, seeds=seeds, min_delta_nats=min_delta_nats, alpha=alpha,
               variants=[{"name": v["name"], "parent": v["parent"], "overrides": dict(v["overrides"]),
                          "spec": v["spec"]} for v in variants],
               runs=[r.to_json() for r in runs], summary=rows, table_markdown=table)
    atomic_write(os.path.join(out_dir, "ablation.json"),
                 json.dumps(gp.json_safe(doc), indent=2, allow_nan=False) + "\n")
    atomic_write(os.path.join(out_dir, "ablation.md"), table)
    plot(rows, runs, seeds, baseline, os.path.join(out_dir, "ablation.png"), title=meta.get("title"))
    return rows, table


# ---- running ---------------------------------------------------------------------------------------

def _sets(pairs):
    return [a for k, v in pairs for a in ("--set", f"{k}={v}")]


def plan(args, variants, seeds, base_sets, budget):
    """Runs in execution order (seed-major: every variant of a seed before the next seed)."""
    runs = []
    for s in seeds:
        for v in variants:
            run_id = f"{args.tag}_{v['name']}_seed{s}"
            parent = v["parent"]
            train_dir = os.path.join(args.runs_root, f"{args.tag}_{parent or v['name']}_seed{s}")
            runs.append(AblationRun(
                variant=v["name"], seed=s, run_id=run_id, run_dir=train_dir,
                parent_run_id=f"{args.tag}_{parent}_seed{s}" if parent else None,
                eval_json=os.path.join(train_dir, f"eval_{v['name']}.json" if parent else "eval.json"),
                train_sets=None if parent else _sets(
                    [("SEED", s), ("RUN_ID", run_id), ("OUTPUT_DIR", args.runs_root)] + budget + base_sets
                    + v["overrides"]),
                eval_overrides=_sets(v["overrides"]) if parent else []))
    return runs


def _log_tail(path, n=1):
    return " | ".join(gp.last_lines(path, n))[:400]


def run_stage(run, stage, cmd, log_dir, dry_run):
    log = os.path.join(log_dir, f"{run.run_id}.{stage}.log")
    print(f"   {stage}: {shlex.join(cmd)}", file=sys.stderr)
    if dry_run:
        run.stages[stage] = {"cmd": cmd, "dry_run": True}
        return True
    os.makedirs(log_dir, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
        except OSError as e:
            f.write(f"cannot run {cmd[0]}: {e}\n")
            rc = 127
    secs = time.monotonic() - t0
    run.stages[stage] = {"cmd": cmd, "rc": rc, "seconds": round(secs, 3), "log": log}
    print(f"   {stage}: exit {rc} in {secs:.1f} s", file=sys.stderr)
    if rc != 0:
        what = "a compliance check failed (exit 3)" if stage == "eval" and rc == 3 else f"exit {rc}"
        fail(run, f"golf-{stage} {what}: {_log_tail(log) or 'no output'}")
        run.log = log
        return False
    return True


def execute(args, runs, tools, log_dir, eval_keys=()):
    """Runs the plan; eval_keys: the eval stage's settings (gp.stage_settings), carried from each
    run's config.json to golf-eval."""
    by_id = {}
    for i, run in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {run.variant} seed {run.seed} → {run.run_dir}", file=sys.stderr)
        by_id[run.run_id] = run
        rd = run.run_dir
        if run.parent_run_id is None:
            if gp.RunDir(rd).trained:
                run.stages["train"] = {"skipped": "done already (--reuse)"}
                print("   train: done already (--reuse)", file=sys.stderr)
            elif os.path.isdir(rd) and not args.dry_run:
                if not run_stage(run, "train", [tools["train"], "--resume", rd], log_dir, False):
                    continue
            elif not run_stage(run, "train", [tools["train"], "--config", args.config] + run.train_sets,
                               log_dir, args.dry_run):
                continue
            if os.path.isfile(os.path.join(rd, "final_model.golf.json")) and \
                    os.path.isfile(os.path.join(rd, "final_model.golf")):
                run.stages["pack"] = {"skipped": "done already (--reuse)"}
                print("   pack: done already (--reuse)", file=sys.stderr)
            elif not run_stage(run, "pack", [tools["pack"], rd] + args.pack_args, log_dir, args.dry_run):
                continue
        else:
            # needs the parent's artifact, not its score: a parent whose own eval failed still counts
            parent = by_id.get(run.parent_run_id)
            broken = parent is None or any(parent.stages.get(st, {}).get("rc", 0) != 0 for st in ("train", "pack"))
            if broken or (not args.dry_run and not os.path.isfile(os.path.join(rd, "final_model.golf"))):
                fail(run, f"parent run {run.parent_run_id} has no artifact"
                     + (f": {parent.reason}" if parent and parent.reason else ""))
                continue
        if os.path.isfile(run.eval_json):
            run.stages["eval"] = {"skipped": "done already (--reuse)"}
            print("   eval: done already (--reuse)", file=sys.stderr)
        else:
            esets = []
            if not args.dry_run:
                try:
                    cfg = gp.RunDir(rd).read_config()
                except gp.PipelineError as e:
                    fail(run, str(e))
                    continue
                mine = {a.split("=", 1)[0] for a in run.eval_overrides[1::2]}  # the variant's win
                esets = gp.as_set_args([kv for kv in gp.eval_sets(cfg, list(eval_keys))
                                        if kv.split("=", 1)[0] not in mine])
            else:
                esets = ["--set", "<the eval stage's settings (DATA_PATH, TOKENIZER_PATH, EVAL_*, TTT_*, …) from config.json>"]
            if not run_stage(run, "eval", [tools["eval"], os.path.join(rd, "final_model.golf"), "--out",
                                           run.eval_json] + esets + run.eval_overrides + args.eval_args,
                             log_dir, args.dry_run):
                if os.path.isfile(run.eval_json):  # exit 3 leaves the JSON: add the failing checks
                    reason = run.reason
                    read_result(run)
                    fail(run, reason if run.status == "ok" else f"{reason}; {run.reason}")
                continue
        if args.dry_run:
            run.status = "dry-run"
            continue
        read_result(run)
        if run.status == "ok":
            print(f"   {run.variant} seed {run.seed}: val_bpb {run.val_bpb:.5f} ({run.protocol})",
                  file=sys.stderr)
        else:
            print(f"   {run.variant} seed {run.seed}: FAILED: {run.reason}", file=sys.stderr)
    return runs


def build_parser():
    p = argparse.ArgumentParser(
        prog="ablate.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Ablation runner: variants × seeds through golf-train → golf-pack → golf-eval, "
                    "with a SMAT-card-style table (mean bpb, std, Δ vs baseline, seed wins, significance).",
        epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", required=True, help="base JSON config for golf-train")
    p.add_argument("--preset", choices=sorted(PRESETS), action="append", default=[],
                   help="add a preset's variant rows (before any --variant)")
    p.add_argument("--variant", action="append", default=[], metavar="SPEC",
                   help="NAME | NAME:K=V,... (train-time) | NAME@PARENT[:K=V,...] (eval-time); repeatable")
    p.add_argument("--seeds", nargs="+", default=["42", "1337", "2025"], help="seeds (default 42 1337 2025)")
    p.add_argument("--set", action="append", default=[], metavar="K=V", help="override for every training run")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--budget-seconds", type=float, help="MAX_WALLCLOCK_SECONDS for every training run")
    g.add_argument("--iterations", type=int, help="ITERATIONS=N with MAX_WALLCLOCK_SECONDS=0")
    p.add_argument("--runs-root", default="runs", help="OUTPUT_DIR of the runs (default runs)")
    p.add_argument("--tag", default="ablate", help="RUN_ID prefix: TAG_VARIANT_seedS (default ablate)")
    p.add_argument("--out", help="summary folder (default RUNS_ROOT/TAG)")
    p.add_argument("--pack-args", default="", help="extra golf-pack arguments, one shell-quoted string")
    p.add_argument("--eval-args", default="", help="extra golf-eval arguments, e.g. \"--ttt\" or \"--no-compliance\"")
    p.add_argument("--min-delta", type=float, default=0.005, help="significance threshold in nats (default 0.005)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    p.add_argument("--build-dir", help="binaries (default GOLF_BUILD_DIR, else ROOT/build)")
    p.add_argument("--title", help="plot title")
    p.add_argument("--reuse", action="store_true", help="keep existing run directories; skip finished stages")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing, write nothing")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    argv = []
    while raw:  # "--eval-args --ttt" would read as an option to argparse: glue the value on
        a = raw.pop(0)
        argv.append(f"{a}={raw.pop(0)}" if a in ("--eval-args", "--pack-args") and raw else a)
    args = parser.parse_args(argv)
    try:
        variants, baseline = parse_variants([s for p in args.preset for s in PRESETS[p]] + args.variant)
        seeds = []
        for s in args.seeds:
            if not re.fullmatch(r"[0-9]+", s):
                raise SpecError(f"--seeds: {s!r} is not a non-negative integer")
            if int(s) in seeds:
                raise SpecError(f"--seeds: {s} is given twice")
            seeds.append(int(s))
        base_sets = [parse_set(kv) for kv in args.set]
        if not NAME_RE.match(args.tag):
            raise SpecError(f"--tag {args.tag!r} may only use letters, digits, '.', '_' and '-'")
        if not os.path.isfile(args.config):
            raise SpecError(f"--config {args.config} does not exist")
        if not (0 < args.alpha < 1):
            raise SpecError(f"--alpha {args.alpha} is not in (0, 1)")
        if args.iterations is not None:
            if args.iterations <= 0:
                raise SpecError("--iterations must be positive")
            budget = [("ITERATIONS", args.iterations), ("MAX_WALLCLOCK_SECONDS", 0)]
        elif args.budget_seconds is not None:
            if not args.budget_seconds > 0:
                raise SpecError("--budget-seconds must be positive")
            budget = [("MAX_WALLCLOCK_SECONDS", f"{args.budget_seconds:g}")]
        else:
            budget = []
        for k, _ in base_sets:
            if budget and k in ("ITERATIONS", "MAX_WALLCLOCK_SECONDS"):
                raise SpecError(f"--set {k} conflicts with --budget-seconds/--iterations")
        try:
            args.pack_args, args.eval_args = shlex.split(args.pack_args), shlex.split(args.eval_args)
        except ValueError as e:
            raise SpecError(f"--pack-args/--eval-args: {e}")
        if "--out" in args.eval_args:
            raise SpecError("--eval-args: --out is chosen per run by ablate.py")
        binaries = gp.Tools.from_build_dir(gp.build_dir(args.build_dir))
        tools = {"train": binaries.train, "pack": binaries.pack, "eval": binaries.eval}
        eval_keys = []
        if not args.dry_run:
            for t in binaries.missing():
                raise SpecError(f"{t} not built (--build-dir / GOLF_BUILD_DIR)")
            try:
                eval_keys = gp.stage_settings(binaries, "eval")
            except gp.PipelineError as e:
                raise SpecError(str(e)) from None
        runs = plan(args, variants, seeds, base_sets, budget)
        if not args.reuse and not args.dry_run:
            for r in runs:
                if r.parent_run_id is None and os.path.exists(r.run_dir):
                    raise SpecError(f"{r.run_dir} exists: --reuse to continue it, or another --tag")
    except SpecError as e:
        print(f"ablate.py: error: {e}", file=sys.stderr)
        return 2

    out_dir = args.out or os.path.join(args.runs_root, args.tag)
    t0 = time.monotonic()
    execute(args, runs, tools, os.path.join(out_dir, "logs"), eval_keys)
    if args.dry_run:
        return 0
    meta = {"created": dt.datetime.now().isoformat(timespec="seconds"), "config": args.config,
            "budget": dict(budget), "sets": dict(base_sets), "eval_args": args.eval_args,
            "pack_args": args.pack_args, "runs_root": args.runs_root, "tag": args.tag,
            "wall_seconds": round(time.monotonic() - t0, 1), "title": args.title,
            "command": ["ablate.py"] + argv}
    rows, table = write_outputs(out_dir, meta, variants, baseline, runs, seeds, args.min_delta, args.alpha)
    print(table)
    print(f"outputs: {os.path.join(out_dir, 'ablation.json')}, ablation.png, ablation.md; logs in "
          f"{os.path.join(out_dir, 'logs')}; time {time.monotonic() - t0:.0f} s")
    return 3 if any(r.status != "ok" for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
