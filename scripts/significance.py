#!/usr/bin/env python3
"""scripts/significance.py — is a candidate record's improvement over the current best significant?

The challenge's rule (rules-and-eval.md §1.4): a new record must beat the current best by at least
0.005 nats (per token) at p < 0.01; records show it with a one-sided t-test on the per-seed scores.

Hypothesis, exactly (c_i = candidate's per-seed scores, lower is better; B = baseline):
    improvement  D = mean(B) - mean(c)           (positive: the candidate is better)
    H0: D <= min_delta        H1: D > min_delta            (one-sided, level alpha)
  * baseline a number b (or a single seed): one-sample t-test of c against b - min_delta,
        t = (b - min_delta - mean(c)) / (s_c / sqrt(n)),  df = n - 1
    (the same as scipy.stats.ttest_1samp(c, b - min_delta, alternative='less') with t negated);
  * baseline >= 2 per-seed values: Welch's two-sample t-test,
        t = (mean(B) - mean(c) - min_delta) / sqrt(s_c^2/n_c + s_B^2/n_B),
        df = Welch–Satterthwaite
    (scipy.stats.ttest_ind(c, B - min_delta, equal_var=False, alternative='less') with t negated).
  p = P(T_df >= t); significant  <=>  p < alpha.  t > 0 means evidence for an improvement.
  s is the sample standard deviation (ddof=1). Zero variance on both sides makes the test
  degenerate: t = +inf (p = 0) when D > min_delta, -inf (p = 1) when D < min_delta, NaN when equal.
  Fewer than 2 candidate seeds is refused (ValueError; the CLI exits 2).

Units. The threshold is in nats per token; scores may be in nats (val_loss) or bpb (val_bpb), with
  val_loss = val_bpb * ln2 * bytes/tokens  =>  nats_per_bpb = val_loss / val_bpb
taken from the run itself. Testing in bpb with min_delta_nats / nats_per_bpb as the threshold gives
the same t and p as testing in nats when both sides share a tokenizer, and is the only meaningful
comparison when they do not (the CLI refuses nats across different tokens/bytes ratios).

The Student-t distribution is computed here from the regularized incomplete beta function (no
scipy), so tests/scripts/test_significance.py checks it against scipy independently.

CLI:
  significance.py RECORD_DIR --best FLOAT|RECORD_DIR [--unit nats|bpb] [--min-delta 0.005]
                  [--alpha 0.01] [--json OUT]
  RECORD_DIR holds submission.json (make_record.py's, or a challenge record's) with per-seed
  results; FAILED seeds are left out and counted. --best FLOAT is in --unit (default nats).
  Exit: 0 significant, 1 not significant, 2 bad input or fewer than 2 seeds.
Import:
  from significance import test_improvement
  test_improvement(candidate, baseline, min_delta_nats=0.005, alpha=0.01, nats_per_bpb=None,
                   unit="nats") -> dict(t, p, df, mean, std, n, delta, delta_nats, delta_bpb,
                   significant, verdict, ...)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Iterable, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golf_pipeline as gp  # noqa: E402



# ---- Student-t distribution -----------------------------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b) (modified Lentz; Numerical Recipes §6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def betainc(a: float, b: float, x: float, one_minus_x: float | None = None) -> float:
    """Regularized incomplete beta I_x(a, b). Pass 1 - x when it is known more precisely than x."""
    y = 1.0 - x if one_minus_x is None else one_minus_x
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log(y) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, y) / b


def t_sf(t: float, df: float) -> float:
    """P(T >= t) for Student's t with df > 0 degrees of freedom (df may be fractional)."""
    if math.isnan(t) or math.isnan(df):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    t2 = t * t
    # P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2); 1 - x = t^2/(df+t^2) computed without cancellation.
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))
    return tail if t > 0 else 1.0 - tail


def t_cdf(t: float, df: float) -> float:
    """P(T <= t)."""
    return t_sf(-t, df)


# ---- the test -------------------------------------------------------------------------------------

def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2 or max(values) == min(values):
        return (values[0] if n and max(values) == min(values) else mean), 0.0
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


def _as_values(name: str, values: Iterable) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name}: {v!r} is not a finite number")
        out.append(float(v))
    return out


