"""scripts/golf_pipeline.py — what the golf scripts share: the stage tools, the run directory, the
settings each stage reads, the tools' JSON, and typed records of what ran.

Used by scripts/record.py (several seeds → a record folder), scripts/ablate.py (variants × seeds),
scripts/make_record.py and scripts/significance.py. Standard library only, so record.py runs under
any Python 3.9+; matplotlib and the rest stay in the scripts that draw.

  tools = Tools.from_build_dir(build_dir())         # build/{train/golf-train,pack/golf-pack,eval/golf-eval}
  keys = stage_settings(tools, "eval")              # golf-train --print-config --stage eval --json
  sets = eval_sets(json.load(open(run / "config.json")), keys)   # ["DATA_PATH=...", "TTT_LR=0.005", ...]
  run = RunDir(path); run.trained, run.packed, run.evaluated

The settings of each stage are declared once, in core/config_fields.h (its stages column); this module
reads them from golf-train instead of keeping its own list (tests/scripts/test_golf_pipeline.py
checks against the real binary when it is built).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Optional

SCRIPTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS_DIR)

# Settings set per run by the drivers (record.py, ablate.py), never by the user's --set.
PER_RUN_KEYS = ("SEED", "RUN_ID", "OUTPUT_DIR")
# Names of runs, records and variants: letters, digits, '.', '_', '-'.
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
# Eval settings that golf-eval's command line decides (--ttt), not the trained run's config.json.
EVAL_KEYS_CHOSEN_BY_COMMAND_LINE = ("TTT_ENABLED",)


class PipelineError(Exception):
    """A tool or an input that the pipeline cannot use; the message names it."""


# ---- the stage tools --------------------------------------------------------------------------------

def build_dir(explicit: Optional[str] = None) -> str:
    """The build folder: explicit, else $GOLF_BUILD_DIR, else ROOT/build."""
    return explicit or os.environ.get("GOLF_BUILD_DIR") or os.path.join(ROOT, "build")


def default_python() -> str:
    """$GOLF_PYTHON, else the pinned venv (scripts/setup.sh) under $GOLF_CACHE or ~/.cache/golf."""
    cache = os.environ.get("GOLF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "golf")
    return os.environ.get("GOLF_PYTHON") or os.path.join(cache, "venv-torch-2.11.0", "bin", "python")


@dataclass(frozen=True)
class Tools:
    """Paths of the three stage binaries."""
    train: str
    pack: str
    eval: str

    @classmethod
    def from_build_dir(cls, build: str) -> "Tools":
        return cls(train=os.path.join(build, "train", "golf-train"), pack=os.path.join(build, "pack", "golf-pack"),
                   eval=os.path.join(build, "eval", "golf-eval"))

    def missing(self) -> list[str]:
        """The binaries that are not executable files, in stage order."""
        return [t for t in (self.train, self.pack, self.eval) if not os.access(t, os.X_OK)]


# ---- settings by stage -----------------------------------------------------------------------------

def tool_json(cmd: list[str]):
    """What a golf tool prints as JSON (a settings table, a report schema); one PipelineError naming
    the command if it cannot run, fails or prints something else."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PipelineError(f"cannot run {' '.join(cmd)}: {e}") from None
    if p.returncode != 0:
        raise PipelineError(f"{' '.join(cmd)} failed (exit {p.returncode}): {(p.stderr or p.stdout).strip()}")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise PipelineError(f"{' '.join(cmd)}: output is not JSON ({e})") from None


_stage_cache: dict[tuple[str, str], list[str]] = {}


def stage_settings(tools: Tools, stage: str) -> list[str]:
    """The names of the settings `stage` reads (data | model | train | quant | eval), sorted by name as
    golf-train prints them, from `golf-train --print-config --stage STAGE --json` (core/config_fields.h's
    stage table)."""
    key = (tools.train, stage)
    if key not in _stage_cache:
        cmd = [tools.train, "--print-config", "--stage", stage, "--json"]
        table = tool_json(cmd)
        if not isinstance(table, dict) or not all(isinstance(v, dict) and stage in v.get("stages", [])
                                                   for v in table.values()):
            raise PipelineError(f"{' '.join(cmd)}: expected {{KEY: {{value, stages, help}}}} of stage {stage}")
        _stage_cache[key] = list(table)
    return list(_stage_cache[key])


def setting_text(value) -> str:
    """A config.json value as golf's --set text: strings as they are, numbers as JSON writes them."""
    return value if isinstance(value, str) else json.dumps(value)


def eval_sets(run_config: dict, eval_keys: list[str]) -> list[str]:
    """The trained run's evaluation settings as golf-eval --set KEY=VALUE texts, in config.json order:
    the keys of the eval stage that the run's config.json holds, except those golf-eval's command line
    decides (TTT_ENABLED: --ttt)."""
    wanted = set(eval_keys) - set(EVAL_KEYS_CHOSEN_BY_COMMAND_LINE)
    return [f"{k}={setting_text(v)}" for k, v in run_config.items() if k in wanted]


