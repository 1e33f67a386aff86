"""tests/scripts/test_make_record.py — scripts/make_record.py on fake-but-realistic run directories.

Checks the folder contents, that FAILED seeds are reported (table, reasons, submission.json) and
never dropped, the means over successful seeds, the significance line, and that the folder is never
half written or silently overwritten.
"""
import io
import json
import os
import shutil
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import fake_runs  # noqa: E402
import make_record  # noqa: E402
import plot_runs  # noqa: E402

BPB = {42: 1.0800, 1337: 1.0806, 2025: 1.0797}


def load(path):
    with open(path) as f:
        return json.load(f) if path.endswith(".json") else f.read()


def write(path, text, mode):
    with open(path, mode) as f:
        f.write(text)


class MakeRecord(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.config = os.path.join(self.tmp, "cfg.json")
        with open(self.config, "w") as f:
            json.dump({"NUM_LAYERS": 11, "MATRIX_LR": 0.022}, f)
        self.runs = {s: fake_runs.make_run(os.path.join(self.tmp, "runs", f"r_seed{s}"), s, bpb)
                     for s, bpb in BPB.items()}
        self.out = os.path.join(self.tmp, "records", "track_10min_16mb", "2026-05-01_test")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def make(self, *extra, out=None, runs=None, plots=False):
        """make_record.main; plots=False stubs the (slow, separately tested) plotting out."""
        if not plots:
            with mock.patch.object(plot_runs, "plot_runs", return_value=[]):
                return self.make(*extra, out=out, runs=runs, plots=True)
        runs = self.runs if runs is None else runs
        argv = ["--out", out or self.out, "--name", "test", "--author", "A. Golfer", "--github-id", "agolfer",
                "--track", "track_10min_16mb", "--config", self.config, "--what-changed", "MATRIX_LR 0.022",
                "--date", "2026-05-01", *[f"--seed-run={s}={d}" for s, d in runs.items()], *extra]
        o, e = io.StringIO(), io.StringIO()
        with redirect_stdout(o), redirect_stderr(e):
            code = make_record.main(argv)
        return code, o.getvalue(), e.getvalue()

    def leftovers(self):
        parent = os.path.dirname(self.out)
        return [n for n in os.listdir(parent) if n.startswith(".")] if os.path.isdir(parent) else []

    # ---- contents ------------------------------------------------------------------------------

    def test_all_ok(self):
        code, out, err = self.make(plots=True)
        self.assertEqual(code, 0, err)
        files = sorted(os.listdir(self.out))
        self.assertEqual(files, sorted(["README.md", "submission.json", "config.json", "curves_step.png",
                                        "curves_time.png"] + [f"{k}_seed{s}.{x}" for s in BPB
                                                              for k, x in (("train", "log"), ("eval", "json"),
                                                                           ("eval", "log"))]))
        sub = load(os.path.join(self.out, "submission.json"))
        vals = list(BPB.values())
        self.assertAlmostEqual(sub["val_bpb"], np.mean(vals), places=8)
        self.assertAlmostEqual(sub["val_bpb_std"], np.std(vals, ddof=1), places=8)
        self.assertAlmostEqual(sub["val_loss"], np.mean(vals) * fake_runs.NATS_PER_BPB, places=7)
        self.assertEqual(sub["seeds"], [42, 1337, 2025])
        self.assertEqual((sub["seeds_ok"], sub["seeds_failed"]), (3, []))
        for key in ("name", "author", "github_id", "blurb", "date", "track", "bytes_total", "bytes_code"):
            self.assertIn(key, sub)
        self.assertEqual(sub["bytes_total"], 15_890_000 + 1337 % 1000 + 21_234)  # max over seeds
        r = sub["seed_results"]["1337"]
        self.assertEqual(r["status"], "ok")
        self.assertEqual(r["steps"], 4500)
        self.assertAlmostEqual(r["step_avg_ms"], 128.0)
        self.assertAlmostEqual(r["sliding_val_bpb"], 1.0806 + 0.0025)
        self.assertAlmostEqual(r["pre_quant_val_bpb"], 1.0806 + 0.010)
        self.assertEqual(r["compliance"], {"causality": True, "single_pass": True, "score_before_update": True})
        self.assertEqual(sub["compliance"]["three_seeds"], True)
        self.assertEqual(sub["compliance"]["score_first_ttt"], True)
        self.assertEqual(sub["compliance"]["train_under_600s"], True)  # 4500 × 128 ms = 576 s
        self.assertNotIn("significance", sub)

        readme = load(os.path.join(self.out, "README.md"))
        self.assertIn("![curves_step](curves_step.png)", readme)
        self.assertIn("![curves_time](curves_time.png)", readme)
        self.assertIn("All 3 seeds succeeded.", readme)
        self.assertIn("| 1337 | ok | 4,500 | 128.0 | 1.09060 | 1.09260 | 1.08310 | 1.08060 | 15,911,571 | 21,234 | "
                      "576.0 s | 480.0 s | 3/3 pass |", readme)
        self.assertIn("MATRIX_LR 0.022", readme)
        self.assertIn('"MATRIX_LR": 0.022', readme)  # the config file
        self.assertIn("`MATRIX_LR` = `0.026` (file: `0.022`)", readme)  # runs differ from the file
        self.assertEqual(load(os.path.join(self.out, "train_seed42.log")),
                         load(os.path.join(self.runs[42], "train.log")))
        self.assertEqual(load(os.path.join(self.out, "eval_seed2025.json")),
                         load(os.path.join(self.runs[2025], "eval.json")))
        self.assertEqual(self.leftovers(), [])

    def test_the_ttt_protocol_and_its_settings_are_named(self):
        code, _, err = self.make()
        self.assertEqual(code, 0, err)
        sub = load(os.path.join(self.out, "submission.json"))
        self.assertEqual(sub["ttt_protocol"], "score_first_global_sgd_ttt")  # an eval.json without "mode"
        settings = {"TTT_MODE": "phased", "TTT_LORA_RANK": 96, "PHASED_TTT_NUM_PHASES": 3}
        for d in self.runs.values():
            ev = load(os.path.join(d, "eval.json"))
            ev["results"]["ttt"].update(mode="phased", settings=settings)
            write(os.path.join(d, "eval.json"), json.dumps(ev), "w")
        out = self.out + "_phased"
        code, _, err = self.make(out=out)
        self.assertEqual(code, 0, err)
        sub = load(os.path.join(out, "submission.json"))
        self.assertEqual(sub["ttt_protocol"], "phased_ttt")
        self.assertEqual(sub["ttt_settings"], settings)
        self.assertIn("Test-time training: **phased_ttt** (`PHASED_TTT_NUM_PHASES=3`, `TTT_LORA_RANK=96`, "
                      "`TTT_MODE=phased`)", load(os.path.join(out, "README.md")))

    def test_failed_seed_is_reported_not_dropped(self):
        os.remove(os.path.join(self.runs[1337], "eval.json"))
        code, out, err = self.make()
        self.assertEqual(code, 3)
        self.assertIn("seed 1337 FAILED: no eval.json (golf-eval did not finish)", err)
        sub = load(os.path.join(self.out, "submission.json"))
        self.assertEqual(sub["seeds"], [42, 1337, 2025])
        self.assertEqual((sub["seeds_ok"], sub["seeds_failed"]), (2, [1337]))
        r = sub["seed_results"]["1337"]
        self.assertEqual(r["status"], "FAILED")
        self.assertEqual(r["reasons"], ["no eval.json (golf-eval did not finish)"])
        self.assertAlmostEqual(r["pre_quant_val_bpb"], 1.0806 + 0.010)  # what it has is kept
        self.assertAlmostEqual(sub["val_bpb"], (1.0800 + 1.0797) / 2, places=8)
        self.assertFalse(sub["compliance"]["three_seeds"])
        readme = load(os.path.join(self.out, "README.md"))
        self.assertIn("| 1337 | **FAILED** |", readme)
        self.assertIn("over 2 of 3 seeds", readme)
        self.assertIn("**FAILED seeds (1 of 3), left out of the means:**", readme)
        self.assertIn("- seed 1337 (", readme)
        self.assertNotIn("eval_seed1337.json", os.listdir(self.out))
        self.assertIn("train_seed1337.log", os.listdir(self.out))

    def test_failure_reasons(self):
        cases = {
            "missing run dir": (lambda d: shutil.rmtree(d), "does not exist"),
            "no pack": (lambda d: os.remove(os.path.join(d, "final_model.golf.json")),
                        "no final_model.golf.json (golf-pack did not finish)"),
            "malformed eval": (lambda d: write(os.path.join(d, "eval.json"), "", "w"),
                               "eval.json: malformed JSON"),
            "compliance": (lambda d: self.edit(d, "eval.json", lambda j: j["compliance"][1].update(passed=False)),
                           "compliance check single_pass failed: "),
            "train data": (lambda d: self.edit(d, "eval.json", lambda j: j.update(train_data_read=True)),
                           "train_data_read is True"),
            "no final": (lambda d: self.edit(d, "eval.json", lambda j: j.pop("final")),
                         "eval.json: no final val_bpb/val_loss"),
            "over limit": (lambda d: self.edit(d, "final_model.golf.json", lambda j: j.update(bytes_total=16_000_001)),
                           "over the 16,000,000-byte limit"),
            "other artifact": (lambda d: self.edit(d, "eval.json", lambda j: j.update(bytes_model=1)),
                               "another artifact was scored"),
            "no train.log": (lambda d: os.remove(os.path.join(d, "train.log")), "no train.log"),
            "bad metrics": (lambda d: write(os.path.join(d, "metrics.jsonl"), "{oops\n", "a"),
                            "metrics.jsonl:16: malformed JSON"),
        }
        for i, (name, (breaker, reason)) in enumerate(cases.items()):
            with self.subTest(name):
                run = fake_runs.make_run(os.path.join(self.tmp, "runs", f"broken_{i}"), 2025, 1.08)
                breaker(run)
                out = os.path.join(self.tmp, "records", name.replace(" ", "_"))
                code, _, err = self.make(out=out, runs={42: self.runs[42], 2025: run})
                self.assertEqual(code, 3, err)
                r = load(os.path.join(out, "submission.json"))["seed_results"]["2025"]
                self.assertEqual(r["status"], "FAILED")
                self.assertTrue(any(reason in x for x in r["reasons"]), (reason, r["reasons"]))
                self.assertIn(reason, load(os.path.join(out, "README.md")))

    @staticmethod
    def edit(run, name, change):
        path = os.path.join(run, name)
        j = load(path)
        change(j)
        with open(path, "w") as f:
            json.dump(j, f)

    # ---- significance --------------------------------------------------------------------------

    def test_significance_against_a_number_and_a_record(self):
        best_bpb = 1.0850
        code, out, err = self.make("--best", str(best_bpb), "--best-unit", "bpb")
        self.assertEqual(code, 0, err)
        sub = load(os.path.join(self.out, "submission.json"))
        sig = sub["significance"]
        nats = [v * fake_runs.NATS_PER_BPB for v in BPB.values()]
        ref = stats.ttest_1samp(nats, best_bpb * fake_runs.NATS_PER_BPB - 0.005, alternative="less")
        self.assertAlmostEqual(sig["p"], float(ref.pvalue), delta=1e-6 * ref.pvalue)
        self.assertEqual(sig["significant"], bool(ref.pvalue < 0.01))
        self.assertEqual(sig["n"], 3)
        readme = load(os.path.join(self.out, "README.md"))
        self.assertIn("## Significance", readme)
        self.assertIn(sig["verdict"], readme)

        # Another record folder as the best: Welch's test over both sides' seeds.
        new_runs = {s: fake_runs.make_run(os.path.join(self.tmp, "runs2", f"s{s}"), s, v - 0.004)
                    for s, v in BPB.items()}
        out2 = os.path.join(self.tmp, "records", "new")
        code, _, err = self.make("--best", self.out, out=out2, runs=new_runs)
        self.assertIn(code, (0,), err)
        sig2 = load(os.path.join(out2, "submission.json"))["significance"]
        self.assertEqual(sig2["test"], "welch")
        ref2 = stats.ttest_ind([(v - 0.004) * fake_runs.NATS_PER_BPB for v in BPB.values()],
                               [v * fake_runs.NATS_PER_BPB - 0.005 for v in BPB.values()],
                               equal_var=False, alternative="less")
        self.assertAlmostEqual(sig2["p"], float(ref2.pvalue), delta=1e-6 * ref2.pvalue)

    def test_significance_with_one_good_seed_is_not_tested(self):
        for s in (1337, 2025):
            os.remove(os.path.join(self.runs[s], "eval.json"))
        code, _, _ = self.make("--best", "2.8")
        self.assertEqual(code, 3)
        readme = load(os.path.join(self.out, "README.md"))
        self.assertIn("Not tested against 2.8: ", readme)
        self.assertIn("at least 2", readme)

    # ---- atomicity and bad input ---------------------------------------------------------------

    def test_existing_folder_is_not_overwritten(self):
        os.makedirs(self.out)
        with open(os.path.join(self.out, "keep.txt"), "w") as f:
            f.write("mine")
        code, _, err = self.make()
        self.assertEqual(code, 2)
        self.assertIn("already exists: pass --overwrite", err)
        self.assertEqual(os.listdir(self.out), ["keep.txt"])
        code, _, err = self.make("--overwrite")
        self.assertEqual(code, 0, err)
        self.assertNotIn("keep.txt", os.listdir(self.out))
        self.assertIn("README.md", os.listdir(self.out))
        self.assertEqual(self.leftovers(), [])

    def test_failure_while_writing_leaves_nothing(self):
        with mock.patch.object(plot_runs, "plot_runs", side_effect=RuntimeError("disk full")):
            with self.assertRaisesRegex(RuntimeError, "disk full"):
                self.make(plots=True)
        self.assertFalse(os.path.exists(self.out))
        self.assertEqual(self.leftovers(), [])

    def test_bad_input_writes_nothing(self):
        self.edit(self.runs[1337], "config.json", lambda j: j.update(SEED=7))
        code, _, err = self.make()
        self.assertEqual(code, 2)
        self.assertIn("has SEED=7 but was given as --seed-run 1337", err)
        self.assertFalse(os.path.exists(self.out))
        self.edit(self.runs[1337], "config.json", lambda j: j.update(SEED=1337, NUM_LAYERS=9))
        code, _, err = self.make()
        self.assertEqual(code, 2)
        self.assertIn("seeds 42 and 1337 were trained with different settings (NUM_LAYERS", err)
        self.assertFalse(os.path.exists(self.out))

    def test_bad_arguments(self):
        code, _, err = self.make(runs={"x": self.runs[42]})
        self.assertEqual(code, 2)
        self.assertIn("expected SEED=RUN_DIR with an integer SEED", err)
        with open(self.config, "w") as f:
            f.write("{not json")
        code, _, err = self.make()
        self.assertEqual(code, 2)
        self.assertIn(f"--config {self.config}: malformed JSON", err)
        self.assertFalse(os.path.exists(self.out))
        with open(self.config, "w") as f:
            f.write("{}")
        code, _, err = self.make("--best", os.path.join(self.tmp, "nope"))
        self.assertEqual(code, 2)
        self.assertIn("--best", err)
        self.assertFalse(os.path.exists(self.out))


if __name__ == "__main__":
    unittest.main()
