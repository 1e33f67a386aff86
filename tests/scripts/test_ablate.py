"""tests/scripts/test_ablate.py — scripts/ablate.py: variant specs, summary math, FAILED runs, outputs.

The summary is checked on synthetic per-run results (numpy/scipy as the independent reference);
reading results on fake run directories (tests/scripts/fake_runs.py); the orchestration with
stand-in golf-train/golf-pack/golf-eval (Python scripts in a fake build dir, as in
test_record_sh.py) — the real binaries never run here.
"""
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import unittest
from unittest import mock

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import ablate  # noqa: E402
import fake_runs  # noqa: E402
import significance  # noqa: E402

NPB = fake_runs.NATS_PER_BPB


def run(variant, seed, bpb=None, status="ok", reason=None, bytes_total=1_000_000):
    r = ablate.AblationRun(variant=variant, seed=seed, run_id=f"{variant}_{seed}", run_dir=f"runs/{variant}_{seed}",
                           eval_json=f"runs/{variant}_{seed}/eval.json", status=status, reason=reason)
    if bpb is not None:
        r.val_bpb, r.val_loss, r.bytes_total, r.protocol = bpb, bpb * NPB, bytes_total, "sliding"
    return r


def variants(*specs):
    return ablate.parse_variants(list(specs))


def quiet(fn, *a, **k):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = fn(*a, **k)
    return rc, out.getvalue(), err.getvalue()


