#!/usr/bin/env python3
"""scripts/make_record.py — assemble a record folder from per-seed golf run directories.

  make_record.py --out records/<track>/<date>_<name> --name NAME --author AUTHOR --github-id ID
                 --track TRACK --config CONFIG.json --what-changed TEXT
                 --seed-run SEED=RUN_DIR [--seed-run ...] [--best FLOAT|RECORD_DIR [--best-unit nats|bpb]]
                 [--hardware TEXT] [--date YYYY-MM-DD] [--overwrite]

Each RUN_DIR is a golf-train run after golf-pack --val and golf-eval (scripts/record.py makes them):
  config.json            resolved settings (SEED must match the --seed-run seed)
  train.log              copied as train_seed{S}.log
  metrics.jsonl          steps, ms/step, train time; loss curves (scripts/plot_runs.py)
  final_model.golf.json  golf-pack's report (its keys: `golf-pack --print-report-schema`)
  eval.json              golf-eval's report (its keys: `golf-eval --print-report-schema`); copied as
                         eval_seed{S}.json
  eval.log               (optional) copied as eval_seed{S}.log
A seed whose directory or a required file is missing or malformed, whose artifact is over the limit,
whose eval scored another artifact, read training data or failed a compliance check, is FAILED: it
stays in the README table and in submission.json (status "FAILED", reasons), never dropped; the
means use the successful seeds and say how many.

Output folder: README.md (summary, per-seed table, significance vs --best, compliance, plots,
configuration), submission.json (challenge record fields + per-seed results), curves_*.png,
config.json (the --config file), train/eval logs and eval JSON per seed. It is built in a temporary
folder beside --out and renamed into place: never half written; an existing folder is replaced
only with --overwrite.
Exit: 0 record written, all seeds ok; 3 record written with FAILED seeds; 2 bad input (nothing written).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golf_pipeline as gp  # noqa: E402
import plot_runs  # noqa: E402
import significance  # noqa: E402
from golf_pipeline import mean_std  # noqa: E402

# Settings that legitimately differ between the seeds of one record.
PER_SEED_KEYS = set(gp.PER_RUN_KEYS)
TIME_LIMIT_S = 600.0


class InputError(Exception):
    pass


# ---- reading one seed's run ---------------------------------------------------------------------

def read_seed(seed: int, run_dir: str) -> dict:
    s = {"seed": seed, "run_dir": run_dir, "reasons": [], "run": None, "config": None,
         "pack": None, "eval": None, "files": {}}
    fail = s["reasons"].append
    if not os.path.isdir(run_dir):
        fail(f"run directory {run_dir} does not exist (training did not start)")
        return _finish(s)
    for name in ("train.log", "eval.log"):
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            s["files"][name] = path
    if "train.log" not in s["files"]:
        fail("no train.log")

    config, why = gp.read_json(os.path.join(run_dir, "config.json"))
    if why:
        fail(why)
    elif not isinstance(config, dict):
        fail("config.json is not a JSON object")
    else:
        s["config"] = config
        if "SEED" in config and config["SEED"] != seed:
            raise InputError(f"{run_dir}/config.json has SEED={config['SEED']!r} but was given as --seed-run {seed}")

    try:
        s["run"] = plot_runs.load_run(run_dir, label=f"seed {seed}")
    except plot_runs.MetricsError as e:
        fail(str(e).replace(run_dir.rstrip("/") + "/", ""))
    if s["run"] is not None:
        events = [(p[0], p[1]) for p in s["run"].train] + [(p[0], p[1]) for p in s["run"].val]
        s["steps"] = int(max(e[0] for e in events))
        s["train_time_s"] = max(e[1] for e in events)
        s["step_avg_ms"] = 1000 * s["train_time_s"] / s["steps"] if s["steps"] > 0 else None

    pack, why = gp.read_json(os.path.join(run_dir, "final_model.golf.json"))
    if why:
        fail(why + " (golf-pack did not finish" + _stderr_tail(run_dir, "pack.err") + ")" if why.startswith("no ") else why)
    else:
        s["pack"] = pack
        for key in ("bytes_model", "bytes_code", "bytes_total"):
            if gp.num(pack, key) is None:
                fail(f"final_model.golf.json: no numeric {key}")
        limit, total = gp.num(pack, "limit"), gp.num(pack, "bytes_total")
        if limit is not None and total is not None and total > limit:
            fail(f"artifact {int(total):,} bytes is over the {int(limit):,}-byte limit")

    ev, why = gp.read_json(os.path.join(run_dir, "eval.json"))
    if why:
        fail(why + " (golf-eval did not finish" + _stderr_tail(run_dir, "eval.err") + ")" if why.startswith("no ") else why)
    elif not isinstance(ev, dict):
        fail("eval.json is not a JSON object")
    else:
        s["eval"] = ev
        s["files"]["eval.json"] = os.path.join(run_dir, "eval.json")
        if gp.num(ev, "final", "val_bpb") is None or gp.num(ev, "final", "val_loss") is None:
            fail("eval.json: no final val_bpb/val_loss")
        if ev.get("train_data_read") is not False:
            fail(f"eval.json: train_data_read is {ev.get('train_data_read')!r} (evaluation must not read training data)")
        checks = ev.get("compliance", [])
        if not isinstance(checks, list):
            fail("eval.json: compliance is not a list")
        else:
            for c in checks:
                if not isinstance(c, dict) or c.get("passed") is not True:
                    name = c.get("check", "?") if isinstance(c, dict) else "?"
                    detail = c.get("detail", "") if isinstance(c, dict) else repr(c)
                    fail(f"compliance check {name} failed" + (f": {detail}" if detail else ""))
        if isinstance(pack, dict):
            for key in ("bytes_model", "bytes_code"):
                a, b = gp.num(pack, key), gp.num(ev, key)
                if a is not None and b is not None and a != b:
                    fail(f"eval.json {key} {int(b):,} differs from golf-pack's {int(a):,}: another artifact was scored")
    return _finish(s)


def _stderr_tail(run_dir, name):
    """': <last line>' of a stage's stderr file that record.py keeps (the tool's error message), or ''."""
    try:
        with open(os.path.join(run_dir, name), errors="replace") as f:
            lines = [line.strip() for line in f.read().replace("\r", "\n").splitlines() if line.strip()]
    except OSError:
        return ""
    return f": {lines[-1][:300]}" if lines else ""


def _finish(s):
    s["status"] = "FAILED" if s["reasons"] else "ok"
    ev, pack = s["eval"] or {}, s["pack"] or {}
    s["val_bpb"], s["val_loss"] = gp.num(ev, "final", "val_bpb"), gp.num(ev, "final", "val_loss")
    s["protocol"] = (ev.get("final") or {}).get("protocol") if isinstance(ev.get("final"), dict) else None
    s["bpb"] = {
        "pre_quant": gp.num(pack, "pre_quant", "val_bpb"), "quantized": gp.num(pack, "quantized", "val_bpb"),
        "plain": gp.num(ev, "results", "plain", "val_bpb"), "sliding": gp.num(ev, "results", "sliding", "val_bpb"),
        "ttt": gp.num(ev, "results", "ttt", "val_bpb"),
    }
    ttt = ((ev.get("results") or {}).get("ttt") or {}) if isinstance(ev.get("results"), dict) else {}
    # Which TTT ran (golf-eval TTT_MODE: sgd = global score-first SGD, lora, phased) and its settings.
    s["ttt_mode"] = (ttt.get("mode") or "sgd") if isinstance(ttt, dict) and ttt else None
    s["ttt_settings"] = ttt.get("settings") if isinstance(ttt, dict) and isinstance(ttt.get("settings"), dict) else None
    s["pre_quant_val_loss"] = gp.num(pack, "pre_quant", "val_loss")
    for key in ("bytes_model", "bytes_code", "bytes_total"):
        s[key] = gp.num(pack, key) if gp.num(pack, key) is not None else gp.num(ev, key)
        if s[key] is not None:
            s[key] = int(s[key])
    s["eval_time_s"] = gp.num(ev, "time", "total_seconds")
    s["eval_time_8gpu_s"] = gp.num(ev, "time", "projected_8gpu_seconds")
    s["checks"] = [c for c in ev.get("compliance", []) if isinstance(c, dict)] if isinstance(
        ev.get("compliance"), list) else []
    for key in ("steps", "train_time_s", "step_avg_ms"):
        s.setdefault(key, None)
    return s


# ---- summary ------------------------------------------------------------------------------------

def compliance_summary(ok):
    """Challenge-style booleans over the successful seeds (None when nothing to judge)."""
    def all_of(vals):
        vals = [v for v in vals if v is not None]
        return all(vals) if vals else None
    out = {
        "artifact_under_16mb": all_of([s["bytes_total"] <= 16_000_000 if s["bytes_total"] is not None else None
                                       for s in ok]),
        "train_under_600s": all_of([s["train_time_s"] <= TIME_LIMIT_S if s["train_time_s"] is not None else None
                                    for s in ok]),
        "eval_under_600s_projected_8gpu": all_of([s["eval_time_8gpu_s"] <= TIME_LIMIT_S
                                                  if s["eval_time_8gpu_s"] is not None else None for s in ok]),
        "score_first_ttt": all_of([s["protocol"] == "ttt" for s in ok]) if ok else None,
        "three_seeds": len(ok) >= 3,
        "checks": {},
    }
    for s in ok:
        for c in s["checks"]:
            name = str(c.get("check", "?"))
            out["checks"][name] = out["checks"].get(name, True) and c.get("passed") is True
    return out


def _r(v, nd=None):
    """Times and byte means are rounded for reading; scores keep full precision (significance reads them)."""
    return v if v is None or nd is None else round(v, nd)


TTT_PROTOCOLS = {"sgd": "score_first_global_sgd_ttt", "lora": "document_lora_ttt", "phased": "phased_ttt"}


def build_submission(args, seeds, sig) -> dict:
    ok = [s for s in seeds if s["status"] == "ok"]
    bpb_m, bpb_s = mean_std([s["val_bpb"] for s in ok])
    loss_m, loss_s = mean_std([s["val_loss"] for s in ok])
    sub = {
        "name": args.name, "author": args.author, "github_id": args.github_id,
        "blurb": args.what_changed, "date": args.date, "track": args.track,
        "val_bpb": _r(bpb_m), "val_bpb_std": _r(bpb_s), "val_loss": _r(loss_m), "val_loss_std": _r(loss_s),
        "eval_protocol": ok[0]["protocol"] if ok else None,
        "ttt_protocol": TTT_PROTOCOLS.get(ok[0]["ttt_mode"]) if ok and ok[0]["ttt_mode"] else None,
        "ttt_settings": ok[0]["ttt_settings"] if ok else None,
        "seeds": [s["seed"] for s in seeds],
        "seeds_ok": len(ok), "seeds_failed": [s["seed"] for s in seeds if s["status"] != "ok"],
        "bytes_total": max((s["bytes_total"] for s in ok if s["bytes_total"] is not None), default=None),
        "bytes_code": max((s["bytes_code"] for s in ok if s["bytes_code"] is not None), default=None),
        "bytes_model": max((s["bytes_model"] for s in ok if s["bytes_model"] is not None), default=None),
        "artifact_bytes_mean": _r(mean_std([s["bytes_total"] for s in ok])[0], 1),
        "artifact_bytes_max": max((s["bytes_total"] for s in ok if s["bytes_total"] is not None), default=None),
        "pre_quant_val_bpb": _r(mean_std([s["bpb"]["pre_quant"] for s in ok])[0]),
        "pre_quant_val_loss": _r(mean_std([s["pre_quant_val_loss"] for s in ok])[0]),
        "train_steps_mean": _r(mean_std([s["steps"] for s in ok])[0], 1),
        "step_avg_ms_mean": _r(mean_std([s["step_avg_ms"] for s in ok])[0], 3),
        "train_time_s_mean": _r(mean_std([s["train_time_s"] for s in ok])[0], 3),
        "eval_time_s_mean": _r(mean_std([s["eval_time_s"] for s in ok])[0], 3),
        "compliance": compliance_summary(ok),
        "seed_results": {},
    }
    if args.hardware:
        sub["hardware"] = args.hardware
    commit = _git_commit()
    if commit:
        sub["golf_commit"] = commit
    for s in seeds:
        r = {"status": s["status"]}
        if s["reasons"]:
            r["reasons"] = s["reasons"]
        r.update({
            "val_bpb": _r(s["val_bpb"]), "val_loss": _r(s["val_loss"]),
            "pre_quant_val_bpb": _r(s["bpb"]["pre_quant"]), "quantized_val_bpb": _r(s["bpb"]["quantized"]),
            "plain_val_bpb": _r(s["bpb"]["plain"]), "sliding_val_bpb": _r(s["bpb"]["sliding"]),
            "ttt_val_bpb": _r(s["bpb"]["ttt"]),
            "artifact_bytes": s["bytes_total"], "bytes_model": s["bytes_model"], "bytes_code": s["bytes_code"],
            "steps": s["steps"], "step_avg_ms": _r(s["step_avg_ms"], 3),
            "train_time_ms": _r(None if s["train_time_s"] is None else 1000 * s["train_time_s"], 1),
            "eval_time_ms": _r(None if s["eval_time_s"] is None else 1000 * s["eval_time_s"], 1),
            "eval_time_projected_8gpu_ms": _r(None if s["eval_time_8gpu_s"] is None else 1000 * s["eval_time_8gpu_s"], 1),
            "compliance": {str(c.get("check")): c.get("passed") is True for c in s["checks"]},
        })
        sub["seed_results"][str(s["seed"])] = r
    if sig is not None:
        sub["significance"] = gp.json_safe(sig)
    return sub


def _git_commit():
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


# ---- README ---------------------------------------------------------------------------------------

def _f(v, fmt="{:.5f}"):
    return "—" if v is None else fmt.format(v)


def _pm(values, fmt="{:.5f}"):
    m, s = mean_std(values)
    if m is None:
        return "—"
    return fmt.format(m) + ("" if s is None else " ± " + fmt.format(s))


def build_readme(args, seeds, sub, sig_line, plots, config_text, overrides, resolved) -> str:
    ok = [s for s in seeds if s["status"] == "ok"]
    n = len(seeds)
    L = [f"# {args.name}", ""]
    if ok:
        spread = "mean ± std over" if len(ok) > 1 else "one seed:"
        L.append(f"**val_bpb {_pm([s['val_bpb'] for s in ok])}** ({spread} {len(ok)} of {n} seeds, "
                 f"{sub['eval_protocol'] or '?'} evaluation) · val_loss {_pm([s['val_loss'] for s in ok])} nats · "
                 f"artifact ≤ {_f(sub['bytes_total'], '{:,}')} bytes")
    else:
        L.append(f"**No successful seed** (0 of {n}).")
    L += ["", f"Track `{args.track}` · {args.date} · {args.author} (@{args.github_id})"
          + (f" · {args.hardware}" if args.hardware else "")
          + (f" · golf {sub['golf_commit']}" if sub.get("golf_commit") else ""), ""]
    if sub.get("ttt_protocol"):
        settings = ", ".join(f"`{k}={v}`" for k, v in sorted((sub.get("ttt_settings") or {}).items()))
        L += [f"Test-time training: **{sub['ttt_protocol']}** ({settings})", ""]
    L += ["## What changed", "", args.what_changed, ""]

    L += ["## Results", ""]
    head = ["seed", "status", "steps", "ms/step", "pre-quant bpb", "quantized bpb", "sliding bpb", "TTT bpb",
            "artifact bytes", "code bytes", "train time", "eval time", "compliance"]
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in seeds:
        L.append("| " + " | ".join([
            str(s["seed"]), "ok" if s["status"] == "ok" else "**FAILED**", _f(s["steps"], "{:,}"),
            _f(s["step_avg_ms"], "{:.1f}"), _f(s["bpb"]["pre_quant"]), _f(s["bpb"]["quantized"]),
            _f(s["bpb"]["sliding"]), _f(s["bpb"]["ttt"]), _f(s["bytes_total"], "{:,}"), _f(s["bytes_code"], "{:,}"),
            _f(s["train_time_s"], "{:.1f} s"), _f(s["eval_time_s"], "{:.1f} s"), _checks_cell(s)]) + " |")
    L.append("| " + " | ".join([
        f"mean ± std", f"{len(ok)}/{n} ok", _pm([s["steps"] for s in ok], "{:.0f}"),
        _pm([s["step_avg_ms"] for s in ok], "{:.1f}"),
        *[_pm([s["bpb"][k] for s in ok]) for k in ("pre_quant", "quantized", "sliding", "ttt")],
        _pm([s["bytes_total"] for s in ok], "{:,.0f}"), _pm([s["bytes_code"] for s in ok], "{:,.0f}"),
        _pm([s["train_time_s"] for s in ok], "{:.1f}"), _pm([s["eval_time_s"] for s in ok], "{:.1f}"), ""]) + " |")
    L.append("")
    L.append("Bytes: artifact = compressed model + counted code (golf-pack); limit 16,000,000. Train time is the "
             "train clock (warm-up and validation excluded); eval time is golf-eval's end-to-end time for all "
             "protocols. Means and std use the successful seeds only.")
    L.append("")
    failed = [s for s in seeds if s["status"] != "ok"]
    if failed:
        L += [f"**FAILED seeds ({len(failed)} of {n}), left out of the means:**", ""]
        for s in failed:
            L.append(f"- seed {s['seed']} (`{s['run_dir']}`): " + "; ".join(s["reasons"]))
        L.append("")
    else:
        L += [f"All {n} seeds succeeded.", ""]

    if sig_line:
        L += ["## Significance", "", sig_line, ""]

    c = sub["compliance"]
    yn = {True: "yes", False: "**NO**", None: "—"}
    L += ["## Compliance", "", "| check | result (successful seeds) |", "|---|---|",
          f"| artifact ≤ 16,000,000 bytes | {yn[c['artifact_under_16mb']]} |",
          f"| train clock ≤ 600 s (on this hardware) | {yn[c['train_under_600s']]} |",
          f"| eval ≤ 600 s (golf-eval's 8-GPU projection) | {yn[c['eval_under_600s_projected_8gpu']]} |",
          f"| final score from score-first TTT | {yn[c['score_first_ttt']]} |",
          f"| ≥ 3 successful seeds | {yn[c['three_seeds']]} |"]
    for name, passed in c["checks"].items():
        L.append(f"| golf-eval: {name} | {yn[passed]} |")
    L.append("")

    L += ["## Loss curves", ""]
    if plots:
        L += [f"![{os.path.splitext(p)[0]}]({p})" for p in plots]
    else:
        L.append("No plots: no seed has a readable metrics.jsonl.")
    L.append("")

    L += ["## Configuration", "", f"`config.json` (the `--config` file):", "", "```json", config_text.rstrip(), "```", ""]
    if overrides:
        L += ["Settings of the runs that differ from that file (from `--set` or the environment):", ""]
        L += [f"- `{k}` = `{json.dumps(v)}` (file: `{json.dumps(f)}`)" for k, (v, f) in sorted(overrides.items())]
        L.append("")
    if resolved is not None:
        L += ["<details><summary>Resolved configuration of the runs (SEED/RUN_ID differ per seed)</summary>", "",
              "```json", json.dumps(resolved, indent=2, sort_keys=True), "```", "", "</details>", ""]

    L += ["## Files", "", "- `submission.json`: summary and per-seed results",
          "- `train_seed{S}.log`, `eval_seed{S}.json`, `eval_seed{S}.log`: each seed's logs and golf-eval output",
          "- `curves_step.png`, `curves_time.png`: train loss and validation bpb of every seed", ""]
    return "\n".join(L)


def _checks_cell(s):
    if s["eval"] is None:
        return "—"
    if not s["checks"]:
        return "no checks"
    bad = [str(c.get("check")) for c in s["checks"] if c.get("passed") is not True]
    return f"{len(s['checks'])}/{len(s['checks'])} pass" if not bad else "**FAIL** " + ", ".join(bad)


def significance_line(result):
    return result["verdict"] + f" Baseline: {result['best']}."


# ---- main ---------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Exit 0: all seeds ok; 3: written with FAILED seeds; 2: bad input.")
    ap.add_argument("--out", required=True, help="record folder to create, e.g. records/<track>/<date>_<name>")
    ap.add_argument("--name", required=True)
    ap.add_argument("--author", required=True)
    ap.add_argument("--github-id", required=True)
    ap.add_argument("--track", required=True, help="e.g. track_10min_16mb or track_non_record_16mb")
    ap.add_argument("--config", required=True, help="the JSON settings file the runs were trained with")
    ap.add_argument("--what-changed", required=True, help="what this record changes (README, submission blurb)")
    ap.add_argument("--seed-run", action="append", required=True, metavar="SEED=RUN_DIR")
    ap.add_argument("--best", help="current best for the significance test: a number or a record folder")
    ap.add_argument("--best-unit", choices=["nats", "bpb"], default="nats", help="unit of the significance test and of a numeric --best (default nats)")
    ap.add_argument("--hardware", help="e.g. '8xH100 SXM'")
    ap.add_argument("--date", default=dt.date.today().isoformat(), help="YYYY-MM-DD (default today)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing record folder")
    return ap.parse_args(argv)


def validate_inputs(args):
    try:
        dt.date.fromisoformat(args.date)
    except ValueError:
        raise InputError(f"--date {args.date!r} is not YYYY-MM-DD") from None
    if os.path.exists(args.out) and not args.overwrite:
        raise InputError(f"{args.out} already exists: pass --overwrite to replace it")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"{args.out} exists and is not a folder")
    try:
        with open(args.config) as f:
            config_text = f.read()
        config = json.loads(config_text)
    except OSError as e:
        raise InputError(f"--config {args.config}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"--config {args.config}: malformed JSON: {e}") from None
    if not isinstance(config, dict):
        raise InputError(f"--config {args.config}: not a JSON object of settings")
    seed_runs = []
    for spec in args.seed_run:
        seed, sep, run_dir = spec.partition("=")
        try:
            seed_int = int(seed)
        except ValueError:
            seed_int = None
        if not sep or not run_dir or seed_int is None:
            raise InputError(f"--seed-run {spec!r}: expected SEED=RUN_DIR with an integer SEED")
        if any(s == seed_int for s, _ in seed_runs):
            raise InputError(f"--seed-run: seed {seed_int} given twice")
        seed_runs.append((seed_int, run_dir))
    best = None
    if args.best is not None:
        try:
            best = float(args.best)
            if not math.isfinite(best):
                raise InputError(f"--best {args.best!r} is not a finite number")
        except ValueError:
            best = args.best
            try:
                significance.load_record_seeds(best)
            except significance.InputError as e:
                raise InputError(f"--best: {e}") from None
    return config_text, config, seed_runs, best


def consistent_config(seeds, file_config):
    """The runs' resolved config (one for all seeds, apart from PER_SEED_KEYS) and the overrides."""
    configs = [(s["seed"], s["config"]) for s in seeds if s["config"] is not None]
    if not configs:
        return None, {}
    ref_seed, ref = configs[0]
    for seed, cfg in configs[1:]:
        keys = (set(ref) | set(cfg)) - PER_SEED_KEYS
        diff = sorted(k for k in keys if ref.get(k) != cfg.get(k))
        if diff:
            k = diff[0]
            raise InputError(f"seeds {ref_seed} and {seed} were trained with different settings "
                             f"({', '.join(diff)}; e.g. {k} = {ref.get(k)!r} vs {cfg.get(k)!r}): not one record")
    resolved = {k: v for k, v in ref.items() if k not in PER_SEED_KEYS}
    overrides = {k: (ref[k], v) for k, v in file_config.items() if k in ref and ref[k] != v and k not in PER_SEED_KEYS}
    return resolved, overrides


