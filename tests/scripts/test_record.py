"""tests/scripts/test_record.py — scripts/record.py with stand-in golf-train/golf-pack/golf-eval.

The stand-ins (Python, written into a fake GOLF_BUILD_DIR) log their arguments and leave the files
the real tools leave (tests/scripts/fake_runs.py); one seed's training and another's evaluation
fail. Checks the per-seed command lines, that the run continues past failed seeds, that the record
lists them, and --reuse.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fake_runs  # noqa: E402
RECORD_PY = os.path.join(HERE, "..", "..", "scripts", "record.py")

COMMON = fake_runs.STAND_IN_PREAMBLE
TRAIN = COMMON + """
s = sets(sys.argv)
seed = int(s["SEED"])
if str(seed) == os.environ.get("FAKE_FAIL_TRAIN"):
    sys.exit("golf-train: error: DATA_PATH x: no fineweb_train_NNNNNN.bin shards")
run = os.path.join(s["OUTPUT_DIR"], s["RUN_ID"])
extra = {k: json.loads(v) for k, v in s.items() if k not in ("SEED", "RUN_ID", "OUTPUT_DIR")}
fake_runs.make_run(run, seed, 1.08 + (seed % 7) * 1e-4, **extra)
os.rename(os.path.join(run, "final_model.golf.json"), os.path.join(run, ".pack.json"))
os.rename(os.path.join(run, "eval.json"), os.path.join(run, ".eval.json"))
os.remove(os.path.join(run, "eval.log"))
for name in ("ema_model.safetensors", "hessians.safetensors", "final_model.safetensors"):
    open(os.path.join(run, name), "w").close()
print("stopping_early: step:4500")
"""
PACK = COMMON + """
run = sys.argv[1]
assert sys.argv[2:] == ["--val"], sys.argv
os.rename(os.path.join(run, ".pack.json"), os.path.join(run, "final_model.golf.json"))
open(os.path.join(run, "final_model.golf"), "w").close()
print("wrote", run)
"""
EVAL = COMMON + """
artifact, out = sys.argv[1], sys.argv[sys.argv.index("--out") + 1]
assert "--ttt" in sys.argv
run = os.path.dirname(artifact)
if json.load(open(os.path.join(run, "config.json")))["SEED"] == int(os.environ.get("FAKE_FAIL_EVAL", -1)):
    sys.exit("golf-eval: error: CUDA out of memory")
