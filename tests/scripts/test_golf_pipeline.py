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
REAL_PACK = os.path.join(os.environ.get("GOLF_BUILD_DIR", "/nonexistent"), "pack", "golf-pack")
REAL_EVAL = os.path.join(os.environ.get("GOLF_BUILD_DIR", "/nonexistent"), "eval", "golf-eval")


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


def report_reads(script: str) -> dict[str, set[str]]:
    """The key paths a script reads from the stage reports, found in its code: gp.num(pack|ev, "a", "b"),
    pack|ev.get("a") and pack|ev["a"] (also ttt.get("mode") for results.ttt), with a name bound by `for NAME in ("x", "y")` standing for each of its values.
    {"pack": {"bytes_model", "pre_quant.val_bpb", ...}, "eval": {...}}."""
    with open(os.path.join(SCRIPTS, script)) as f:
        tree = ast.parse(f.read())
    reads = {"pack": set(), "eval": set()}
    variable = {"pack": ("pack", []), "ev": ("eval", []), "ttt": ("eval", ["results", "ttt"])}

    def values(node, bound):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.Name) and node.id in bound:
            return bound[node.id]
        raise AssertionError(f"{script}:{node.lineno}: a report key that is neither a string nor a loop's string")

    def walk(node, bound):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Tuple) \
                and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.iter.elts):
            bound = {**bound, node.target.id: [e.value for e in node.iter.elts]}
        paths = []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args \
                and isinstance(node.args[0], ast.Name) and node.args[0].id in variable:
            if node.func.attr == "num" and isinstance(node.func.value, ast.Name) and node.func.value.id == "gp":
                paths = [(node.args[0].id, node.args[1:])]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in variable:
            paths = [(node.func.value.id, node.args[:1])]
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in variable:
            paths = [(node.value.id, [node.slice])]
        for name, keys in paths:
            combos = [[]]
            for k in keys:
                combos = [c + [v] for c in combos for v in values(k, bound)]
            report, prefix = variable[name]
            reads[report].update(".".join(prefix + c) for c in combos)
        for child in ast.iter_child_nodes(node):
            walk(child, bound)

    walk(tree, {})
    return reads


class ReportKeys(unittest.TestCase):
    """The keys the scripts read from golf-pack's and golf-eval's reports exist in the reports' schema."""

    def test_key_paths_name_every_key(self):
        doc = {"a": 1, "b": {"c": [1, 2]}, "rows": [{"x": 1}, {"y": 2}], "empty": []}
        self.assertEqual(gp.key_paths(doc), {"a", "b", "b.c", "rows", "rows[].x", "rows[].y", "empty"})

    def test_the_reads_are_found_in_the_scripts(self):
        reads = report_reads("make_record.py")
        for path in ("bytes_model", "limit", "pre_quant.val_bpb", "quantized.val_bpb"):
            self.assertIn(path, reads["pack"])
        for path in ("final.val_bpb", "results.ttt.val_bpb", "results.sliding.val_bpb", "train_data_read",
                     "compliance", "time.projected_8gpu_seconds", "bytes_code"):
            self.assertIn(path, reads["eval"])
        self.assertIn("results.ttt.mode", reads["eval"])
        self.assertIn("results.plain.val_bpb", report_reads("ablate.py")["eval"])  # through `for proto in (…)`

    def test_report_schema_names_the_command(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        tool = os.path.join(tmp, "golf-eval")
        with open(tool, "w") as f:
            f.write(f"#!{sys.executable}\nimport sys\nassert sys.argv[1:] == ['--print-report-schema']\nprint('[1]')\n")
        os.chmod(tool, 0o755)
        with self.assertRaisesRegex(gp.PipelineError, "golf-eval --print-report-schema: expected a JSON object"):
            gp.report_schema(tool)

    @unittest.skipUnless(os.access(REAL_PACK, os.X_OK) and os.access(REAL_EVAL, os.X_OK),
                         "no built golf-pack and golf-eval (GOLF_BUILD_DIR)")
    def test_every_key_read_is_in_the_real_schema_and_the_stand_ins_write_no_other(self):
        schema = {"pack": gp.key_paths(gp.report_schema(REAL_PACK)), "eval": gp.key_paths(gp.report_schema(REAL_EVAL))}
        for script in ("make_record.py", "ablate.py"):
            for report, paths in report_reads(script).items():
                for path in sorted(paths):
                    with self.subTest(script=script, path=path):
                        self.assertIn(path, schema[report], f"{script} reads {path}, which {report}'s report lacks")
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        run = fake_runs.make_run(os.path.join(tmp, "r"), 1337, 1.08)
        for report, name in (("pack", "final_model.golf.json"), ("eval", "eval.json")):
            with open(os.path.join(run, name)) as f:
                written = gp.key_paths(json.load(f))
            self.assertEqual(written - schema[report], set(), f"the stand-in {name} has keys the real one cannot")


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