def test_improvement(candidate, baseline, min_delta_nats: float = 0.005, alpha: float = 0.01,
                     nats_per_bpb: float | None = None, unit: str = "nats") -> dict:
    """One-sided test of mean(baseline) - mean(candidate) > min_delta (see the module docstring).

    candidate: per-seed scores (>= 2), lower is better; baseline: a number or per-seed scores; both
    in `unit` ("nats" per token or "bpb"). nats_per_bpb (= val_loss / val_bpb) converts the
    threshold for unit="bpb" (required there) and the reported deltas."""
    if unit not in ("nats", "bpb"):
        raise ValueError(f"unit must be 'nats' or 'bpb', not {unit!r}")
    if nats_per_bpb is not None and not (math.isfinite(nats_per_bpb) and nats_per_bpb > 0):
        raise ValueError(f"nats_per_bpb must be a positive number, not {nats_per_bpb!r}")
    if unit == "bpb" and nats_per_bpb is None:
        raise ValueError("unit='bpb' needs nats_per_bpb (val_loss / val_bpb) to convert the nats threshold")
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
    c = _as_values("candidate", candidate)
    if len(c) < 2:
        raise ValueError(f"the candidate has {len(c)} seed(s): a t-test needs at least 2 "
                         "(the challenge expects 3)")
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        b = _as_values("baseline", [baseline])
        baseline_is_number = True
    else:
        b = _as_values("baseline", baseline)
        if not b:
            raise ValueError("baseline: no values")
        baseline_is_number = False

    to_nats = 1.0 if unit == "nats" else nats_per_bpb
    min_delta = min_delta_nats / to_nats  # threshold in `unit`
    n = len(c)
    mean_c, std_c = _mean_std(c)
    mean_b, std_b = _mean_std(b)
    diff = mean_b - mean_c - min_delta  # > 0 supports H1
    notes = []
    if len(b) >= 2:
        test = "welch"
        va, vb = std_c ** 2 / n, std_b ** 2 / len(b)
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (n - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else math.nan
    else:
        test = "one-sample"
        if not baseline_is_number:
            notes.append("the baseline has a single seed: compared as a fixed number")
        se = std_c / math.sqrt(n)
        df = float(n - 1)
    if se > 0:
        t = diff / se
        p = t_sf(t, df)
    else:
        notes.append("zero variance: the t-test is degenerate")
        t = math.inf if diff > 0 else -math.inf if diff < 0 else math.nan
        p = 0.0 if diff > 0 else 1.0 if diff < 0 else math.nan
    significant = bool(p < alpha)  # NaN compares False

    delta = mean_b - mean_c
    delta_nats = delta * to_nats
    delta_bpb = delta_nats / nats_per_bpb if nats_per_bpb is not None else None
    fmt_p = "nan" if math.isnan(p) else f"{p:.3g}"
    bpb_part = f" = {delta_bpb:.5f} bpb" if delta_bpb is not None else ""
    verdict = (f"{'SIGNIFICANT' if significant else 'NOT significant'}: improvement {delta_nats:+.5f} nats{bpb_part} "
               f"(needs > {min_delta_nats} nats at p < {alpha}); {test} t = {t:.3f}, df = {df:.2f}, p = {fmt_p}; "
               f"candidate {mean_c:.6f} ± {std_c:.6f} {unit} (n = {n}), baseline {mean_b:.6f}"
               + (f" ± {std_b:.6f} (n = {len(b)})" if test == "welch" else "")
               + "".join(f"; {note}" for note in notes))
    return {
        "test": test, "unit": unit, "alpha": alpha,
        "min_delta_nats": min_delta_nats, "min_delta": min_delta,
        "t": t, "df": df, "p": p,
        "n": n, "mean": mean_c, "std": std_c,
        "n_baseline": len(b), "baseline_mean": mean_b, "baseline_std": std_b,
        "delta": delta, "delta_nats": delta_nats, "delta_bpb": delta_bpb,
        "nats_per_bpb": nats_per_bpb,
        "significant": significant, "notes": notes, "verdict": verdict,
    }


# ---- record folders -------------------------------------------------------------------------------

class InputError(Exception):
    pass


def load_record_seeds(record_dir: str) -> dict:
    """Per-seed scores of a record folder's submission.json.

    Returns {"val_bpb": [...], "val_loss": [...] or None, "nats_per_bpb": float or None,
    "seeds": [...], "failed": [...], "file": path}. Understands make_record.py's seed_results
    ({seed: {"status", "val_bpb", "val_loss"}}) and the challenge records' variants (seed_results
    without status; val_loss missing → derived from the top-level val_loss/val_bpb ratio)."""
    path = os.path.join(record_dir, "submission.json")
    try:
        with open(path) as f:
            sub = json.load(f)
    except FileNotFoundError:
        raise InputError(f"{record_dir}: no submission.json (not a record folder)") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: malformed JSON: {e}") from None
    results = sub.get("seed_results")
    if isinstance(results, list):  # [{"seed": S, ...}, ...]
        results = {str(r.get("seed", i)): r for i, r in enumerate(results)}
    if not isinstance(results, dict) or not results:
        raise InputError(f"{path}: no per-seed results (field 'seed_results')")
    top_ratio = None
    if _finite(sub.get("val_loss")) and _finite(sub.get("val_bpb")) and sub["val_bpb"] > 0:
        top_ratio = sub["val_loss"] / sub["val_bpb"]
    seeds, bpb, loss, ratios, failed = [], [], [], [], []
    for seed, r in results.items():
        if not isinstance(r, dict):
            raise InputError(f"{path}: seed_results[{seed!r}] is not an object")
        if str(r.get("status", "ok")).lower() != "ok":
            failed.append(seed)
            continue
        if not _finite(r.get("val_bpb")):
            raise InputError(f"{path}: seed_results[{seed!r}].val_bpb = {r.get('val_bpb')!r} is not a number")
        seeds.append(seed)
        bpb.append(float(r["val_bpb"]))
        if _finite(r.get("val_loss")):
            loss.append(float(r["val_loss"]))
            ratios.append(float(r["val_loss"]) / float(r["val_bpb"]))
        elif top_ratio is not None:
            loss.append(float(r["val_bpb"]) * top_ratio)
            ratios.append(top_ratio)
    ratio = math.fsum(ratios) / len(ratios) if ratios and len(ratios) == len(bpb) else None
    if ratio is not None and (max(ratios) - min(ratios)) > 1e-4 * ratio:
        raise InputError(f"{path}: per-seed val_loss/val_bpb ratios differ ({min(ratios):.6f} … {max(ratios):.6f}): "
                         "seeds were scored on different validation data")
    return {"val_bpb": bpb, "val_loss": loss if ratio is not None else None, "nats_per_bpb": ratio,
            "seeds": seeds, "failed": failed, "file": path}


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def compare_records(record_dir: str, best: str | float, unit: str = "nats", min_delta_nats: float = 0.005,
                    alpha: float = 0.01) -> dict:
    """test_improvement for a record folder against a number (in `unit`) or another record folder."""
    cand = load_record_seeds(record_dir)
    if cand["nats_per_bpb"] is None:
        raise InputError(f"{cand['file']}: per-seed val_loss (or top-level val_loss and val_bpb) needed "
                         "for the tokens/bytes ratio")
    if len(cand["val_bpb"]) < 2:
        raise ValueError(f"{cand['file']}: {len(cand['val_bpb'])} successful seed(s)"
                         + (f" ({len(cand['failed'])} failed)" if cand["failed"] else "")
                         + ": a t-test needs at least 2")
    values = cand["val_loss"] if unit == "nats" else cand["val_bpb"]
    if isinstance(best, (int, float)):
        baseline = float(best)
        source = f"{best} {unit}"
    else:
        base = load_record_seeds(best)
        if unit == "nats":
            if base["val_loss"] is None:
                raise InputError(f"{base['file']}: no val_loss to compare in nats; use --unit bpb")
            r1, r2 = cand["nats_per_bpb"], base["nats_per_bpb"]
            if abs(r1 - r2) > 1e-4 * r1:
                raise InputError(f"{record_dir} and {best} have different tokens/bytes ratios (nats/bpb {r1:.6f} vs "
                                 f"{r2:.6f}: different tokenizer or validation data); nats per token are not "
                                 "comparable, use --unit bpb")
            baseline = base["val_loss"]
        else:
            baseline = base["val_bpb"]
        source = f"{best} ({len(baseline)} seed(s))"
    result = test_improvement(values, baseline, min_delta_nats=min_delta_nats, alpha=alpha,
                              nats_per_bpb=cand["nats_per_bpb"], unit=unit)
    result["record"] = record_dir
    result["best"] = source
    result["seeds"] = cand["seeds"]
    result["failed_seeds"] = cand["failed"]
    if isinstance(best, float) and abs(baseline - result["mean"]) > 0.5:
        note = f"--best {best} is far from the candidate's mean {result['mean']:.4f} {unit}: is --unit right?"
        result["notes"].append(note)
        result["verdict"] += f"; {note}"
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Exit 0: significant; 1: not significant; 2: bad input / n < 2.")
    ap.add_argument("record", help="record folder with submission.json")
    ap.add_argument("--best", required=True, help="current best: a number (in --unit) or a record folder")
    ap.add_argument("--unit", choices=["nats", "bpb"], default="nats",
                    help="unit of the test and of a numeric --best (default nats, the rule's unit)")
    ap.add_argument("--min-delta", type=float, default=0.005, help="required improvement in nats (default 0.005)")
    ap.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    ap.add_argument("--json", help="also write the result as JSON here")
    args = ap.parse_args(argv)
    try:
        best: str | float
        try:
            best = float(args.best)
        except ValueError:
            best = args.best
            if not os.path.isdir(best):
                raise InputError(f"--best {best!r} is neither a number nor a record folder") from None
        result = compare_records(args.record, best, unit=args.unit, min_delta_nats=args.min_delta, alpha=args.alpha)
    except (InputError, ValueError) as e:
        print(f"significance.py: error: {e}", file=sys.stderr)
        return 2
    r = result
    print(f"record     {r['record']}  seeds {', '.join(r['seeds'])}"
          + (f"  (FAILED, left out: {', '.join(r['failed_seeds'])})" if r["failed_seeds"] else ""))
    print(f"best       {r['best']}")
    print(f"candidate  mean {r['mean']:.6f}  std {r['std']:.6f}  n {r['n']}  ({r['unit']})")
    print(f"delta      {r['delta_nats']:+.6f} nats  {r['delta_bpb']:+.6f} bpb  "
          f"(threshold {r['min_delta_nats']} nats = {r['min_delta_nats'] / r['nats_per_bpb']:.6f} bpb)")
    print(f"test       {r['test']}  t {r['t']:.4f}  df {r['df']:.3f}  p {r['p']:.4g}  alpha {r['alpha']}")
    print(r["verdict"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(gp.json_safe(result), f, indent=2)
            f.write("\n")
    return 0 if r["significant"] else 1


if __name__ == "__main__":
    sys.exit(main())