def make_record(args) -> int:
    config_text, file_config, seed_runs, best = validate_inputs(args)
    seeds = [read_seed(seed, run_dir) for seed, run_dir in seed_runs]
    resolved, overrides = consistent_config(seeds, file_config)

    out = os.path.abspath(args.out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    try:
        runs = [s["run"] for s in seeds if s["run"] is not None]
        plots = [os.path.basename(p) for p in plot_runs.plot_runs(runs, tmp, title=args.name)] if runs else []
        for s in seeds:
            if "train.log" in s["files"]:
                shutil.copyfile(s["files"]["train.log"], os.path.join(tmp, f"train_seed{s['seed']}.log"))
            if "eval.json" in s["files"]:
                shutil.copyfile(s["files"]["eval.json"], os.path.join(tmp, f"eval_seed{s['seed']}.json"))
            if "eval.log" in s["files"]:
                shutil.copyfile(s["files"]["eval.log"], os.path.join(tmp, f"eval_seed{s['seed']}.log"))
        with open(os.path.join(tmp, "config.json"), "w") as f:
            f.write(config_text)

        sub = build_submission(args, seeds, None)
        _write_json(os.path.join(tmp, "submission.json"), sub)
        sig, sig_line = None, None
        if best is not None:
            try:
                sig = significance.compare_records(tmp, best, unit=args.best_unit)
                sig["record"] = args.out
                sig_line = significance_line(sig)
            except ValueError as e:  # fewer than 2 successful seeds
                sig_line = f"Not tested against {best}: {e}."
                sig = {"error": str(e), "best": str(best)}
            except significance.InputError as e:
                sig_line = f"Not tested against {best}: {e}."
                sig = {"error": str(e), "best": str(best)}
            sub = build_submission(args, seeds, sig)
            _write_json(os.path.join(tmp, "submission.json"), sub)
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(build_readme(args, seeds, sub, sig_line, plots, config_text, overrides, resolved))
        os.chmod(tmp, 0o755)

        if os.path.exists(out):  # --overwrite, checked above
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=parent)
            os.rename(out, os.path.join(old, "record"))
            os.rename(tmp, out)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    ok = sum(s["status"] == "ok" for s in seeds)
    print(f"wrote {args.out}: {ok} of {len(seeds)} seeds ok" + (f", val_bpb {sub['val_bpb']:.5f}" if ok else "")
          + (f" ± {sub['val_bpb_std']:.5f}" if ok > 1 else ""))
    for s in seeds:
        if s["status"] != "ok":
            print(f"  seed {s['seed']} FAILED: {'; '.join(s['reasons'])}", file=sys.stderr)
    if sig_line:
        print(f"  {sig_line}")
    return 0 if ok == len(seeds) else 3


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return make_record(args)
    except (InputError, plot_runs.MetricsError) as e:
        print(f"make_record.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
