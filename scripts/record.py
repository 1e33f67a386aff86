#!/usr/bin/env python3
"""scripts/record.py — train, pack and evaluate one configuration for several seeds, then assemble
the record folder (scripts/make_record.py).

  scripts/record.py CONFIG.json NAME [--seeds "42 1337 2025"] [--track track_10min_16mb]
      [--set KEY=VALUE]... [--out-root records] [--runs-root runs] [--author A] [--github-id G]
      [--what-changed TEXT] [--best FLOAT|RECORD_DIR] [--best-unit nats|bpb] [--hardware TEXT]
      [--date YYYY-MM-DD] [--reuse] [--overwrite]

Per seed S (run RUN_DIR = RUNS_ROOT/DATE_NAME_seedS):
  golf-train --config CONFIG --set SEED=S --set RUN_ID=DATE_NAME_seedS --set OUTPUT_DIR=RUNS_ROOT [--set …]
  golf-pack  RUN_DIR --val                                  (stdout → RUN_DIR/pack.log, stderr → pack.err)
  golf-eval  RUN_DIR/final_model.golf --ttt --out RUN_DIR/eval.json --set …   (stdout → RUN_DIR/eval.log,
             stderr → eval.err); the --set values are the eval stage's settings (golf-train
             --print-config --stage eval: DATA_PATH, TOKENIZER_PATH, DEVICE, SEED, VAL_MAX_TOKENS,
             DIST_TIMEOUT_SECONDS, SMAT_ABLATION, EVAL_*, TTT_* except TTT_ENABLED, PHASED_TTT_*,
             GLOBAL_TTT_*) from RUN_DIR/config.json, then yours. TTT_MODE=sgd|lora|phased picks the TTT.
A failed stage ends that seed only; the others still run, and make_record.py lists it as FAILED.
Then: make_record.py --out OUT_ROOT/TRACK/DATE_NAME --seed-run S=RUN_DIR … (its exit status is ours:
0 all seeds ok, 3 record written with FAILED seeds, 2 bad input).
--reuse: a run directory that already exists is kept and each stage whose output is there is skipped
(to finish or re-assemble after an interruption); without it an existing run directory is an error.
Binaries: GOLF_BUILD_DIR (default ROOT/build). Python for make_record.py: GOLF_PYTHON (default the
pinned venv). This script needs only the standard library (scripts/golf_pipeline.py).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golf_pipeline as gp  # noqa: E402

PROG = "record.py"
VALUE_OPTIONS = ("--seeds", "--track", "--set", "--out-root", "--runs-root", "--author", "--github-id",
                 "--what-changed", "--best", "--best-unit", "--hardware", "--date")


class UsageError(Exception):
    """Bad command line or input (exit 2, nothing run)."""


class HelpRequested(Exception):
    pass


def usage() -> str:
    """The docstring's title and synopsis (record.sh printed the same lines of its header)."""
    return "\n".join(__doc__.splitlines()[:7])


def default_author() -> str:
    try:
        name = subprocess.run(["git", "-C", gp.ROOT, "config", "user.name"], capture_output=True, text=True).stdout.strip()
    except OSError:
        name = ""
    return name or os.environ.get("USER", "unknown")


