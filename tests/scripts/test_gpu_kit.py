#!/usr/bin/env python3
"""The GPU kit (scripts/gpu/) on a CPU machine, so it cannot rot between GPU runs.

  * bundle.sh --tiny stages a bundle whose binaries find our libraries through $ORIGIN/../lib, and
    refuses (leaving nothing) when the bundle is over its size limit;
  * check.sh --cpu, run from a copy of the source tree without any build folder (as on the GPU
    machine), runs every row: CUDA rows SKIP, the rest PASS/OK, the table is printed last and the
    report JSON, the artifact and the logs are written;
  * report.py's parsers read golf-train's log lines and gtest's output as check.sh needs.
Needs the build (GOLF_BUILD_DIR), the pinned venv's python (running this file) and ../shared.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REPORT = os.path.join(ROOT, "scripts", "gpu", "report.py")
VENV = sys.prefix  # the interpreter running the tests: the pinned torch venv


def copy_tree_without_build(dst: str) -> None:
    """The source tree as the device tool sends it: tracked and untracked-not-ignored files."""
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-co", "--exclude-standard", "-z"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dst, rel))


def load_json(path: str):
    with open(path) as f:
        return json.load(f)


def bundle(out: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(ROOT, "scripts", "gpu", "bundle.sh"), "--tiny", "--out", out, *args],
                          capture_output=True, text=True, timeout=600)


class ReportParsers(unittest.TestCase):
    def run_report(self, *args: str) -> str:
        return subprocess.run([sys.executable, REPORT, *args], capture_output=True, text=True, check=True).stdout

    def test_train_log_gives_steady_state_memory_and_breakdown(self):
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "train.log")
            with open(log, "w") as f:
                f.write("model_params:35944536 device:cuda:0 grad_accum_steps:1 micro_batch_tokens:98304 val_tokens:131071\n")
                # step 1 pays one-off costs; steps 2..5 take 100 ms each
                for step, t in ((1, 900), (2, 1000), (3, 1100), (4, 1200), (5, 1300)):
                    f.write(f"step:{step}/5 train_loss:6.0000 train_time:{t}ms step_avg:{t / step:.2f}ms tok/s:1\n")
                f.write("stopping_early: step:5 train_time:1300ms\n")
                f.write("peak memory allocated: 40200 MiB reserved: 41000 MiB\n")
                f.write("step_breakdown: forward:30.00ms backward:60.00ms optimizer:9.50ms comm:0.00ms steps:5\n")
            out = dict(line.split("=", 1) for line in self.run_report("train-log", log).split())
        self.assertEqual(float(out["ms_per_step"]), 100.0)
        self.assertEqual(int(out["tokens_per_s"]), 983040)
        self.assertEqual(float(out["step_avg_ms"]), 260.0)
        self.assertEqual((out["peak_allocated_mib"], out["peak_reserved_mib"]), ("40200", "41000"))
        self.assertEqual((float(out["forward_ms"]), float(out["backward_ms"]), float(out["optimizer_ms"])), (30, 60, 9.5))
        self.assertEqual(out["profiled_steps"], "5")

    def test_gtest_verdicts(self):
        cases = {
            "[       OK ] A.B (3 ms)\n": "PASS",
            "[  SKIPPED ] A.B (0 ms)\n": "SKIP",
            "[       OK ] A.B (3 ms)\n[  FAILED  ] A.C (1 ms)\n": "FAIL",
            "no tests ran\n": "FAIL",
        }
        with tempfile.TemporaryDirectory() as d:
            for text, want in cases.items():
                path = os.path.join(d, "log")
                with open(path, "w") as f:
                    f.write(text)
                self.assertEqual(self.run_report("gtest", path).split("\n")[0], want, text)

    def test_rows_and_table(self):
        with tempfile.TemporaryDirectory() as d:
            rows = os.path.join(d, "rows")
            self.run_report("row", rows, "a.first", "PASS", "fine")
            self.run_report("row", rows, "b.second", "OOM", "too big", "ms_per_step=12.5")
            with self.assertRaises(subprocess.CalledProcessError):
                self.run_report("row", rows, "c", "MAYBE", "not a status")
            table = self.run_report("finish", rows, "--json", os.path.join(d, "r.json"), "--meta", "card=X")
            report = load_json(os.path.join(d, "r.json"))
        self.assertEqual([r["row"] for r in report["rows"]], ["a.first", "b.second"])
        self.assertEqual(report["rows"][1]["ms_per_step"], 12.5)
        self.assertEqual(report["counts"]["OOM"], 1)
        self.assertEqual(report["card"], "X")
        self.assertIn("ms_per_step=12.5", table)
        self.assertTrue(table.strip().split("\n")[-1].startswith("totals:"))


class BundleAndCpuCheck(unittest.TestCase):
    def test_bundle_over_its_size_limit_is_refused_and_leaves_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, ".gpubundle")
            r = bundle(out, "--limit-mib", "1")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("over the 1 MiB limit", r.stderr)
            self.assertEqual(os.listdir(d), [])

    def test_check_cpu_runs_every_row_from_a_tree_without_build(self):
        with tempfile.TemporaryDirectory() as d:
            box = os.path.join(d, "box")
            copy_tree_without_build(box)
            self.assertFalse(os.path.exists(os.path.join(box, "build")))
            r = bundle(os.path.join(box, ".gpubundle"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"bundle: .* MiB \(\d+ bytes, limit 58 MiB\)")
            b = os.path.join(box, ".gpubundle")
            manifest = load_json(os.path.join(b, "manifest.json"))
            self.assertEqual(manifest["mode"], "tiny")
            self.assertLessEqual(manifest["bytes"], 58 * 2**20)
            self.assertGreaterEqual(manifest["train_tokens"], 98305)
            self.assertIn("libsentencepiece.so.0", manifest["libs"])
            runpath = subprocess.run(["readelf", "-d", os.path.join(b, "bin", "golf-train")], capture_output=True,
                                     text=True).stdout
            self.assertIn("[$ORIGIN/../lib]", runpath)
            if shutil.which("zpaq"):  # the counted code's compressor travels too (check.sh puts bin/ on PATH)
                self.assertTrue(os.access(os.path.join(b, "bin", "zpaq"), os.X_OK))

            out = os.path.join(d, "out")
            env = {k: v for k, v in os.environ.items() if not k.startswith("GOLF_")}
            env.update(GOLF_TORCH_VENV=VENV, LD_LIBRARY_PATH="")
            r = subprocess.run([os.path.join(box, "scripts", "gpu", "check.sh"), "--cpu", "--out", out], cwd=box,
                               env=env, capture_output=True, text=True, timeout=900)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertTrue(r.stdout.strip().split("\n")[-1].startswith("totals:"), r.stdout)
            report = load_json(os.path.join(out, "gpu-report.json"))
            status = {row["row"]: row["status"] for row in report["rows"]}
            want = {
                "env.gpu": "SKIP", "env.torch": "PASS", "env.binaries": "PASS", "env.sdpa_backend": "SKIP",
                "kernel.softcap_ce": "SKIP", "tensor_io.gpu_save": "SKIP", "gptq.aten_cuda": "SKIP",
                "model.bf16_cuda_vs_twin": "SKIP", "dist.gloo_group_of_one": "PASS", "dist.nccl_group_of_one": "SKIP",
                "train.noloop": "OK", "train.loop": "OK", "train.loop_accum2": "SKIP", "pack": "OK",
                "eval.compliance": "PASS", "eval.sliding_ttt": "OK", "twin.sdpa_check": "PASS", "twin.eager": "OK",
                "twin.compile": "OK",
            }
            for name, s in want.items():
                self.assertEqual(status.get(name), s, f"{name}: {[r for r in report['rows'] if r['row'] == name]}")
            rows = {row["row"]: row for row in report["rows"]}
            for key in ("ms_per_step", "tokens_per_s", "forward_ms", "backward_ms", "optimizer_ms"):
                self.assertGreater(rows["train.noloop"][key], 0, key)
            self.assertGreater(rows["eval.sliding_ttt"]["ttt_tokens_per_s"], 0)
            self.assertGreater(rows["twin.eager"]["ratio_golf_over_twin"], 0)
            self.assertEqual(report["mode"], "cpu")
            for f in ("artifact.golf", "logs.tar.xz", "gpu-report.md"):
                self.assertTrue(os.path.exists(os.path.join(out, f)), f)

            # Isolation and the budget: a row that crashes is reported FAIL and the next rows run;
            # rows past the budget are SKIPPED; the table is still printed last; the exit status is 1.
            out2 = os.path.join(d, "out2")
            env.update(GOLF_CHECK_CRASH_ROW="env.torch")
            r = subprocess.run([os.path.join(box, "scripts", "gpu", "check.sh"), "--cpu", "--out", out2, "--budget", "45"],
                               cwd=box, env=env, capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertTrue(r.stdout.strip().split("\n")[-1].startswith("totals:"), r.stdout)
            rows = {row["row"]: row for row in load_json(os.path.join(out2, "gpu-report.json"))["rows"]}
            self.assertEqual(rows["env.torch"]["status"], "FAIL")
            self.assertIn("without a result (exit 3", rows["env.torch"]["summary"])
            self.assertEqual(rows["env.binaries"]["status"], "PASS")
            self.assertEqual(rows["twin.compile"]["status"], "SKIP")
            self.assertIn("out of time", rows["twin.compile"]["summary"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
