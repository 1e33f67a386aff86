"""tests/scripts/test_significance.py — scripts/significance.py against scipy.stats.

Our t distribution (incomplete beta, no scipy) and t statistics must equal scipy's
ttest_1samp / ttest_ind(equal_var=False) with alternative='less' (our t is scipy's negated:
positive means the candidate is better), on random and edge cases.
"""
import io
import json
import math
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import significance as S  # noqa: E402

NATS_PER_BPB = math.log(2) * 3.72663  # sp8192


def close(a, b, rel=1e-9, abs_=1e-14):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)


class StudentT(unittest.TestCase):
    def test_sf_matches_scipy(self):
        rng = np.random.default_rng(1)
        worst = 0.0
        for _ in range(3000):
            df = float(rng.choice([rng.uniform(0.5, 5), rng.uniform(5, 60), rng.uniform(60, 2000)]))
            t = float(rng.normal() * rng.choice([0.01, 0.5, 3, 30, 300]))
            ours, ref = S.t_sf(t, df), float(stats.t.sf(t, df))
            worst = max(worst, abs(ours - ref) / max(ref, 1e-300))
            self.assertTrue(close(ours, ref, rel=1e-9, abs_=1e-300), f"t={t} df={df}: {ours} vs {ref}")
        self.assertLess(worst, 1e-9)

    def test_integer_df_and_symmetry(self):
        for df in (1, 2, 3, 4, 10, 29):
            for t in (-12.0, -2.5, -0.3, 0.0, 0.3, 2.5, 12.0):
                self.assertTrue(close(S.t_sf(t, df), float(stats.t.sf(t, df))), (t, df))
                self.assertTrue(close(S.t_cdf(t, df), float(stats.t.cdf(t, df))), (t, df))
        self.assertEqual(S.t_sf(0.0, 3), 0.5)
        self.assertEqual(S.t_sf(math.inf, 3), 0.0)
        self.assertEqual(S.t_sf(-math.inf, 3), 1.0)

    def test_betainc_matches_scipy(self):
        from scipy.special import betainc
        for a, b, x in ((0.5, 0.5, 0.3), (1.5, 0.5, 0.99), (10, 0.5, 0.01), (100, 0.5, 0.999), (2, 3, 0.5)):
            self.assertTrue(close(S.betainc(a, b, x), float(betainc(a, b, x))), (a, b, x))


