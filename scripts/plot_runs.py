#!/usr/bin/env python3
"""scripts/plot_runs.py — loss curves of golf-train runs, several runs overlaid, as PNG (headless).

Reads each run directory's metrics.jsonl (written by train/trainer.cpp), one JSON object a line:
  {"event":"train","step","train_loss","train_time_ms","step_avg_ms","tokens_per_s","lr_mul","looping"}
  {"event":"val","step","val_loss","val_bpb","train_time_ms","eval_time_ms","looping"}
Other events (post_ema, checkpoint, calibration, …) are ignored. Writes two PNGs:
  curves_step.png   train loss and val bpb against the optimizer step
  curves_time.png   the same against training time (seconds on the train clock)
Train loss is in nats/token; it is shown in bpb (divided by the run's val_loss/val_bpb ratio) when
every plotted run has a val event to take the ratio from, and in nats otherwise.

CLI:  plot_runs.py RUN_DIR[=LABEL] ... --out DIR [--title TEXT]
Import: load_run(run_dir, label=None) -> Run;  plot_runs(runs, out_dir, title=None) -> [png paths]
A missing or malformed metrics.jsonl is an error naming the file and line (nothing is written).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PLOT_FILES = ("curves_step.png", "curves_time.png")


class MetricsError(Exception):
    pass


@dataclass
class Run:
    label: str
    path: str
    train: list = field(default_factory=list)  # (step, train_time_s, train_loss_nats)
    val: list = field(default_factory=list)    # (step, train_time_s, val_loss, val_bpb)

    @property
    def nats_per_bpb(self) -> float | None:
        """val_loss / val_bpb of the last val event: ln2 · bytes/tokens of the validation split."""
        for _, _, loss, bpb in reversed(self.val):
            if bpb > 0:
                return loss / bpb
        return None


def _number(path, lineno, event, key):
    v = event.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise MetricsError(f"{path}:{lineno}: '{event.get('event')}' event has no numeric {key!r} (got {v!r})")
    return float(v)


def load_run(run_dir: str, label: str | None = None) -> Run:
    path = os.path.join(run_dir, "metrics.jsonl")
    run = Run(label=label or os.path.basename(os.path.normpath(run_dir)), path=run_dir)
    try:
        f = open(path)
    except OSError as e:
        raise MetricsError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line.strip())
            except json.JSONDecodeError as e:
                raise MetricsError(f"{path}:{lineno}: malformed JSON: {e}") from None
            if not isinstance(event, dict):
                raise MetricsError(f"{path}:{lineno}: not a JSON object")
            kind = event.get("event")
            if kind == "train":
                run.train.append((_number(path, lineno, event, "step"),
                                  _number(path, lineno, event, "train_time_ms") / 1000.0,
                                  _number(path, lineno, event, "train_loss")))
            elif kind == "val":
                run.val.append((_number(path, lineno, event, "step"),
                                _number(path, lineno, event, "train_time_ms") / 1000.0,
                                _number(path, lineno, event, "val_loss"),
                                _number(path, lineno, event, "val_bpb")))
    if not run.train and not run.val:
        raise MetricsError(f"{path}: no train or val events")
    return run


def plot_runs(runs: list[Run], out_dir: str, title: str | None = None) -> list[str]:
    """Writes PLOT_FILES into out_dir (created if needed); returns their paths."""
    if not runs:
        raise MetricsError("no runs to plot")
    ratios = [r.nats_per_bpb for r in runs]
    in_bpb = all(x is not None for x in ratios)
    train_unit = "bpb" if in_bpb else "nats/token"
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for axis, fname, xlabel in ((0, PLOT_FILES[0], "step"), (1, PLOT_FILES[1], "training time (s)")):
        fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(12, 4.5))
        for run, ratio in zip(runs, ratios):
            color = None
            if run.train:
                xs = [p[axis] for p in run.train]
                ys = [p[2] / ratio if in_bpb else p[2] for p in run.train]
                (line,) = ax_train.plot(xs, ys, label=run.label, linewidth=1.2)
                color = line.get_color()
            if run.val:
                xs = [p[axis] for p in run.val]
                ys = [p[3] for p in run.val]
                ax_val.plot(xs, ys, marker="o", markersize=3, label=run.label, linewidth=1.2, color=color)
        ax_train.set_title(f"train loss ({train_unit})")
        ax_val.set_title("validation bpb")
        for ax in (ax_train, ax_val):
            ax.set_xlabel(xlabel)
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
                _zoom(ax)
        ax_train.set_ylabel(train_unit)
        ax_val.set_ylabel("bpb")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        path = os.path.join(out_dir, fname)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _zoom(ax):
    """Clip the y range to the interesting part: early losses are far above the rest."""
    ys = sorted(y for line in ax.lines for y in line.get_ydata() if math.isfinite(y))
    if len(ys) < 4:
        return
    lo, hi = ys[0], ys[int(0.9 * (len(ys) - 1))]
    if hi > lo:
        pad = 0.08 * (hi - lo)
        ax.set_ylim(lo - pad, hi + 3 * pad)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR[=LABEL]", help="golf-train run directories")
    ap.add_argument("--out", required=True, help="directory for the PNGs")
    ap.add_argument("--title", help="figure title")
    args = ap.parse_args(argv)
    try:
        runs = []
        for spec in args.runs:
            run_dir, _, label = spec.partition("=")
            runs.append(load_run(run_dir, label or None))
        paths = plot_runs(runs, args.out, args.title)
    except MetricsError as e:
        print(f"plot_runs.py: error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