os.rename(os.path.join(run, ".eval.json"), out)
print("ttt val_bpb:1.08")
"""


class RecordPy(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.build = os.path.join(self.tmp, "build")
        for rel, text in (("train/golf-train", TRAIN), ("pack/golf-pack", PACK), ("eval/golf-eval", EVAL)):
            path = os.path.join(self.build, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        self.config = os.path.join(self.tmp, "cfg.json")
        with open(self.config, "w") as f:
            json.dump({"NUM_LAYERS": 11}, f)
        self.calls = os.path.join(self.tmp, "calls.jsonl")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def record(self, *args, **env):
        e = dict(os.environ, GOLF_BUILD_DIR=self.build, GOLF_PYTHON=sys.executable, FAKE_CALLS=self.calls,
                 MPLBACKEND="Agg", **env)
        p = subprocess.run([sys.executable, RECORD_PY, self.config, "mytest", "--date", "2026-05-01", "--author", "A",
                            "--github-id", "a", "--runs-root", "runs", "--out-root", "recs", *args],
                           cwd=self.tmp, env=e, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def read_calls(self):
        with open(self.calls) as f:
            calls = [json.loads(line) for line in f]
        os.remove(self.calls)
        return calls

    def test_failed_seeds_are_recorded_and_reuse_finishes_them(self):
        code, out, err = self.record("--set", "MATRIX_LR=0.022", FAKE_FAIL_TRAIN="2025", FAKE_FAIL_EVAL="1337")
        self.assertEqual(code, 3, out + err)
        self.assertIn("seed 2025: golf-train failed", err)
        self.assertIn("seed 1337: golf-eval failed", err)
        self.assertIn("CUDA out of memory", err)
        record = os.path.join(self.tmp, "recs", "track_10min_16mb", "2026-05-01_mytest")
        self.assertIn("record:  recs/track_10min_16mb/2026-05-01_mytest", out)
        with open(os.path.join(record, "submission.json")) as f:
            sub = json.load(f)
        self.assertEqual(sub["seeds"], [42, 1337, 2025])
        self.assertEqual(sub["seeds_failed"], [1337, 2025])
        self.assertIn("does not exist", sub["seed_results"]["2025"]["reasons"][0])
        self.assertEqual(sub["seed_results"]["1337"]["reasons"],
                         ["no eval.json (golf-eval did not finish: golf-eval: error: CUDA out of memory)"])
        self.assertEqual(sub["seed_results"]["42"]["status"], "ok")

        calls = self.read_calls()
        trains = [c for c in calls if c[0] == "golf-train"]
        self.assertEqual(len(trains), 3)
        self.assertEqual(trains[0][1:], ["--config", self.config, "--set", "SEED=42", "--set",
                                         "RUN_ID=2026-05-01_mytest_seed42", "--set", "OUTPUT_DIR=runs",
                                         "--set", "MATRIX_LR=0.022"])
        self.assertEqual([c[1] for c in calls if c[0] == "golf-pack"],
                         ["runs/2026-05-01_mytest_seed42", "runs/2026-05-01_mytest_seed1337"])
        evals = [c for c in calls if c[0] == "golf-eval"]
        self.assertEqual(len(evals), 2)
        e = evals[0]
        self.assertEqual(e[1:5], ["runs/2026-05-01_mytest_seed42/final_model.golf", "--ttt", "--out",
                                  "runs/2026-05-01_mytest_seed42/eval.json"])
        sets = [e[i + 1] for i, a in enumerate(e) if a == "--set"]
        self.assertIn("DATA_PATH=./data/datasets/fineweb10B_sp8192", sets)
        self.assertIn("TOKENIZER_PATH=./data/tokenizers/fineweb_8192_bpe.model", sets)
        self.assertIn("TTT_LR=0.005", sets)
        self.assertIn("EVAL_STRIDE=64", sets)
        for kv in ("TTT_MODE=phased", "PHASED_TTT_NUM_PHASES=3", "GLOBAL_TTT_LR=0.001"):  # the TTT protocol
            self.assertIn(kv, sets)
        self.assertEqual(sets[-1], "MATRIX_LR=0.022")
        self.assertFalse(any(s.startswith("TTT_ENABLED=") for s in sets))
        with open(os.path.join(self.tmp, "runs", "2026-05-01_mytest_seed42", "eval.log")) as f:
            self.assertEqual(f.read(), "ttt val_bpb:1.08\n")

        # Again: existing run directories and record are refused …
        code, out, err = self.record("--set", "MATRIX_LR=0.022")
        self.assertEqual(code, 2)
        self.assertIn("already exists", err)
        # … and --reuse finishes what is missing: seed 1337's eval, seed 2025 from the start.
        code, out, err = self.record("--set", "MATRIX_LR=0.022", "--reuse", "--overwrite")
        self.assertEqual(code, 0, out + err)
        calls = self.read_calls()
        self.assertEqual([(c[0], c[1]) for c in calls if c[0] != "golf-train"],
                         [("golf-eval", "runs/2026-05-01_mytest_seed1337/final_model.golf"),
                          ("golf-pack", "runs/2026-05-01_mytest_seed2025"),
                          ("golf-eval", "runs/2026-05-01_mytest_seed2025/final_model.golf")])
        self.assertEqual([c[4] for c in calls if c[0] == "golf-train"], ["SEED=2025"])
        with open(os.path.join(record, "submission.json")) as f:
            self.assertEqual(json.load(f)["seeds_ok"], 3)

    def test_bad_arguments(self):
        for args, msg in ((["--set", "SEED=1"], "--set SEED is set per seed"),
                          (["--set", "NOEQUALS"], "expected KEY=VALUE"),
                          (["--seeds", "42 x"], "'x' is not a non-negative integer"),
                          (["--bogus"], "unknown option --bogus")):
            code, _, err = self.record(*args)
            self.assertEqual(code, 2, args)
            self.assertIn(msg, err)
        os.remove(os.path.join(self.build, "eval", "golf-eval"))
        code, _, err = self.record()
        self.assertEqual(code, 2)
        self.assertIn("eval/golf-eval not built", err)
        self.assertFalse(os.path.exists(self.calls))  # nothing ran


if __name__ == "__main__":
    unittest.main()