def parse_args(argv: list[str]) -> dict:
    """record.sh's command line → settings; UsageError for anything wrong."""
    config, name, rest = argv[0], argv[1], argv[2:]
    author = default_author()
    a = {"config": config, "name": name, "seeds": "42 1337 2025", "track": "track_10min_16mb",
         "out_root": "records", "runs_root": "runs", "author": author,
         "github_id": os.environ.get("GOLF_GITHUB_ID") or author, "what_changed": "",
         "date": dt.date.today().isoformat(), "reuse": False, "sets": [], "extra": []}
    while rest:
        opt = rest.pop(0)
        if opt == "--reuse":
            a["reuse"] = True
            continue
        if opt == "--overwrite":
            a["extra"].append("--overwrite")
            continue
        if opt in ("-h", "--help"):
            raise HelpRequested
        if opt not in VALUE_OPTIONS:
            raise UsageError(f"unknown option {opt} (see --help)")
        if not rest:
            raise UsageError(f"{opt} needs a value")
        val = rest.pop(0)
        if opt == "--set":
            if "=" not in val:
                raise UsageError(f"--set {val}: expected KEY=VALUE")
            key = val.split("=", 1)[0]
            if key in gp.PER_RUN_KEYS:
                raise UsageError(f"--set {key} is set per seed by {PROG} (use --seeds / --runs-root)")
            a["sets"].append(val)
        elif opt in ("--best", "--best-unit", "--hardware"):
            a["extra"] += [opt, val]
        else:
            a[opt[2:].replace("-", "_")] = val
    return a


def check_inputs(a: dict, tools: gp.Tools, python: str) -> list[int]:
    """The checks record.sh made before running anything; returns the seeds."""
    if not os.path.isfile(a["config"]):
        raise UsageError(f"config {a['config']} does not exist")
    if not gp.NAME_RE.match(a["name"]):
        raise UsageError(f"NAME '{a['name']}' may only use letters, digits, '.', '_' and '-'")
    seeds = a["seeds"].split()
    if not seeds:
        raise UsageError("--seeds is empty")
    for s in seeds:
        if not re.fullmatch(r"[0-9]+", s):
            raise UsageError(f"--seeds: '{s}' is not a non-negative integer")
    if not os.access(python, os.X_OK):
        raise UsageError(f"python {python} not found (set GOLF_PYTHON)")
    for t in tools.missing():
        build = os.path.dirname(os.path.dirname(t))
        raise UsageError(f"{t} not built (GOLF_BUILD_DIR={build})")
    if os.path.exists(record_dir(a)) and "--overwrite" not in a["extra"]:
        raise UsageError(f"{record_dir(a)} already exists (--overwrite replaces it)")
    if not a["reuse"]:
        for s in seeds:
            path = os.path.join(a["runs_root"], run_id(a, s))
            if os.path.exists(path):
                raise UsageError(f"{path} exists: --reuse to continue it, or another NAME")
    return [int(s) for s in seeds]


def run_id(a: dict, seed) -> str:
    return f"{a['date']}_{a['name']}_seed{seed}"


def record_dir(a: dict) -> str:
    return os.path.join(a["out_root"], a["track"], f"{a['date']}_{a['name']}")