class OneSample(unittest.TestCase):
    def check(self, cand, best, delta=0.005):
        r = S.test_improvement(cand, best, min_delta_nats=delta)
        ref = stats.ttest_1samp(np.array(cand), best - delta, alternative="less")
        self.assertEqual(r["test"], "one-sample")
        self.assertTrue(close(r["t"], -float(ref.statistic)), (r["t"], ref.statistic))
        self.assertTrue(close(r["p"], float(ref.pvalue), abs_=1e-300), (r["p"], ref.pvalue))
        self.assertEqual(r["df"], len(cand) - 1)
        self.assertTrue(close(r["mean"], float(np.mean(cand)), rel=1e-13))
        self.assertTrue(close(r["std"], float(np.std(cand, ddof=1)), rel=1e-11))
        self.assertEqual(r["significant"], bool(ref.pvalue < 0.01))
        return r

    def test_random(self):
        rng = np.random.default_rng(7)
        for n in (2, 2, 3, 3, 3, 4, 5, 8, 20):
            for _ in range(5):
                cand = list(2.80 + rng.normal(0, rng.choice([1e-4, 1e-3, 1e-2]), n))
                best = 2.80 + float(rng.normal(0, 0.01))
                self.check(cand, best)

    def test_tiny_n_and_clear_improvement(self):
        r = self.check([2.7900, 2.7903], 2.8000)
        self.assertTrue(r["p"] < 0.05)
        r = self.check([2.7900, 2.7902, 2.7901], 2.8000)  # ~0.01 nats better, tight: significant
        self.assertTrue(r["significant"])
        self.assertTrue(r["t"] > 0)
        self.assertIn("SIGNIFICANT", r["verdict"])

    def test_improvement_below_threshold_is_not_significant(self):
        # 0.003 nats better, however tight, is below 0.005: t < 0, p > 0.5.
        r = self.check([2.7970, 2.79701, 2.79699], 2.8000)
        self.assertFalse(r["significant"])
        self.assertLess(r["t"], 0)
        self.assertGreater(r["p"], 0.5)
        self.assertIn("NOT significant", r["verdict"])

    def test_tiny_p(self):
        r = self.check([2.70, 2.7000001, 2.6999999, 2.70000005], 2.80)
        self.assertLess(r["p"], 1e-8)

    def test_zero_variance(self):
        # All seeds equal: the t-test is degenerate; as scipy: ±inf, p 0 or 1, NaN at the threshold.
        # (2.75 is exact in binary, so scipy's mean is exact too and its variance exactly 0.)
        for best, t, p in ((2.76, math.inf, 0.0), (2.754, -math.inf, 1.0)):
            r = S.test_improvement([2.75, 2.75, 2.75], best)
            ref = stats.ttest_1samp([2.75, 2.75, 2.75], best - 0.005, alternative="less")
            self.assertEqual((r["t"], r["p"]), (t, p))
            self.assertEqual((-float(ref.statistic), float(ref.pvalue)), (t, p))
            self.assertIn("zero variance", r["verdict"])
        # Equal values that are not exact in binary: still exactly zero variance here (scipy's
        # rounding gives a ~1e-16 std and t ~ 1e13 instead).
        r = S.test_improvement([2.79, 2.79, 2.79], 2.81)
        self.assertEqual((r["std"], r["t"], r["p"]), (0.0, math.inf, 0.0))
        r = S.test_improvement([2.0, 2.0], 2.5, min_delta_nats=0.5)
        self.assertTrue(math.isnan(r["t"]) and math.isnan(r["p"]))
        self.assertFalse(r["significant"])

    def test_single_seed_list_baseline_is_a_number(self):
        a = S.test_improvement([2.79, 2.791, 2.7905], [2.80])
        b = S.test_improvement([2.79, 2.791, 2.7905], 2.80)
        self.assertEqual((a["t"], a["p"], a["df"]), (b["t"], b["p"], b["df"]))
        self.assertIn("single seed", a["verdict"])


class Welch(unittest.TestCase):
    def check(self, cand, base, delta=0.005):
        r = S.test_improvement(cand, base, min_delta_nats=delta)
        ref = stats.ttest_ind(np.array(cand), np.array(base) - delta, equal_var=False, alternative="less")
        self.assertEqual(r["test"], "welch")
        self.assertTrue(close(r["t"], -float(ref.statistic)), (r["t"], ref.statistic))
        self.assertTrue(close(r["p"], float(ref.pvalue), abs_=1e-300), (r["p"], ref.pvalue))
        self.assertTrue(close(r["df"], float(ref.df)), (r["df"], ref.df))
        self.assertTrue(close(r["baseline_std"], float(np.std(base, ddof=1)), rel=1e-11))
        return r

    def test_random_unequal_sizes_and_variances(self):
        rng = np.random.default_rng(11)
        for n1, n2 in ((2, 2), (3, 3), (3, 5), (5, 2), (10, 3), (4, 12)):
            for _ in range(6):
                s1, s2 = rng.choice([1e-4, 1e-3, 5e-3], 2)
                cand = list(2.79 + rng.normal(0, s1, n1))
                base = list(2.80 + rng.normal(0, s2, n2))
                r = self.check(cand, base)
                self.assertEqual(r["n"], n1)
                self.assertEqual(r["n_baseline"], n2)

    def test_records_style_example(self):
        # Shape of R/2026-03-25's comparison: 3 new seeds vs 3 old, ~0.016 nats apart.
        r = self.check([1.9001, 1.9012, 1.8993], [1.9170, 1.9158, 1.9181])
        self.assertTrue(r["significant"])
        self.assertLess(r["df"], 4)

    def test_one_side_zero_variance(self):
        self.check([2.79, 2.79, 2.79], [2.80, 2.801, 2.799])
        self.check([2.79, 2.7905, 2.7895], [2.80, 2.80])

    def test_both_zero_variance(self):
        r = S.test_improvement([2.79, 2.79], [2.80, 2.80, 2.80])
        self.assertEqual((r["t"], r["p"]), (math.inf, 0.0))
        self.assertTrue(r["significant"])


