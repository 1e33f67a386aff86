"""tests/scripts/test_plot_runs.py — scripts/plot_runs.py writes valid PNGs for several runs."""
import io
import os
import shutil
import struct
import sys
import tempfile
import unittest
import zlib
from contextlib import redirect_stderr, redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import fake_runs  # noqa: E402
import plot_runs  # noqa: E402


def png_size(path):
    """(width, height) of a PNG, after checking the signature and every chunk's CRC."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", f"{path}: chunk order"
    return struct.unpack(">II", chunks[0][1][:8])


class PlotRuns(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.runs = [fake_runs.make_run(os.path.join(self.tmp, f"run{s}"), s, bpb)
                     for s, bpb in ((42, 1.080), (1337, 1.082), (2025, 1.079))]

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_multiple_runs_to_png(self):
        runs = [plot_runs.load_run(r, f"seed {i}") for i, r in enumerate(self.runs)]
        self.assertEqual(len(runs[0].train), 9)
        self.assertEqual(len(runs[0].val), 4)  # post_ema / calibration events are not curve points
        self.assertAlmostEqual(runs[0].nats_per_bpb, fake_runs.NATS_PER_BPB, places=12)
        out = os.path.join(self.tmp, "plots")
        paths = plot_runs.plot_runs(runs, out, title="three seeds")
        self.assertEqual(sorted(os.path.basename(p) for p in paths), sorted(plot_runs.PLOT_FILES))
        for p in paths:
            self.assertGreater(os.path.getsize(p), 5000)
            w, h = png_size(p)
            self.assertGreater(w, 500)
            self.assertGreater(h, 300)

    def test_cli_with_labels_and_a_run_without_val(self):
        # A run with train events only: train loss stays in nats for every run.
        with open(os.path.join(self.runs[2], "metrics.jsonl")) as f:
            lines = f.read().splitlines()
        with open(os.path.join(self.runs[2], "metrics.jsonl"), "w") as f:
            f.write("\n".join(l for l in lines if '"train"' in l) + "\n")
        self.assertIsNone(plot_runs.load_run(self.runs[2]).nats_per_bpb)
        out = os.path.join(self.tmp, "cli")
        o, e = io.StringIO(), io.StringIO()
        with redirect_stdout(o), redirect_stderr(e):
            code = plot_runs.main([f"{self.runs[0]}=baseline", self.runs[1], self.runs[2], "--out", out])
        self.assertEqual(code, 0, e.getvalue())
        self.assertEqual(len(o.getvalue().split()), 2)
        for name in plot_runs.PLOT_FILES:
            png_size(os.path.join(out, name))

    def test_malformed_metrics_is_an_error_naming_file_and_line(self):
        with open(os.path.join(self.runs[1], "metrics.jsonl"), "a") as f:
            f.write('{"event":"train","step":5000,"train_loss":\n')
        out = os.path.join(self.tmp, "bad")
        e = io.StringIO()
        with redirect_stderr(e):
            code = plot_runs.main([self.runs[0], self.runs[1], "--out", out])
        self.assertEqual(code, 2)
        self.assertIn("metrics.jsonl:16: malformed JSON", e.getvalue())
        self.assertFalse(os.path.exists(out))

    def test_missing_field_and_missing_file(self):
        with open(os.path.join(self.runs[0], "metrics.jsonl"), "w") as f:
            f.write('{"event":"val","step":0,"val_loss":3.0,"train_time_ms":0}\n')
        with self.assertRaisesRegex(plot_runs.MetricsError, "numeric 'val_bpb'"):
            plot_runs.load_run(self.runs[0])
        with self.assertRaisesRegex(plot_runs.MetricsError, "cannot read"):
            plot_runs.load_run(os.path.join(self.tmp, "nope"))


if __name__ == "__main__":
    unittest.main()