def say(text: str, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


def run_tool(stage: str, cmd: list[str], out: str | None = None, err: str | None = None) -> gp.StageRun:
    """Runs one stage tool; stdout/stderr to files when given, else inherited."""
    t0 = time.monotonic()
    rec = gp.StageRun(stage=stage, cmd=cmd, stdout=out, stderr=err)
    with contextlib.ExitStack() as files:
        fo = files.enter_context(open(out, "w")) if out else None
        fe = files.enter_context(open(err, "w")) if err else None
        try:
            rec.rc = subprocess.run(cmd, stdout=fo, stderr=fe).returncode
        except OSError as e:
            (fe or sys.stderr).write(f"cannot run {cmd[0]}: {e}\n")
            rec.rc = 127
    rec.seconds = time.monotonic() - t0
    return rec


def run_seed(a: dict, seed: int, tools: gp.Tools, eval_keys: list[str]) -> gp.SeedRun:
    """train → pack → eval for one seed; the first stage that fails ends the seed."""
    rid = run_id(a, seed)
    run = gp.SeedRun(seed=seed, run_id=rid, run_dir=gp.RunDir(os.path.join(a["runs_root"], rid)))
    rd = run.run_dir
    say(f"== seed {seed} → {rd.path}")
    t0 = time.monotonic()

    def failed(stage: str, message: str) -> gp.SeedRun:
        say(message, err=True)
        run.failed_stage = stage
        return run

    if rd.trained:
        say("   train: done already (--reuse)")
        run.stages.append(gp.StageRun("train", skipped="done already (--reuse)"))
    elif os.path.isdir(rd.path):
        run.stages.append(run_tool("train", [tools.train, "--resume", rd.path]))
        if not run.stages[-1].ok:
            return failed("train", f"   seed {seed}: golf-train --resume failed")
    else:
        sets = gp.as_set_args([f"SEED={seed}", f"RUN_ID={rid}", f"OUTPUT_DIR={a['runs_root']}"] + a["sets"])
        run.stages.append(run_tool("train", [tools.train, "--config", a["config"]] + sets))
        if not run.stages[-1].ok:
            return failed("train", f"   seed {seed}: golf-train failed")

    if rd.packed:
        say("   pack: done already (--reuse)")
        run.stages.append(gp.StageRun("pack", skipped="done already (--reuse)"))
    else:
        run.stages.append(run_tool("pack", [tools.pack, rd.path, "--val"], rd.file("pack.log"), rd.file("pack.err")))
        if not run.stages[-1].ok:
            failed("pack", f"   seed {seed}: golf-pack failed (see {rd.file('pack.log')}, pack.err):")
            say("\n".join(gp.last_lines(rd.file("pack.err"), 5)), err=True)
            return run

    if rd.evaluated():
        say("   eval: done already (--reuse)")
        run.stages.append(gp.StageRun("eval", skipped="done already (--reuse)"))
    else:
        try:
            esets = gp.eval_sets(rd.read_config(), eval_keys)
        except gp.PipelineError as e:
            return failed("eval", f"   seed {seed}: golf-eval not run: {e}")
        cmd = [tools.eval, rd.artifact, "--ttt", "--out", rd.file("eval.json")] + gp.as_set_args(esets + a["sets"])
        run.stages.append(run_tool("eval", cmd, rd.file("eval.log"), rd.file("eval.err")))
        if not run.stages[-1].ok:
            failed("eval", f"   seed {seed}: golf-eval failed (see {rd.file('eval.log')}, eval.err):")
            say("\n".join(gp.last_lines(rd.file("eval.err"), 5)), err=True)
            return run
    run.seconds = time.monotonic() - t0
    say(f"   seed {seed} done in {run.seconds:.0f} s")
    return run


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if len(argv) < 2:
        print(usage(), file=sys.stderr)
        return 2
    tools = gp.Tools.from_build_dir(gp.build_dir())
    python = gp.default_python()
    try:
        try:
            a = parse_args(argv)
        except HelpRequested:
            print(usage())
            return 0
        seeds = check_inputs(a, tools, python)
        if not a["what_changed"]:
            a["what_changed"] = f"Configuration {os.path.basename(a['config'])}."
        try:
            eval_keys = gp.stage_settings(tools, "eval")
        except gp.PipelineError as e:
            raise UsageError(str(e)) from None
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2

    t_all = time.monotonic()
    runs = [run_seed(a, s, tools, eval_keys) for s in seeds]

    record = record_dir(a)
    say(f"== record → {record}")
    cmd = [python, os.path.join(gp.SCRIPTS_DIR, "make_record.py"), "--out", record, "--name", a["name"],
           "--author", a["author"], "--github-id", a["github_id"], "--track", a["track"], "--config", a["config"],
           "--what-changed", a["what_changed"], "--date", a["date"]]
    cmd += [x for r in runs for x in ("--seed-run", f"{r.seed}={r.run_dir.path}")] + a["extra"]
    rc = subprocess.run(cmd).returncode
    failed = [f"{r.seed}:{r.failed_stage}" for r in runs if r.failed_stage]
    say("")
    say(f"runs:    {a['runs_root']}/{a['date']}_{a['name']}_seed{{{','.join(str(s) for s in seeds)}}}")
    if rc != 2:
        say(f"record:  {record} (README.md, submission.json, logs, plots)")
    if failed:
        say(f"failed:  {' '.join(failed)} (seed:stage)")
    say(f"time:    {time.monotonic() - t_all:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
