"""tests/scripts/test_lqer_sizes.py — scripts/bench/lqer_sizes.py --run: rows, error math, --val
once per LQER setting, the run directory left untouched, and bad input as one clear error.

A stand-in golf-pack (a Python script in a fake build dir) writes artifacts and reports with known
numbers; the relative error is checked against numpy on the same weights. The real golf-pack
never runs here.
"""
import json
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import unittest

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "bench", "lqer_sizes.py")

# The stand-in: bytes = 1000 (+ 100 with LQER, − 50 for golf), two GPTQ matrices a (8 values)
# and b (24 values) with ‖W − Ŵ‖ 3 and 4 (LQER corrects b to 2), one fp16 tensor, one int8 gate
# without an error; --val adds bpb figures; FAKE_PACK_TOUCH_RUN=1 writes into the run directory.
FAKE_PACK = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    args = sys.argv[1:]
    run, out = args[0], args[args.index("--out") + 1]
    sets = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--set")
    lqer = sets.get("LQER_ENABLED") == "1"
    size = 1000 + (100 if lqer else 0) - (50 if sets["COMPRESSOR"] == "golf" else 0)
    with open(os.path.join(os.path.dirname(out), "calls.log"), "a") as f:
        f.write(" ".join(args[1:]) + "\\n")
    open(out, "wb").write(b"x" * size)
    tensors = [{{"name": "a", "bits": 6, "params": 8, "frob_error": 3.0, "lqer": False, "lqer_frob_error": 0}},
               {{"name": "b", "bits": 6, "params": 24, "frob_error": 4.0, "lqer": lqer,
                 "lqer_frob_error": 2.0 if lqer else 0}},
               {{"name": "n", "bits": 16, "params": 4, "frob_error": 0, "lqer": False, "lqer_frob_error": 0}},
               {{"name": "g", "bits": 8, "params": 6, "frob_error": 0, "lqer": False, "lqer_frob_error": 0}}]
    rep = {{"bytes_model": size, "bytes_total": size + 500, "quantize_seconds": 1.0, "compress_seconds": 0.5,
            "tensors": tensors}}
    if "--val" in args:
        rep["pre_quant"] = {{"val_bpb": 2.0}}
        rep["quantized"] = {{"val_bpb": 2.1 if not lqer else 2.05}}
    if os.environ.get("FAKE_PACK_TOUCH_RUN"):
        open(os.path.join(run, "final_model.golf"), "wb").write(b"y")
    json.dump(rep, open(out + ".json", "w"))
    """)


def read(path):
    with open(path) as f:
        return f.read()


class LqerSizes(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        t = self.tmp.name
        os.makedirs(os.path.join(t, "build", "pack"))
        pack = os.path.join(t, "build", "pack", "golf-pack")
        with open(pack, "w") as f:
            f.write(FAKE_PACK.format(python=sys.executable))
        os.chmod(pack, os.stat(pack).st_mode | stat.S_IEXEC)
        self.run_dir = os.path.join(t, "run")
        os.makedirs(self.run_dir)
        g = torch.Generator().manual_seed(0)
        # 8 + 24 = 32 GPTQ'd values, as the stand-in's report says; tok_emb is one of them.
        self.weights = {"qo_bank": torch.randn(2, 2, 2, generator=g), "mlp_up_bank": torch.randn(2, 3, 4, generator=g),
                        "tok_emb.weight": torch.randn(1, 0, generator=g), "norm.weight": torch.randn(4, generator=g)}
        save_file(self.weights, os.path.join(self.run_dir, "ema_model.safetensors"))
        save_file({"x": torch.zeros(1)}, os.path.join(self.run_dir, "hessians.safetensors"))
        with open(os.path.join(self.run_dir, "config.json"), "w") as f:
            json.dump({"NUM_LAYERS": 11, "MODEL_DIM": 512, "VOCAB_SIZE": 8192, "TRAIN_BATCH_TOKENS": 2048,
                       "TRAIN_SEQ_LEN": 256, "EMA_DECAY": 0.0, "DEVICE": "cpu"}, f)
        with open(os.path.join(self.run_dir, "train.log"), "w") as f:
            f.write("step:5/100000 train_loss:9.1 train_time:40000ms step_avg:8000ms\n"
                    "step:10/100000 train_loss:7.25 train_time:81234ms step_avg:8123ms tok/s:250\n"
                    "stopping_early: wallclock_cap\n")

    def tearDown(self):
        self.tmp.cleanup()

    def lqer_sizes(self, *args, env=None):
        t = self.tmp.name
        return subprocess.run([sys.executable, SCRIPT, "--run", self.run_dir, "--build-dir", os.path.join(t, "build"),
                               "--work", os.path.join(t, "work"), *args], capture_output=True, text=True,
                              env={**os.environ, **(env or {})})

    def test_rows_error_and_val_once_per_lqer_setting(self):
        out = os.path.join(self.tmp.name, "rows.json")
        r = self.lqer_sizes("--val", "--val-tokens", "2048", "--compressors", "brotli,golf", "--json", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(read(out))
        self.assertIn("10 steps (20,480 tokens) in 81 s, last logged train_loss 7.25", doc["training"])
        rows = {(x["lqer"], x["compressor"]): x for x in doc["rows"]}
        self.assertEqual([(x["compressor"], x["lqer"]) for x in doc["rows"]],
                         [("brotli", 0), ("brotli", 1), ("golf", 0), ("golf", 1)])
        self.assertEqual(rows[(0, "brotli")]["bytes_model"], 1000)
        self.assertEqual(rows[(1, "golf")]["bytes_model"], 1050)
        # numpy on the same weights: ‖W‖² over the GPTQ weights, the errors 3 and 4 (LQER: 4 → 2).
        norm2 = sum(float(np.sum(self.weights[n].double().numpy() ** 2)) for n in ("qo_bank", "mlp_up_bank", "tok_emb.weight"))
        for comp in ("brotli", "golf"):
            self.assertAlmostEqual(rows[(0, comp)]["rel_error"], np.sqrt((9 + 16) / norm2), places=12)
            self.assertAlmostEqual(rows[(1, comp)]["rel_error"], np.sqrt((9 + 4) / norm2), places=12)
        self.assertEqual(rows[(1, "brotli")]["corrected"], [{"name": "b", "before": 4.0, "after": 2.0}])
        # --val ran once per LQER setting, on the first compressor; the others carry its figures.
        calls = read(os.path.join(self.tmp.name, "work", "calls.log")).splitlines()
        self.assertEqual(["--val" in c for c in calls], [True, True, False, False])
        self.assertTrue(all("VAL_MAX_TOKENS=2048" in c for c in calls[:2]))
        self.assertTrue(all("ARTIFACT_BUDGET=1000000000" in c for c in calls))
        self.assertEqual(rows[(1, "golf")]["post_bpb"], 2.05)
        self.assertEqual(rows[(1, "golf")]["measured_on"], "brotli")
        self.assertIn("LQER costs +100 bytes with brotli", r.stdout)
        self.assertEqual(sorted(os.listdir(self.run_dir)),
                         ["config.json", "ema_model.safetensors", "hessians.safetensors", "train.log"])

    def test_a_run_directory_written_into_is_an_error(self):
        r = self.lqer_sizes("--compressors", "brotli", "--lqer", "0", env={"FAKE_PACK_TOUCH_RUN": "1"})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("changed while packing", r.stderr)

    def test_matrices_other_than_the_gptq_weights_are_an_error(self):
        self.weights["kv_bank"] = torch.ones(3)  # 3 more GPTQ'd values than the report's 32
        save_file(self.weights, os.path.join(self.run_dir, "ema_model.safetensors"))
        r = self.lqer_sizes("--compressors", "brotli", "--lqer", "0")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("the report's GPTQ matrices hold 32 values", r.stderr)
        self.assertIn("hold 35", r.stderr)

    def test_an_unfinished_run_is_one_clear_error(self):
        os.remove(os.path.join(self.run_dir, "hessians.safetensors"))
        r = self.lqer_sizes()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no hessians.safetensors", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "work", "calls.log")))


if __name__ == "__main__":
    unittest.main()
