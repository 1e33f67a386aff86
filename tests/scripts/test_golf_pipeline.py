"""tests/scripts/test_golf_pipeline.py — scripts/golf_pipeline.py, the module the scripts share.

The helpers on small inputs; the stage table read from a stand-in golf-train (errors named) and,
when the build has one ($GOLF_BUILD_DIR/train/golf-train), from the real binary: the eval settings
the scripts pass to golf-eval are exactly core/config.cpp's eval stage less TTT_ENABLED, and cover
the hand-written rule record.sh and ablate.py used before. Also: no script imports another
script's private names.
"""
import ast
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "..", "scripts")
sys.path.insert(0, HERE)
sys.path.insert(0, SCRIPTS)
import fake_runs  # noqa: E402
import golf_pipeline as gp  # noqa: E402

REAL_TRAIN = os.path.join(os.environ.get("GOLF_BUILD_DIR", "/nonexistent"), "train", "golf-train")


class Helpers(unittest.TestCase):
    def test_num_takes_finite_numbers_only(self):
        obj = {"a": {"b": 2}, "t": True, "n": float("nan"), "s": "1.0", "i": float("inf")}
        self.assertEqual(gp.num(obj, "a", "b"), 2.0)
        for keys in (("t",), ("n",), ("s",), ("i",), ("a", "c"), ("a", "b", "c"), ("zz",)):
            self.assertIsNone(gp.num(obj, *keys), keys)

    def test_mean_std_is_the_sample_std_and_skips_none(self):
        self.assertEqual(gp.mean_std([]), (None, None))
        self.assertEqual(gp.mean_std([None, 2.0]), (2.0, None))
        m, s = gp.mean_std([1.0, 2.0, None, 4.0])
        self.assertAlmostEqual(m, 7 / 3)
        self.assertAlmostEqual(s, math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))

    def test_json_safe_replaces_non_finite_values(self):
        doc = gp.json_safe({"a": [float("nan"), float("inf"), -float("inf"), 1.5], "b": "x"})
        self.assertEqual(doc, {"a": [None, "inf", "-inf", 1.5], "b": "x"})
        json.dumps(doc, allow_nan=False)

    def test_read_json_names_the_problem(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        good, bad = os.path.join(tmp, "good.json"), os.path.join(tmp, "bad.json")
        with open(good, "w") as f:
            f.write('{"x": 1}')
        with open(bad, "w") as f:
            f.write("{oops")
        self.assertEqual(gp.read_json(good), ({"x": 1}, None))
        self.assertEqual(gp.read_json(os.path.join(tmp, "none.json")), (None, "no none.json"))
        obj, why = gp.read_json(bad)
        self.assertIsNone(obj)
        self.assertTrue(why.startswith("bad.json: malformed JSON"), why)

    def test_atomic_write_and_last_lines(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        path = os.path.join(tmp, "sub", "log.txt")
        gp.atomic_write(path, "a\n\n  b  \rc\n")
        self.assertEqual(os.listdir(os.path.dirname(path)), ["log.txt"])
        self.assertEqual(gp.last_lines(path, 2), ["b", "c"])
        self.assertEqual(gp.last_lines(path, 9), ["a", "b", "c"])
        self.assertEqual(gp.last_lines(os.path.join(tmp, "none")), [])

    def test_eval_sets_keep_config_order_and_skip_ttt_enabled(self):
        cfg = {"NUM_LAYERS": 11, "TTT_LR": 0.005, "TTT_ENABLED": 0, "DATA_PATH": "d", "EVAL_STRIDE": 64,
               "TTT_LORA_LR": 1e-4}
        keys = ["DATA_PATH", "TTT_ENABLED", "TTT_LR", "EVAL_STRIDE", "TTT_LORA_LR", "NOT_IN_CONFIG"]
        self.assertEqual(gp.eval_sets(cfg, keys), ["TTT_LR=0.005", "DATA_PATH=d", "EVAL_STRIDE=64", "TTT_LORA_LR=0.0001"])
        self.assertEqual(gp.as_set_args(["A=1", "B=x y"]), ["--set", "A=1", "--set", "B=x y"])

    def test_run_dir_stages(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        rd = gp.RunDir(os.path.join(tmp, "r"))
        self.assertFalse(rd.trained or rd.packed or rd.evaluated())
        with self.assertRaisesRegex(gp.PipelineError, r"r/config.json: no config.json"):
            rd.read_config()
        os.makedirs(rd.path)
        open(rd.file("ema_model.safetensors"), "w").close()
        self.assertFalse(rd.trained)  # the Hessians come last
        open(rd.file("hessians.safetensors"), "w").close()
        self.assertTrue(rd.trained)
        fake_runs.write_json(rd.pack_report, {})
        fake_runs.write_json(rd.config_json, [1])
        self.assertTrue(rd.packed)
        with self.assertRaisesRegex(gp.PipelineError, "not a JSON object"):
            rd.read_config()

    def test_seed_run_is_a_typed_record(self):
        run = gp.SeedRun(seed=42, run_id="r", run_dir=gp.RunDir("runs/r"),
                         stages=[gp.StageRun("train", skipped="done already (--reuse)"),
                                 gp.StageRun("pack", cmd=["golf-pack"], rc=1)], failed_stage="pack")
        self.assertTrue(run.stages[0].ok)
        self.assertFalse(run.stages[1].ok)
        d = run.to_json()
        self.assertEqual(d["run_dir"], "runs/r")
        self.assertEqual(d["stages"][1]["rc"], 1)
        json.dumps(d)


class StageSettings(unittest.TestCase):
    """stage_settings with stand-in golf-train binaries."""

    def tool(self, body):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        tools = gp.Tools.from_build_dir(tmp)
        os.makedirs(os.path.dirname(tools.train))
        with open(tools.train, "w") as f:
            f.write(f"#!{sys.executable}\nimport json, sys\n{body}\n")
        os.chmod(tools.train, 0o755)
        self.assertEqual(tools.missing(), [tools.pack, tools.eval])
        return tools

    def test_reads_the_keys_in_order(self):
        tools = self.tool('assert sys.argv[1:] == ["--print-config", "--stage", "eval", "--json"], sys.argv\n'
                          'print(json.dumps({"B": {"value": 1, "stages": ["eval"], "help": ""},'
                          ' "A": {"value": "x", "stages": ["train", "eval"], "help": "h"}}))')
        self.assertEqual(gp.stage_settings(tools, "eval"), ["B", "A"])

    def test_failures_name_the_command(self):
        for body, msg in (('sys.exit("golf-train: error: unknown stage")', r"failed \(exit 1\): golf-train: error: unknown"),
                          ('print("{")', "output is not JSON"),
                          ('print(json.dumps({"A": {"value": 1, "stages": ["train"]}}))', "of stage eval")):
            with self.subTest(body=body):
                with self.assertRaisesRegex(gp.PipelineError, "--print-config --stage eval --json.*" + msg):
                    gp.stage_settings(self.tool(body), "eval")


@unittest.skipUnless(os.access(REAL_TRAIN, os.X_OK), "no built golf-train (GOLF_BUILD_DIR)")
class AgainstTheRealGolfTrain(unittest.TestCase):
    """The scripts' view of the stages is golf-train's (core/config.cpp)."""

    @classmethod
    def setUpClass(cls):
        cls.tools = gp.Tools(train=REAL_TRAIN, pack="", eval="")
        # No setting from the test's environment: the defaults only.
        cls.clean_env = {k: os.environ[k] for k in ("PATH", "HOME", "LD_LIBRARY_PATH") if k in os.environ}
        cls.full = json.loads(subprocess.run([REAL_TRAIN, "--print-config"], capture_output=True, text=True,
                                             env=cls.clean_env, check=True).stdout)

    def stage(self, name):
        plain = json.loads(subprocess.run([REAL_TRAIN, "--print-config", "--stage", name], capture_output=True,
                                          text=True, env=self.clean_env, check=True).stdout)
        return list(plain)

    def test_every_stage_matches_the_plain_listing(self):
        for name in ("data", "model", "train", "quant", "eval"):
            with self.subTest(stage=name):
                plain = self.stage(name)
                self.assertEqual(gp.stage_settings(self.tools, name), plain)
                self.assertEqual([k for k in self.full if k in set(plain)], plain)  # a subset, same order

    def test_the_stand_in_tools_print_the_real_eval_stage(self):
        self.assertEqual(sorted(fake_runs.EVAL_STAGE), gp.stage_settings(self.tools, "eval"))  # golf-train sorts

    def test_eval_sets_are_the_eval_stage_and_cover_the_old_hand_written_rule(self):
        keys = gp.stage_settings(self.tools, "eval")
        sent = [kv.split("=", 1)[0] for kv in gp.eval_sets(self.full, keys)]
        self.assertEqual(set(sent), set(keys) - {"TTT_ENABLED"})
        # record.sh's rule (ablate.py added SMAT_ABLATION) …
        old = {k for k in self.full if k in ("DATA_PATH", "TOKENIZER_PATH", "DEVICE", "VAL_MAX_TOKENS", "SMAT_ABLATION")
               or (k.startswith(("EVAL_", "TTT_", "PHASED_TTT_", "GLOBAL_TTT_")) and k != "TTT_ENABLED")}
        # … and what golf-eval also reads that the rule missed (core/config.cpp's stage table).
        self.assertEqual(set(sent) - old, {"SEED", "DIST_TIMEOUT_SECONDS"})
        self.assertEqual(old - set(sent), set())
        model = set(gp.stage_settings(self.tools, "model"))
        self.assertEqual(model & set(sent), set(), "a model setting is pinned by the artifact, never sent")


class NoPrivateImports(unittest.TestCase):
    def test_no_script_uses_another_scripts_private_names(self):
        scripts = {f[:-3] for f in os.listdir(SCRIPTS) if f.endswith(".py")}
        problems = []
        for name in sorted(scripts):
            path = os.path.join(SCRIPTS, name + ".py")
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module in scripts:
                    problems += [f"{name}: from {node.module} import {a.name}" for a in node.names
                                 if a.name.startswith("_")]
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id in scripts | {"gp"} and node.attr.startswith("_")
                        and node.value.id != name):
                    problems.append(f"{name}: {node.value.id}.{node.attr}")
        self.assertEqual(problems, [])
        self.assertIn("golf_pipeline", scripts)


if __name__ == "__main__":
    unittest.main()
