#!/usr/bin/env python3
"""The GPU kit's bookkeeping (scripts/gpu/check.sh calls it; standard library only).

  report.py row ROWS_DIR NAME STATUS SUMMARY [KEY=VALUE ...]   record one row (JSON file per row)
  report.py train-log LOG            golf-train's log → KEY=VALUE lines (ms/step, tokens/s, memory, breakdown)
  report.py gtest LOG                a gtest run's output → STATUS and the test names per status
  report.py eval-json FILE           golf-eval's eval.json → KEY=VALUE lines (tokens/s, compliance)
  report.py json-get FILE KEY...     values of top-level keys of a JSON file, one per line
  report.py finish ROWS_DIR --json OUT [--md OUT] [--meta KEY=VALUE ...]
                                     the table (printed last by check.sh) and the report files

Statuses: PASS, FAIL, OOM, TIMEOUT (a check or a run that went wrong), OK (a benchmark ran; its
figures are in the row), SKIP (not run here: CPU mode, no time left, not applicable).
"""
from __future__ import annotations

import json
import os
import re
import sys

STATUSES = ("PASS", "FAIL", "OOM", "TIMEOUT", "OK", "SKIP")


def parse_value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def cmd_row(rows_dir: str, name: str, status: str, summary: str, *kvs: str) -> None:
    if status not in STATUSES:
        raise SystemExit(f"report.py: status {status!r} is not one of {STATUSES}")
    os.makedirs(rows_dir, exist_ok=True)
    fields = {}
    for kv in kvs:
        k, sep, v = kv.partition("=")
        if not sep:
            raise SystemExit(f"report.py: {kv!r} is not KEY=VALUE")
        fields[k] = parse_value(v)
    order = len([f for f in os.listdir(rows_dir) if f.endswith(".json")])
    row = {"row": name, "status": status, "summary": summary, "order": order, **fields}
    path = os.path.join(rows_dir, f"{order:03d}-{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(row, f)
    os.replace(path + ".tmp", path)


STEP_RE = re.compile(r"^step:(\d+)/\d+ train_loss:(\S+) train_time:(\d+)ms step_avg:([\d.]+)ms")
PEAK_RE = re.compile(r"^peak memory allocated: (\d+) MiB reserved: (\d+) MiB")
BREAK_RE = re.compile(r"^step_breakdown: forward:([\d.]+)ms backward:([\d.]+)ms optimizer:([\d.]+)ms comm:([\d.]+)ms steps:(\d+)")
MICRO_RE = re.compile(r"micro_batch_tokens:(\d+)")
ACCUM_RE = re.compile(r"grad_accum_steps:(\d+)")


def cmd_train_log(path: str) -> None:
    """Steady-state ms/step = (train_time at the last step − at step k) / (last − k), k = 2 (or the
    first logged step when fewer): the first timed steps after warm-up still pay one-off costs."""
    steps, out = [], {}
    tokens_per_step = None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if m := STEP_RE.match(line):
                steps.append((int(m[1]), int(m[3]), float(m[4]), m[2]))
            elif m := PEAK_RE.match(line):
                out["peak_allocated_mib"], out["peak_reserved_mib"] = int(m[1]), int(m[2])
            elif m := BREAK_RE.match(line):
                for k, v in zip(("forward_ms", "backward_ms", "optimizer_ms", "comm_ms"), m.groups()[:4]):
                    out[k] = float(v)
                out["profiled_steps"] = int(m[5])
            if (m := MICRO_RE.search(line)) and (a := ACCUM_RE.search(line)):
                tokens_per_step = int(m[1]) * int(a[1])
    if steps:
        last_step, last_ms, step_avg, loss = steps[-1]
        out.update(steps=last_step, step_avg_ms=step_avg, train_loss=loss)
        base = next((s for s in steps if s[0] >= 2 and s[0] < last_step), None)
        if base:
            steady = (last_ms - base[1]) / (last_step - base[0])
            out["ms_per_step"] = round(steady, 2)
            out["steady_from_step"] = base[0]
        else:
            out["ms_per_step"] = step_avg
        if tokens_per_step and out["ms_per_step"] > 0:
            out["tokens_per_step"] = tokens_per_step
            out["tokens_per_s"] = round(tokens_per_step / (out["ms_per_step"] / 1000))
    for k, v in out.items():
        print(f"{k}={v}")


def cmd_gtest(path: str) -> None:
    """PASS if ≥ 1 test passed and none failed; SKIP if all skipped; FAIL otherwise."""
    passed, failed, skipped = [], [], []
    with open(path, errors="replace") as f:
        for line in f:
            if m := re.match(r"^\[\s+OK \] (\S+)", line):
                passed.append(m[1])
            elif m := re.match(r"^\[\s+FAILED\s+\] (\S+\.\S+)", line):
                failed.append(m[1])
            elif m := re.match(r"^\[\s+SKIPPED \] (\S+\.\S+)", line):
                skipped.append(m[1])
    failed = sorted(set(failed))
    status = "FAIL" if failed or not (passed or skipped) else "PASS" if passed else "SKIP"
    print(status)
    print(f"passed={len(passed)} failed={len(failed)} skipped={len(skipped)}" + (f" failing={','.join(failed)}" if failed else ""))


def cmd_eval_json(path: str) -> None:
    with open(path) as f:
        e = json.load(f)
    out = {}
    for proto in ("sliding", "ttt", "plain"):
        r = e.get("results", {}).get(proto)
        if r and r.get("seconds"):
            out[f"{proto}_tokens"] = r["tokens"]
            out[f"{proto}_seconds"] = round(r["seconds"], 2)
            out[f"{proto}_tokens_per_s"] = round(r["tokens"] / r["seconds"])
            out[f"{proto}_bpb"] = round(r["val_bpb"], 5)
    checks = e.get("compliance", [])
    out["compliance_checks"] = len(checks)
    out["compliance_failed"] = ",".join(c["check"] for c in checks if not c["passed"]) or "none"
    out["device"] = e.get("device", "?")
    for k, v in out.items():
        print(f"{k}={v}")


def cmd_json_get(path: str, *keys: str) -> None:
    with open(path) as f:
        d = json.load(f)
    for k in keys:
        print(d.get(k, ""))


# Which figures the table shows per row (the JSON keeps every field).
SHOW = ("ms_per_step", "tokens_per_s", "peak_allocated_mib", "peak_reserved_mib", "forward_ms", "backward_ms",
        "optimizer_ms", "comm_ms", "ratio_golf_over_twin", "quantize_seconds", "bytes_model", "sliding_tokens_per_s",
        "ttt_tokens_per_s", "first_step_s", "seconds")


def cmd_finish(rows_dir: str, *args: str) -> None:
    json_out = md_out = None
    meta = {}
    it = iter(args)
    for a in it:
        if a == "--json":
            json_out = next(it)
        elif a == "--md":
            md_out = next(it)
        elif a == "--meta":
            k, _, v = next(it).partition("=")
            meta[k] = parse_value(v)
        else:
            raise SystemExit(f"report.py finish: unknown argument {a}")
    rows = []
    if os.path.isdir(rows_dir):
        for name in sorted(os.listdir(rows_dir)):
            if name.endswith(".json"):
                with open(os.path.join(rows_dir, name)) as f:
                    rows.append(json.load(f))
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    report = {**meta, "counts": counts, "rows": rows}
    lines = []
    w = max([len(r["row"]) for r in rows] + [4])
    lines.append(f"{'row':<{w}}  {'status':<7}  summary")
    lines.append(f"{'-' * w}  {'-' * 7}  {'-' * 40}")
    for r in rows:
        figs = "  ".join(f"{k}={r[k]}" for k in SHOW if k in r)
        lines.append(f"{r['row']:<{w}}  {r['status']:<7}  {r['summary']}" + (f"  [{figs}]" if figs else ""))
    lines.append("totals: " + "  ".join(f"{s}={n}" for s, n in counts.items() if n))
    table = "\n".join(lines)
    if json_out:
        with open(json_out + ".tmp", "w") as f:
            json.dump(report, f, indent=2)
        os.replace(json_out + ".tmp", json_out)
    if md_out:
        head = "\n".join(f"- {k}: {v}" for k, v in meta.items())
        with open(md_out + ".tmp", "w") as f:
            f.write(f"# GPU kit report\n\n{head}\n\n```\n{table}\n```\n")
        os.replace(md_out + ".tmp", md_out)
    print(table)


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    fns = {"row": cmd_row, "train-log": cmd_train_log, "gtest": cmd_gtest, "eval-json": cmd_eval_json,
           "json-get": cmd_json_get, "finish": cmd_finish}
    if cmd not in fns:
        raise SystemExit(f"report.py: unknown command {cmd}\n{__doc__}")
    fns[cmd](*args)


if __name__ == "__main__":
    main()