def as_set_args(texts: list[str]) -> list[str]:
    """["K=V", ...] → ["--set", "K=V", ...]."""
    return [a for kv in texts for a in ("--set", kv)]


# ---- the tools' JSON and logs --------------------------------------------------------------------------

# The reports the stages write: golf-pack's RUN/final_model.golf.json and golf-eval's RUN/eval.json.
# Their keys are declared once, by the report structs (pack/golf_pack.h, eval/golf_eval.h), whose
# example `TOOL --print-report-schema` prints; tests/scripts/test_golf_pipeline.py checks every key
# the scripts read against it.

def report_schema(tool: str) -> dict:
    """The example report (every key it can hold) of golf-pack or golf-eval: `TOOL --print-report-schema`."""
    cmd = [tool, "--print-report-schema"]
    schema = tool_json(cmd)
    if not isinstance(schema, dict):
        raise PipelineError(f"{' '.join(cmd)}: expected a JSON object")
    return schema


def key_paths(doc, prefix: str = "") -> set[str]:
    """Every key path of a JSON document: "a", "a.b", "rows[].name" (a list's elements merged)."""
    out: set[str] = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            path = f"{prefix}.{k}" if prefix else k
            out.add(path)
            out |= key_paths(v, path)
    elif isinstance(doc, list):
        for v in doc:
            out |= key_paths(v, prefix + "[]")
    return out


def read_json(path: str):
    """(object, None) or (None, reason): the reason names the file (by its base name) and the problem."""
    try:
        with open(path) as f:
            return json.load(f), None
    except FileNotFoundError:
        return None, f"no {os.path.basename(path)}"
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{os.path.basename(path)}: cannot read: {e}"
    except json.JSONDecodeError as e:
        return None, f"{os.path.basename(path)}: malformed JSON ({e})"


def num(obj, *keys) -> Optional[float]:
    """obj[k1][k2]… as a finite float, or None (missing, not a number, a bool, or not finite)."""
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    if isinstance(obj, bool) or not isinstance(obj, (int, float)) or not math.isfinite(obj):
        return None
    return float(obj)


def mean_std(values) -> tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation of the values that are not None; (None, None) for none,
    (mean, None) for one."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    m = math.fsum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def json_safe(obj):
    """obj with NaN → None and ±inf → "inf"/"-inf", so json.dumps(allow_nan=False) accepts it."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write(path: str, data) -> None:
    """Writes bytes or text to a temporary file beside `path` and renames it into place."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def last_lines(path: str, n: int = 1) -> list[str]:
    """The last n non-blank lines of a log (carriage returns split lines), stripped; [] if unreadable."""
    try:
        with open(path, errors="replace") as f:
            lines = [ln.strip() for ln in f.read().replace("\r", "\n").splitlines() if ln.strip()]
    except OSError:
        return []
    return lines[-n:]


# ---- a run directory ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunDir:
    """A golf-train run directory and what each stage leaves in it."""
    path: str

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def config_json(self) -> str:
        return self.file("config.json")

    @property
    def artifact(self) -> str:
        return self.file("final_model.golf")

    @property
    def pack_report(self) -> str:
        return self.file("final_model.golf.json")

    @property
    def trained(self) -> bool:
        """golf-train finished: the EMA weights and the calibration Hessians are written last."""
        return os.path.isfile(self.file("ema_model.safetensors")) and os.path.isfile(self.file("hessians.safetensors"))

    @property
    def packed(self) -> bool:
        """golf-pack finished: its report is written after the artifact."""
        return os.path.isfile(self.pack_report)

    def evaluated(self, eval_json: str = "eval.json") -> bool:
        return os.path.isfile(self.file(eval_json))

    def read_config(self) -> dict:
        """config.json as a dict; PipelineError naming the file otherwise."""
        cfg, why = read_json(self.config_json)
        if why or not isinstance(cfg, dict):
            raise PipelineError(f"{self.config_json}: {why or 'not a JSON object'}")
        return cfg


# ---- typed records of what ran ------------------------------------------------------------------------

@dataclass
class StageRun:
    """One stage of one run: the command and how it ended (rc None: not run)."""
    stage: str                      # train | pack | eval
    cmd: list[str] = field(default_factory=list)
    rc: Optional[int] = None
    seconds: Optional[float] = None
    skipped: Optional[str] = None   # why it did not run, e.g. "done already (--reuse)"
    stdout: Optional[str] = None    # files the output went to
    stderr: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.skipped is not None or self.rc == 0


@dataclass
class SeedRun:
    """One seed of a record: train → pack → eval in RUN_DIR; failed_stage names the stage that
    ended it (None: all finished or skipped)."""
    seed: int
    run_id: str
    run_dir: RunDir
    stages: list[StageRun] = field(default_factory=list)
    failed_stage: Optional[str] = None
    seconds: Optional[float] = None

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["run_dir"] = self.run_dir.path
        return d
