"""scripts/check_layering.py: the repository's libraries include no stage, and a planted stage
include in a library is caught with its file and line."""
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "scripts" / "check_layering.py"


def check(root):
    return subprocess.run([sys.executable, str(CHECK), "--root", str(root)], capture_output=True, text=True)


class Layering(unittest.TestCase):
    def test_the_repository_keeps_its_layers(self):
        r = check(REPO)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("layering OK", r.stdout)

    def test_a_library_including_a_stage_fails_naming_the_line(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            for lib in ["core", "model", "artifact", "scoring", "quant"]:
                shutil.copytree(REPO / lib, root / lib)
            f = root / "model" / "model.cpp"
            lines = f.read_text().splitlines()
            lines.insert(1, '#include "pack/plan.h"')
            f.write_text("\n".join(lines) + "\n")
            r = check(root)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn('FAIL model/model.cpp:2: model includes "pack/plan.h"', r.stdout)

    def test_the_model_including_the_scorer_fails(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            for lib in ["core", "model", "artifact", "scoring", "quant"]:
                (root / lib).mkdir()
            (root / "model" / "x.h").write_text('#pragma once\n#include "scoring/protocols.h"\n')
            r = check(root)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn('FAIL model/x.h:2: model includes "scoring/protocols.h"', r.stdout)


if __name__ == "__main__":
    unittest.main()