class VariantSpecs(unittest.TestCase):
    def test_train_time_specs(self):
        v = ablate.parse_variant("smat_full:SMAT_USE_S=1,SMAT_USE_G=1")
        self.assertEqual(v["name"], "smat_full")
        self.assertIsNone(v["parent"])
        self.assertEqual(v["overrides"], [("SMAT_USE_S", "1"), ("SMAT_USE_G", "1")])
        self.assertEqual(ablate.parse_variant("records")["overrides"], [])
        # a value may hold commas and '='; the list splits only before KEY=
        v = ablate.parse_variant("x:LIST=1,2,3,MODE=a=b,Y=")
        self.assertEqual(v["overrides"], [("LIST", "1,2,3"), ("MODE", "a=b"), ("Y", "")])

    def test_eval_time_specs(self):
        vs, base = variants("smat_full:SMAT_USE_S=1,SMAT_USE_G=1", "lambda0@smat_full:SMAT_ABLATION=lambda0",
                            "reeval@smat_full")
        self.assertEqual(base, "smat_full")
        self.assertEqual(vs[1]["parent"], "smat_full")
        self.assertEqual(vs[1]["overrides"], [("SMAT_ABLATION", "lambda0")])
        self.assertEqual((vs[2]["parent"], vs[2]["overrides"]), ("smat_full", []))

    def test_presets_parse_and_name_config_fields(self):
        # Every setting is one GOLF_<PART>_FIELD(type, member, ...) line; its name is the member upper-cased.
        with open(os.path.join(HERE, "..", "..", "core", "config_fields.h"), encoding="utf-8") as f:
            header = f.read()
        for name, specs in ablate.PRESETS.items():
            vs, base = ablate.parse_variants(specs)
            self.assertEqual(base, "baseline", name)
            for v in vs:
                self.assertIsNone(v["parent"], v["spec"])
                for key, _ in v["overrides"]:
                    self.assertRegex(header, rf"\nGOLF_[A-Z]+_FIELD\([\w:]+, {key.lower()}, ",
                                     f"{name}: {key} is not a golf config field")
        names = [v["name"] for v in ablate.parse_variants(ablate.PRESETS["frontier_0427"])[0]]
        for row in ("no_sparse_gate", "no_lqer", "no_quant_gate", "classic_ns", "min_lr0", "no_smear"):
            self.assertIn(row, names)

    def test_baseline_is_named_or_first(self):
        self.assertEqual(variants("a", "baseline:X=1", "b")[1], "baseline")
        self.assertEqual(variants("a", "b")[1], "a")

    def test_bad_specs(self):
        bad = {
            ("",): "name",
            ("bad name:X=1",): "name",
            ("a:",): "empty override list",
            ("a:X",): "not KEY=VALUE",
            ("a:1X=2",): "bad key",
            ("a:X=1,X=2",): "given twice",
            ("a:SEED=3",): "set per run",
            ("a@",): "bad parent",
            ("a", "a:X=1"): "defined twice",
            ("a", "e@nope:X=1"): "not a variant of this list",
            ("a", "e@a:X=1", "f@e:Y=1"): "itself eval-time",
        }
        for specs, msg in bad.items():
            with self.subTest(specs=specs):
                with self.assertRaisesRegex(ablate.SpecError, msg):
                    variants(*specs)
        with self.assertRaisesRegex(ablate.SpecError, "no --variant"):
            ablate.parse_variants([])

    def test_bad_command_lines_exit_2(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        cfg = os.path.join(tmp, "c.json")
        with open(cfg, "w") as f:
            f.write("{}")
        cases = [
            (["--variant", "a:X"], "override 'X' is not KEY=VALUE"),
            (["--variant", "a", "--variant", "l0@zz:SMAT_ABLATION=lambda0"], "parent 'zz'"),
            (["--variant", "a", "--seeds", "4x"], "not a non-negative integer"),
            (["--variant", "a", "--set", "RUN_ID=q"], "set per run"),
            (["--variant", "a", "--iterations", "5", "--set", "ITERATIONS=9"], "conflicts"),
            (["--variant", "a", "--eval-args", "--out x.json"], "--out is chosen per run"),
            (["--variant", "a", "--build-dir", os.path.join(tmp, "nobuild")], "not built"),
        ]
        for extra, msg in cases:
            with self.subTest(extra=extra):
                rc, out, err = quiet(ablate.main, ["--config", cfg] + extra)
                self.assertEqual(rc, 2, err)
                self.assertIn(msg, err)
                self.assertEqual(out, "")
        rc, _, err = quiet(ablate.main, ["--config", os.path.join(tmp, "none.json"), "--variant", "a"])
        self.assertEqual((rc, "does not exist" in err), (2, True))
        with self.assertRaises(SystemExit) as cm, contextlib.redirect_stderr(io.StringIO()):
            ablate.main(["--config", cfg, "--variant", "a", "--iterations", "3", "--budget-seconds", "9"])
        self.assertEqual(cm.exception.code, 2)

    def test_help_explains_the_syntax(self):
        out = io.StringIO()
        with self.assertRaises(SystemExit), contextlib.redirect_stdout(out):
            ablate.main(["--help"])
        self.assertIn("NAME@PARENT[:K=V,...]", out.getvalue())
        self.assertIn("lambda0@smat_full:SMAT_ABLATION=lambda0", out.getvalue())


class Summary(unittest.TestCase):
    SEEDS = [1, 2, 3]
    BASE = {1: 1.100, 2: 1.104, 3: 1.098}
    GOOD = {1: 1.080, 2: 1.085, 3: 1.079}   # better on every seed, by ~0.019 bpb ≈ 0.05 nats
    MIXED = {1: 1.099, 2: 1.106, 3: 1.097}  # wins seeds 1 and 3

    def runs(self):
        rs = [run("baseline", s, b) for s, b in self.BASE.items()]
        rs += [run("good", s, b) for s, b in self.GOOD.items()]
        rs += [run("mixed", s, b) for s, b in self.MIXED.items()]
        return rs

    def summary(self, rs, *specs):
        vs, base = variants(*specs)
        return {r["variant"]: r for r in ablate.summarize(vs, base, rs, self.SEEDS)}

    def test_means_std_delta_wins(self):
        rows = self.summary(self.runs(), "baseline", "good", "mixed")
        for name, vals in (("baseline", self.BASE), ("good", self.GOOD), ("mixed", self.MIXED)):
            a = np.array(list(vals.values()))
            r = rows[name]
            self.assertEqual((r["n"], r["n_ok"]), (3, 3))
            self.assertAlmostEqual(r["mean_bpb"], a.mean(), places=12)
            self.assertAlmostEqual(r["std_bpb"], a.std(ddof=1), places=12)
            self.assertAlmostEqual(r["delta_bpb"], a.mean() - np.mean(list(self.BASE.values())), places=12)
            self.assertAlmostEqual(r["delta_nats"], r["delta_bpb"] * NPB, places=10)
        self.assertEqual((rows["good"]["seed_wins"], rows["good"]["seeds_compared"]), (3, 3))
        self.assertEqual((rows["mixed"]["seed_wins"], rows["mixed"]["seeds_compared"]), (2, 3))
        self.assertEqual(rows["baseline"]["seed_wins"], 0)
        self.assertEqual(rows["baseline"]["significance_note"], "baseline")
        self.assertEqual(rows["good"]["bytes_total_mean"], 1_000_000)

    def test_significance_matches_welch(self):
        rows = self.summary(self.runs(), "baseline", "good", "mixed")
        for name, vals, significant in (("good", self.GOOD, True), ("mixed", self.MIXED, False)):
            sig = rows[name]["significance"]
            thr = 0.005 / NPB
            ref = stats.ttest_ind(list(vals.values()), np.array(list(self.BASE.values())) - thr,
                                  equal_var=False, alternative="less")
            self.assertAlmostEqual(sig["t"], -ref.statistic, places=8)
            self.assertAlmostEqual(sig["p"], ref.pvalue, places=8)
            self.assertEqual(sig["significant"], significant)
            self.assertEqual(sig["test"], "welch")
            self.assertTrue(rows[name]["significance_note"].startswith(
                "SIGNIFICANT" if significant else "not significant"))
            self.assertIn(f"p={sig['p']:.3g}", rows[name]["significance_note"])

    def test_verdict_plumbing(self):
        with mock.patch.object(significance, "test_improvement", wraps=significance.test_improvement) as ti:
            vs, base = variants("baseline", "good")
            ablate.summarize(vs, base, self.runs(), self.SEEDS, min_delta_nats=0.01, alpha=0.05)
        (cand, basev), kw = ti.call_args
        self.assertEqual(cand, [self.GOOD[s] for s in self.SEEDS])
        self.assertEqual(basev, [self.BASE[s] for s in self.SEEDS])
        self.assertEqual((kw["min_delta_nats"], kw["alpha"], kw["unit"]), (0.01, 0.05, "bpb"))
        self.assertAlmostEqual(kw["nats_per_bpb"], NPB, places=10)

    def test_n_below_2_and_failed_runs(self):
        rs = [run("baseline", s, b) for s, b in self.BASE.items()]
        rs += [run("good", 1, self.GOOD[1]), run("good", 2, status="FAILED", reason="golf-train exit 1: boom"),
               run("good", 3, status="FAILED", reason="golf-eval a compliance check failed (exit 3)")]
        rs += [run("dead", s, status="FAILED", reason="golf-pack exit 1: no hessians") for s in self.SEEDS]
        rows = self.summary(rs, "baseline", "good", "dead")
        g = rows["good"]
        self.assertEqual((g["n"], g["n_ok"], g["mean_bpb"], g["std_bpb"]), (3, 1, self.GOOD[1], None))
        self.assertEqual(g["significance_note"], "n<2: no test")
        self.assertIsNone(g["significance"])
        self.assertEqual((g["seed_wins"], g["seeds_compared"]), (1, 1))
        self.assertEqual([f["seed"] for f in g["failed"]], [2, 3])
        d = rows["dead"]
        self.assertEqual((d["n_ok"], d["mean_bpb"], d["delta_bpb"], d["seed_wins"]), (0, None, None, None))
        table = ablate.render_table(list(rows.values()), "baseline")
        line = next(ln for ln in table.splitlines() if ln.startswith("| good"))
        self.assertIn("1/3 (FAILED: 2, 3)", line)
        self.assertIn("n<2: no test", line)
        line = next(ln for ln in table.splitlines() if ln.startswith("| dead"))
        self.assertIn("**FAILED**", line)
        self.assertIn("golf-pack exit 1: no hessians", line)
        self.assertIn("- FAILED good seed 2: golf-train exit 1: boom", table)
        self.assertIn("- FAILED dead seed 3: golf-pack exit 1: no hessians", table)

    def test_baseline_without_success(self):
        rs = [run("baseline", s, status="FAILED", reason="x") for s in self.SEEDS]
        rs += [run("good", s, b) for s, b in self.GOOD.items()]
        rows = self.summary(rs, "baseline", "good")
        self.assertIsNone(rows["good"]["delta_bpb"])
        self.assertIn("baseline has no successful seed", rows["good"]["significance_note"])
        ablate.render_table(list(rows.values()), "baseline")  # renders without crashing

    def test_eval_time_variant_vs_parent(self):
        rs = self.runs() + [run("l0", s, b + 0.01) for s, b in self.GOOD.items()]
        rows = self.summary(rs, "baseline", "good", "l0@good:SMAT_ABLATION=lambda0")
        p = rows["l0"]["vs_parent"]
        self.assertEqual(p["reference"], "good")
        self.assertAlmostEqual(p["delta_bpb"], 0.01, places=12)
        self.assertAlmostEqual(p["paired_delta_bpb"], 0.01, places=12)
        self.assertEqual(p["seed_wins"], 0)
        table = ablate.render_table(list(rows.values()), "baseline")
        self.assertIn("| l0 (eval of good) |", table)
        self.assertIn("- l0 vs its parent good: Δ +0.01000 bpb", table)

    def test_table_header_like_the_card(self):
        vs, base = variants("baseline", "good")
        table = ablate.render_table(ablate.summarize(vs, base, self.runs(), self.SEEDS), base)
        head = table.splitlines()[0]
        for col in ("variant", "seeds ok", "mean bpb", "std", "Δ bpb", "Δ nats", "seed wins", "artifact bytes",
                    "significance"):
            self.assertIn(col, head)
        good = next(ln for ln in table.splitlines() if ln.startswith("| good"))
        self.assertIn("3/3", good)
        self.assertIn(f"{np.mean(list(self.GOOD.values())) - np.mean(list(self.BASE.values())):+.5f}", good)


class ReadResult(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)

    def read(self, path):
        return ablate.read_result(ablate.AblationRun(variant="v", seed=0, run_id="v_0", run_dir=path,
                                                     eval_json=os.path.join(path, "eval.json")))

    def test_ok_and_failures(self):
        ok = self.read(fake_runs.make_run(os.path.join(self.tmp, "ok"), 42, 1.08))
        self.assertEqual(ok.status, "ok")
        self.assertAlmostEqual(ok.val_bpb, 1.08)
        self.assertAlmostEqual(ok.val_loss, 1.08 * NPB)
        self.assertEqual(ok.protocol, "ttt")
        self.assertEqual(ok.bytes_total, 15_890_042 + 21_234)

        bad = self.read(fake_runs.make_run(os.path.join(self.tmp, "bad"), 1, 1.08, compliance_ok=False))
        self.assertEqual(bad.status, "FAILED")
        self.assertIn("compliance check single_pass failed: prediction 17 scored twice", bad.reason)

        gone = fake_runs.make_run(os.path.join(self.tmp, "gone"), 2, 1.08)
        os.remove(os.path.join(gone, "eval.json"))
        self.assertEqual(self.read(gone).reason, "no eval.json")

        broken = fake_runs.make_run(os.path.join(self.tmp, "broken"), 3, 1.08)
        with open(os.path.join(broken, "eval.json"), "w") as f:
            f.write("{")
        self.assertIn("malformed JSON", self.read(broken).reason)

        leak = fake_runs.make_run(os.path.join(self.tmp, "leak"), 4, 1.08)
        with open(os.path.join(leak, "eval.json")) as f:
            ev = json.load(f)
        ev["train_data_read"] = True
        del ev["final"]["val_loss"]
        fake_runs.write_json(os.path.join(leak, "eval.json"), ev)
        self.assertIn("no final val_bpb/val_loss", self.read(leak).reason)


# Stand-in tools: log their argv, leave the files the real ones leave (fake_runs), fail on request.
COMMON = fake_runs.STAND_IN_PREAMBLE
TRAIN = COMMON + """
s = sets(sys.argv)
seed = int(s["SEED"])
if s["RUN_ID"] == os.environ.get("FAKE_FAIL_TRAIN"):
    sys.exit("golf-train: error: out of memory")
run = os.path.join(s["OUTPUT_DIR"], s["RUN_ID"])
bpb = 1.10 - 0.02 * int(s.get("GOOD", "0")) + seed * 1e-4
extra = {k: v for k, v in s.items() if k not in ("SEED", "RUN_ID", "OUTPUT_DIR")}
fake_runs.make_run(run, seed, bpb, EVAL_SEQ_LEN=128, **extra)
for name in ("final_model.golf.json", "eval.json", "eval.log"):
    os.rename(os.path.join(run, name), os.path.join(run, "." + name))
for name in ("ema_model.safetensors", "hessians.safetensors"):
    open(os.path.join(run, name), "w").close()
"""
PACK = COMMON + """
run = sys.argv[1]
os.rename(os.path.join(run, ".final_model.golf.json"), os.path.join(run, "final_model.golf.json"))
open(os.path.join(run, "final_model.golf"), "w").close()
"""
EVAL = COMMON + """
artifact, out = sys.argv[1], sys.argv[sys.argv.index("--out") + 1]
run = os.path.dirname(artifact)
ev = json.load(open(os.path.join(run, ".eval.json")))
s = sets(sys.argv)
if s.get("SMAT_ABLATION", "none") != "none":
    ev["final"]["val_bpb"] += 0.01
    ev["final"]["val_loss"] += 0.01 * fake_runs.NATS_PER_BPB
if os.path.basename(run) == os.environ.get("FAKE_FAIL_EVAL") and out.endswith("/eval.json"):
    ev["compliance"][0]["passed"] = False
    json.dump(ev, open(out, "w"))
    sys.exit(3)
json.dump(ev, open(out, "w"))
"""


class Orchestration(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.build = os.path.join(self.tmp, "build")
        for rel, text in (("train/golf-train", TRAIN), ("pack/golf-pack", PACK), ("eval/golf-eval", EVAL)):
            path = os.path.join(self.build, rel)
            os.makedirs(os.path.dirname(path))
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        self.config = os.path.join(self.tmp, "cfg.json")
        with open(self.config, "w") as f:
            json.dump({"NUM_LAYERS": 2}, f)
        self.calls = os.path.join(self.tmp, "calls.jsonl")
        self.runs = os.path.join(self.tmp, "runs")
        self.out = os.path.join(self.tmp, "out")

    def ablate(self, *extra, **env):
        argv = ["--config", self.config, "--build-dir", self.build, "--runs-root", self.runs, "--out", self.out,
                "--tag", "t", "--seeds", "1", "2", "--iterations", "7", "--eval-args", "--no-compliance",
                "--variant", "baseline", "--variant", "good:GOOD=1",
                "--variant", "l0@good:SMAT_ABLATION=lambda0", *extra]
        with mock.patch.dict(os.environ, dict(FAKE_CALLS=self.calls, MPLBACKEND="Agg", **env)):
            return quiet(ablate.main, argv)

    def read_calls(self):
        with open(self.calls) as f:
            calls = [json.loads(line) for line in f]
        os.remove(self.calls)
        return calls

    def test_end_to_end_with_failures_then_reuse(self):
        rc, out, err = self.ablate(FAKE_FAIL_TRAIN="t_good_seed2", FAKE_FAIL_EVAL="t_baseline_seed1")
        self.assertEqual(rc, 3, err)
        calls = self.read_calls()
        trains = [c for c in calls if c[0] == "golf-train"]
        self.assertEqual(trains[0][1:], ["--config", self.config, "--set", "SEED=1", "--set", "RUN_ID=t_baseline_seed1",
                                         "--set", f"OUTPUT_DIR={self.runs}", "--set", "ITERATIONS=7",
                                         "--set", "MAX_WALLCLOCK_SECONDS=0"])
        self.assertEqual(trains[1][-2:], ["--set", "GOOD=1"])
        self.assertEqual(len(trains), 4)
        self.assertEqual(len([c for c in calls if c[0] == "golf-pack"]), 3)
        evals = [c for c in calls if c[0] == "golf-eval"]
        self.assertEqual(len(evals), 4)  # baseline ×2, good seed 1, l0 seed 1 (parent seed 2 failed)
        e = evals[0]
        self.assertEqual(e[1:4], [os.path.join(self.runs, "t_baseline_seed1", "final_model.golf"), "--out",
                                  os.path.join(self.runs, "t_baseline_seed1", "eval.json")])
        self.assertIn("EVAL_STRIDE=64", e)
        self.assertIn("EVAL_SEQ_LEN=128", e)
        self.assertIn(f"DATA_PATH={fake_runs.config(1, 'x')['DATA_PATH']}", e)
        self.assertIn("TTT_LR=0.005", e)
        for kv in ("TTT_MODE=phased", "PHASED_TTT_NUM_PHASES=3", "GLOBAL_TTT_LR=0.001"):  # the TTT protocol
            self.assertIn(kv, e)
        self.assertNotIn("TTT_ENABLED=0", e)
        self.assertNotIn("NUM_LAYERS=11", e)
        self.assertEqual(e[-1], "--no-compliance")
        l0 = next(c for c in evals if c[3].endswith("eval_l0.json"))
        self.assertEqual(l0[3], os.path.join(self.runs, "t_good_seed1", "eval_l0.json"))
        self.assertEqual(l0[-3:], ["--set", "SMAT_ABLATION=lambda0", "--no-compliance"])

        with open(os.path.join(self.out, "ablation.json")) as f:
            doc = json.load(f)
        status = {(r["variant"], r["seed"]): (r["status"], r["reason"]) for r in doc["runs"]}
        self.assertEqual(status[("baseline", 2)], ("ok", None))
        self.assertEqual(status[("baseline", 1)][0], "FAILED")
        self.assertIn("golf-eval a compliance check failed (exit 3)", status[("baseline", 1)][1])
        self.assertIn("compliance check causality failed", status[("baseline", 1)][1])
        self.assertIn("golf-train exit 1: golf-train: error: out of memory", status[("good", 2)][1])
        self.assertIn("parent run t_good_seed2 has no artifact: golf-train exit 1", status[("l0", 2)][1])
        rows = {r["variant"]: r for r in doc["summary"]}
        self.assertEqual((rows["baseline"]["n_ok"], rows["good"]["n_ok"], rows["l0"]["n_ok"]), (1, 1, 1))
        self.assertAlmostEqual(rows["l0"]["vs_parent"]["delta_bpb"], 0.01, places=9)
        self.assertIn("| good | 1/2 (FAILED: 2) |", out)
        self.assertTrue(os.path.isfile(os.path.join(self.out, "logs", "t_good_seed2.train.log")))

        # without --reuse existing run directories are refused before anything runs
        rc, _, err = self.ablate()
        self.assertEqual(rc, 2)
        self.assertIn("exists: --reuse", err)
        self.assertFalse(os.path.exists(self.calls))

        # --reuse: finished stages are skipped, the failed training resumes, the compliance failure stays
        rc, out, err = self.ablate("--reuse")
        self.assertEqual(rc, 3, err)
        calls = self.read_calls()
        self.assertEqual([c[:2] for c in calls if c[0] == "golf-train"],
                         [["golf-train", "--config"]])  # good seed 2: no dir was left, so a fresh start
        self.assertEqual(len([c for c in calls if c[0] == "golf-eval"]), 2)  # good seed 2 and its l0
        with open(os.path.join(self.out, "ablation.json")) as f:
            doc = json.load(f)
        rows = {r["variant"]: r for r in doc["summary"]}
        self.assertEqual((rows["baseline"]["n_ok"], rows["good"]["n_ok"], rows["l0"]["n_ok"]), (1, 2, 2))
        self.assertEqual(rows["l0"]["vs_parent"]["seed_wins"], 0)

    def test_eval_time_variant_runs_when_only_the_parents_eval_failed(self):
        rc, out, err = self.ablate(FAKE_FAIL_EVAL="t_good_seed1")
        self.assertEqual(rc, 3, err)
        with open(os.path.join(self.out, "ablation.json")) as f:
            doc = json.load(f)
        status = {(r["variant"], r["seed"]): r["status"] for r in doc["runs"]}
        self.assertEqual((status[("good", 1)], status[("l0", 1)], status[("l0", 2)]), ("FAILED", "ok", "ok"))

    def test_all_ok_exit_0_and_dry_run(self):
        rc, out, err = self.ablate("--dry-run")
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.exists(self.calls))
        self.assertFalse(os.path.exists(self.out))
        self.assertIn("golf-train --config", err)
        rc, out, err = self.ablate()
        self.assertEqual(rc, 0, err)
        with open(os.path.join(self.out, "ablation.json")) as f:
            doc = json.load(f)
        rows = {r["variant"]: r for r in doc["summary"]}
        self.assertEqual(rows["good"]["seed_wins"], 2)
        self.assertAlmostEqual(rows["good"]["delta_bpb"], -0.02, places=9)
        self.assertEqual(rows["good"]["significance_note"].split(" ")[0], "SIGNIFICANT")


class Outputs(unittest.TestCase):
    def test_json_png_md_atomic(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        vs, base = variants("baseline", "good", "dead", "l0@good:SMAT_ABLATION=lambda0")
        rs = [run("baseline", 1, 1.1), run("baseline", 2, 1.1), run("good", 1, 1.05), run("good", 2, 1.06),
              run("dead", 1, status="FAILED", reason="boom"), run("dead", 2, status="FAILED", reason="boom"),
              run("l0", 1, 1.07), run("l0", 2, status="FAILED", reason="parent")]
        # zero variance on the baseline side and an infinite t must still give valid JSON
        rows, table = ablate.write_outputs(tmp, {"title": "t"}, vs, base, rs, [1, 2])
        self.assertEqual(sorted(os.listdir(tmp)), ["ablation.json", "ablation.md", "ablation.png"])
        with open(os.path.join(tmp, "ablation.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["baseline"], "baseline")
        self.assertEqual(len(doc["runs"]), 8)
        self.assertEqual([r["variant"] for r in doc["summary"]], ["baseline", "good", "dead", "l0"])
        self.assertEqual(doc["table_markdown"], table)
        with open(os.path.join(tmp, "ablation.md")) as f:
            self.assertEqual(f.read(), table)
        with open(os.path.join(tmp, "ablation.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_atomic_write_leaves_no_temp_on_error(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        path = os.path.join(tmp, "a.json")
        ablate.atomic_write(path, "old")
        with mock.patch.object(os, "replace", side_effect=OSError("disk full")):
            with self.assertRaises(OSError):
                ablate.atomic_write(path, "new")
        self.assertEqual(os.listdir(tmp), ["a.json"])
        with open(path) as f:
            self.assertEqual(f.read(), "old")


if __name__ == "__main__":
    unittest.main()