class Units(unittest.TestCase):
    def test_threshold_in_bpb(self):
        # 0.005 nats ≈ 0.00194 bpb for sp8192 (rules-and-eval.md §1.4).
        r = S.test_improvement([1.08, 1.081], 1.09, unit="bpb", nats_per_bpb=NATS_PER_BPB)
        self.assertAlmostEqual(r["min_delta"], 0.00194, places=5)
        self.assertAlmostEqual(r["min_delta"], 0.005 / (math.log(2) * 3.72663), places=15)

    def test_bpb_and_nats_give_the_same_test(self):
        rng = np.random.default_rng(3)
        for _ in range(20):
            bpb = list(1.08 + rng.normal(0, 0.0008, 3))
            base = list(1.085 + rng.normal(0, 0.0008, 3))
            a = S.test_improvement(bpb, base, unit="bpb", nats_per_bpb=NATS_PER_BPB)
            b = S.test_improvement([v * NATS_PER_BPB for v in bpb], [v * NATS_PER_BPB for v in base],
                                   unit="nats", nats_per_bpb=NATS_PER_BPB)
            self.assertTrue(close(a["t"], b["t"], rel=1e-8), (a["t"], b["t"]))
            self.assertTrue(close(a["p"], b["p"], rel=1e-7), (a["p"], b["p"]))
            self.assertTrue(close(a["delta_nats"], b["delta_nats"], rel=1e-9, abs_=1e-15))
            self.assertTrue(close(a["delta_bpb"], b["delta_bpb"], rel=1e-9, abs_=1e-15))
            self.assertTrue(close(a["delta_bpb"], a["delta_nats"] / NATS_PER_BPB, rel=1e-12))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "nats_per_bpb"):
            S.test_improvement([1.08, 1.081], 1.09, unit="bpb")
        with self.assertRaisesRegex(ValueError, "unit"):
            S.test_improvement([1.08, 1.081], 1.09, unit="bits")
        with self.assertRaisesRegex(ValueError, "not a finite number"):
            S.test_improvement([1.08, float("nan")], 1.09)


class Refusals(unittest.TestCase):
    def test_n_below_two(self):
        for cand in ([], [2.79]):
            with self.assertRaisesRegex(ValueError, r"at least 2"):
                S.test_improvement(cand, 2.80)
        with self.assertRaisesRegex(ValueError, "at least 2"):
            S.test_improvement([2.79], [2.80, 2.81])


def write_record(path, seeds, ratio=NATS_PER_BPB, failed=()):
    """A submission.json as make_record.py writes it: {seed: {status, val_bpb, val_loss}}."""
    os.makedirs(path)
    results = {str(s): {"status": "ok", "val_bpb": v, "val_loss": v * ratio} for s, v in seeds.items()}
    for s in failed:
        results[str(s)] = {"status": "FAILED", "reasons": ["no eval.json"]}
    vals = list(seeds.values()) or [1.0]
    with open(os.path.join(path, "submission.json"), "w") as f:
        json.dump({"val_bpb": sum(vals) / len(vals), "val_loss": sum(vals) / len(vals) * ratio,
                   "seed_results": results}, f)
    return path


