"""tests/scripts/test_plan_refit.py — the planner's golf refit (scripts/bench/plan_refit.py) and the
mid class of its fit (scripts/bench/plan_calibrate.py), on the data in the repository.

No build products: the refit's editing steps (golf's long-training line in pack/plan.h, the R0427L′
target in plan_records.sh, golf's rows of the jsonl) run on copies; the mid class is recomputed by hand
from plan_embedding_rows.json.
"""
import importlib
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts", "bench"))


def fresh(name, **env):
    """The module imported again under `env` (plan_calibrate reads its switches at import)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for m in ("plan_refit", "plan_calibrate"):
            sys.modules.pop(m, None)
        return importlib.import_module(name)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class MidClass(unittest.TestCase):
    def test_golfs_mid_offset_is_the_code_weighted_mean_of_its_rows_seen_1_to_15_times(self):
        pc = fresh("plan_calibrate")
        with open(pc.EMBEDDING_ROWS) as f:
            runs = json.load(f)
        num = den = 0.0
        for r in runs:
            for b in r["buckets"]:
                if b["rows"] and 1 <= b["lo"] < 16:
                    num += b["codes"] * (b["golf_bits_per_code"] - r["gaussian_bits"])
                    den += b["codes"]
        model = pc.fit_rows(pc.load()["golf"])
        self.assertAlmostEqual(model["offsets"]["embedding mid"], num / den, places=9)
        # measured −0.27 … −0.40 per run: well below the seen rows' offset (−0.008)
        self.assertLess(model["offsets"]["embedding mid"], model["offsets"]["embedding"] - 0.2)

    def test_brotli_has_no_mid_class(self):
        pc = fresh("plan_calibrate")
        model = pc.fit_rows(pc.load()["brotli"])
        self.assertEqual(model["offsets"]["embedding mid"], model["offsets"]["embedding"])

    def test_the_mid_class_the_width_and_the_step_variable_decide_golfs_held_out_error(self):
        # Under golf's format-2 coder (artifact/golf_coder.h), held out of their own fit: with the
        # shipped model (c_mid, c_rare = a + b·steps⁻² + c·ln dim) 4x128, 4x256 and 4x128-long are
        # within ±1 %; without the mid class 4x256 is under −1 % and 4x128-long over +1 %; without
        # golf's width term 4x128 (the one short run 128 wide) is over +1 %, and with the format-1
        # model's 1/√steps too.
        def held_out(label, **env):
            pc = fresh("plan_calibrate", **env)
            row = next(r for r in pc.load()["golf"] if r["label"] == label and not r["sets"])
            model = pc.fit_rows(pc.load(exclude=label)["golf"], exclude=label)
            return (pc.predict_bytes(row, model) - row["measured"]["file_bytes"]) / row["measured"]["file_bytes"]
        for label in ("4x128", "4x256", "4x128-long"):
            self.assertLess(abs(held_out(label)), 0.01, label)
        self.assertLess(held_out("4x256", PLAN_MID_CLASS="none"), -0.01)
        self.assertGreater(held_out("4x128-long", PLAN_MID_CLASS="none"), 0.01)
        self.assertGreater(held_out("4x128", PLAN_RARE_DIM_TERM="brotli"), 0.01)
        self.assertGreater(held_out("4x128", PLAN_RARE_STEPS_POWER="golf=-0.5"), 0.01)


class RefitEdits(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.refit = fresh("plan_refit")

    def test_golfs_long_training_line_is_found_and_rewritten(self):
        plan_h = os.path.join(self.tmp, "plan.h")
        shutil.copy(self.refit.PLAN_H, plan_h)
        with open(plan_h) as f:
            text = f.read()
        self.assertEqual(len(self.refit.TERM_LINE.findall(text)), 1)
        m = self.refit.TERM_LINE.search(text)
        out = self.refit.TERM_LINE.sub(lambda g: f"{g.group(1)}{-0.0123:.4f}{g.group(3)}{1.0234:.4f}{g.group(5)}", text, count=1)
        self.assertIn('{"golf", -0.0123, "an estimate: R0427L\'s lrzip blob x golf/lrzip 1.0234 ', out)
        self.assertEqual(len(out), len(text))  # only the two numbers changed
        self.assertNotEqual(float(m.group(2)), -0.0123)

    def test_the_term_is_solved_through_the_plan_and_written_in_both_files(self):
        # A stand-in plan: linear in the term over N codes, as golf-pack's (no clamping at these values).
        for name in ("PLAN_H", "RECORDS_SH"):
            path = os.path.join(self.tmp, os.path.basename(getattr(self.refit, name)))
            shutil.copy(getattr(self.refit, name), path)
            setattr(self.refit, name, path)
        with open(self.refit.PLAN_H) as f:
            x0 = float(self.refit.TERM_LINE.search(f.read()).group(2))
        n_codes, base = 35_913_728, 15_900_000
        self.refit.plan_r0427l = lambda: (round(base + x0 * n_codes / 8), n_codes)
        lz = {"golf_code_bytes": 15_300_000, "records_code_bytes": 15_266_812, "groups": []}
        lz_path = os.path.join(self.tmp, "lrzip.json")
        with open(lz_path, "w") as f:
            json.dump(lz, f)

        class Args:
            lrzip_json = lz_path
            golf_from_json = True
        old, new, target = self.refit.long_training_term(Args())
        self.assertEqual(old, x0)
        self.assertEqual(target, round(15_865_260 * 15_300_000 / 15_266_812))
        self.assertAlmostEqual(base + new * n_codes / 8, target, delta=1)  # the plan at the new term hits it
        with open(self.refit.PLAN_H) as f:
            self.assertIn(f'{{"golf", {new:.4f}, "an estimate: R0427L\'s lrzip blob x golf/lrzip 1.0022 ', f.read())
        with open(self.refit.RECORDS_SH) as f:
            self.assertIn("15865260 * 15300000 / 15266812", f.read())
        self.assertTrue(os.access(self.refit.RECORDS_SH, os.X_OK))

    def test_only_golfs_rows_of_the_jsonl_are_replaced_in_their_order(self):
        pc = self.refit.pc
        data = os.path.join(self.tmp, "plan_calibration.jsonl")
        shutil.copy(pc.DATA, data)
        pc.DATA = data
        with open(data) as f:
            before = [json.loads(line) for line in f if line.strip()]
        golf = [dict(m, marker=i) for i, m in enumerate(r for r in before if r["config"]["COMPRESSOR"] == "golf")]
        self.refit.replace_jsonl(golf)
        with open(data) as f:
            after = [json.loads(line) for line in f if line.strip()]
        self.assertEqual(len(after), len(before))
        k = 0
        for b, a in zip(before, after):
            if b["config"]["COMPRESSOR"] == "golf":
                self.assertEqual(a, dict(b, marker=k))
                k += 1
            else:
                self.assertEqual(a, b)
        self.assertEqual(k, len(golf))


if __name__ == "__main__":
    unittest.main()