def load_json(path):
    with open(path) as f:
        return json.load(f)


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = S.main(list(argv))
    return code, out.getvalue(), err.getvalue()


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()

    def tearDown(self):
        import shutil
        shutil.rmtree(self.tmp)

    def test_against_a_number_in_bpb_and_nats(self):
        bpb = {42: 1.0800, 1337: 1.0803, 2025: 1.0801}
        rec = write_record(os.path.join(self.tmp, "new"), bpb, failed=[7])
        out_json = os.path.join(self.tmp, "sig.json")
        code, out, err = run_cli(rec, "--best", "1.0850", "--unit", "bpb", "--json", out_json)
        self.assertEqual(code, 0, err)
        ref = stats.ttest_1samp([v * NATS_PER_BPB for v in bpb.values()], 1.0850 * NATS_PER_BPB - 0.005,
                                alternative="less")
        saved = load_json(out_json)
        self.assertTrue(close(saved["t"], -float(ref.statistic), rel=1e-8))
        self.assertTrue(close(saved["p"], float(ref.pvalue), rel=1e-7))
        self.assertEqual(saved["n"], 3)
        self.assertEqual(saved["failed_seeds"], ["7"])
        self.assertIn("FAILED, left out: 7", out)
        self.assertIn("SIGNIFICANT", out)
        # The same best in nats gives the same verdict.
        code2, out2, _ = run_cli(rec, "--best", str(1.0850 * NATS_PER_BPB))
        self.assertEqual(code2, 0)
        # Not enough improvement: exit 1.
        code3, out3, _ = run_cli(rec, "--best", "1.0815", "--unit", "bpb")
        self.assertEqual(code3, 1)
        self.assertIn("NOT significant", out3)

    def test_against_a_record_folder_is_welch(self):
        new = write_record(os.path.join(self.tmp, "new"), {42: 1.0800, 1337: 1.0806, 2025: 1.0797})
        old = write_record(os.path.join(self.tmp, "old"), {1: 1.0851, 2: 1.0847, 3: 1.0858})
        out_json = os.path.join(self.tmp, "sig.json")
        code, out, err = run_cli(new, "--best", old, "--json", out_json)
        ref = stats.ttest_ind([v * NATS_PER_BPB for v in (1.0800, 1.0806, 1.0797)],
                              [v * NATS_PER_BPB - 0.005 for v in (1.0851, 1.0847, 1.0858)],
                              equal_var=False, alternative="less")
        saved = load_json(out_json)
        self.assertEqual(saved["test"], "welch")
        self.assertTrue(close(saved["p"], float(ref.pvalue), rel=1e-7))
        self.assertTrue(close(saved["df"], float(ref.df), rel=1e-8))
        self.assertEqual(code, 0 if ref.pvalue < 0.01 else 1)

    def test_refuses_one_seed(self):
        rec = write_record(os.path.join(self.tmp, "new"), {42: 1.08}, failed=[1337, 2025])
        code, out, err = run_cli(rec, "--best", "1.09", "--unit", "bpb")
        self.assertEqual(code, 2)
        self.assertIn("1 successful seed(s) (2 failed)", err)
        self.assertIn("at least 2", err)
        self.assertEqual(out, "")

    def test_refuses_nats_across_tokenizers(self):
        new = write_record(os.path.join(self.tmp, "new"), {42: 1.08, 1: 1.081})
        old = write_record(os.path.join(self.tmp, "old"), {1: 1.09, 2: 1.091}, ratio=math.log(2) * 2.43593)
        code, _, err = run_cli(new, "--best", old)
        self.assertEqual(code, 2)
        self.assertIn("--unit bpb", err)
        code, _, err = run_cli(new, "--best", old, "--unit", "bpb")
        self.assertIn(code, (0, 1), err)

    def test_bad_inputs(self):
        code, _, err = run_cli(os.path.join(self.tmp, "nope"), "--best", "1.0")
        self.assertEqual(code, 2)
        self.assertIn("no submission.json", err)
        code, _, err = run_cli(self.tmp, "--best", "not-a-dir")
        self.assertEqual(code, 2)
        self.assertIn("neither a number nor a record folder", err)
        bad = os.path.join(self.tmp, "bad")
        os.makedirs(bad)
        with open(os.path.join(bad, "submission.json"), "w") as f:
            f.write('{"seed_results": {"1": {"val_bpb": "x"}}}')
        code, _, err = run_cli(bad, "--best", "1.0")
        self.assertEqual(code, 2)
        self.assertIn("seed_results['1'].val_bpb", err)


if __name__ == "__main__":
    unittest.main()
