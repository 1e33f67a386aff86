"""tests/scripts/test_doc_citations.py — every document that the repository cites is in it.

Source comments, tests, scripts, READMEs and docs cite the reference notes as `docs/reference/X.md`,
`docs/design.md`, `docs/...` or by a note's bare name (`quant-and-pack.md §1.4`). Each such citation
must name a file of this repository: a `docs/...` path from the repository root (or from the citing
file's folder), a bare note name under docs/reference/ or docs/. Paths of the upstream challenge
repository that the notes quote (records/track_10min_16mb/.../README.md) are not citations of ours
and are not checked. Also: no citation reaches outside the repository (../shared/docs, /work/...).
"""
import os
import re
import subprocess
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TEXT_SUFFIXES = (".h", ".cpp", ".cu", ".cuh", ".py", ".sh", ".md", ".cmake", ".txt", ".json")
DOCS_PATH = re.compile(r"(?<![\w/.-])((?:\.\./)*docs/[A-Za-z0-9_./-]*[A-Za-z0-9_])")
OUTSIDE = re.compile(r"(?:\.\./)+shared/docs|/work/shared/docs|docs/shared\b")


def reference_notes() -> set[str]:
    """The bare names that are citations: the notes under docs/reference/ and docs/design.md."""
    names = {f for f in os.listdir(os.path.join(ROOT, "docs", "reference")) if f.endswith(".md") and f != "README.md"}
    return names | {"design.md"}


def tracked_text_files() -> list[str]:
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return [f for f in out if f.endswith(TEXT_SUFFIXES) and not f.startswith("records/") and os.path.isfile(os.path.join(ROOT, f))]


def citations(text: str, notes: set[str]):
    """(line number, cited text) of docs/ paths and bare note names."""
    bare = re.compile(r"(?<![\w/.-])(" + "|".join(re.escape(n) for n in sorted(notes)) + r")(?![\w-])")
    for lineno, line in enumerate(text.splitlines(), 1):
        for m in DOCS_PATH.finditer(line):
            cited = m.group(1)
            if cited.endswith(".md") or "." not in os.path.basename(cited):  # a document or a folder, not an output file
                yield lineno, cited
        for m in bare.finditer(line):
            yield lineno, m.group(1)


def resolves(cited: str, citing_file: str) -> bool:
    here = os.path.dirname(os.path.join(ROOT, citing_file))
    candidates = [os.path.join(ROOT, cited.lstrip("./")) if cited.startswith("docs/") else None,
                  os.path.join(here, cited), os.path.join(ROOT, "docs", "reference", cited),
                  os.path.join(ROOT, "docs", cited)]
    return any(c and os.path.exists(os.path.normpath(c)) and os.path.normpath(c).startswith(ROOT + os.sep)
               for c in candidates)


class DocCitations(unittest.TestCase):
    def test_the_reference_notes_are_in_the_repository(self):
        notes = reference_notes()
        for name in ("rules-and-eval.md", "model-and-training.md", "quant-and-pack.md", "seed-techniques.md",
                     "pr1880.md", "gpu-readiness.md", "cpp-stack.md", "design.md"):
            self.assertIn(name, notes)
        self.assertTrue(os.path.isfile(os.path.join(ROOT, "docs", "design.md")))

    def test_every_citation_resolves_inside_the_repository(self):
        notes = reference_notes()
        files = tracked_text_files()
        self.assertGreater(len(files), 100)
        broken, outside, seen = [], [], 0
        for f in files:
            if f == "tests/scripts/test_doc_citations.py":
                continue  # its own patterns
            with open(os.path.join(ROOT, f), errors="replace") as fh:
                text = fh.read()
            for lineno, line in enumerate(text.splitlines(), 1):
                if OUTSIDE.search(line):
                    outside.append(f"{f}:{lineno}: {line.strip()[:120]}")
            for lineno, cited in citations(text, notes):
                seen += 1
                if not resolves(cited, f):
                    broken.append(f"{f}:{lineno}: {cited}")
        self.assertEqual(broken, [])
        self.assertEqual(outside, [])
        self.assertGreater(seen, 30)  # the patterns do find the citations

    def test_a_broken_citation_is_found(self):
        notes = reference_notes()
        found = [c for _, c in citations("// see quant-and-pack.md §1 and docs/reference/nope.md, docs/design.md",
                                         notes)]
        self.assertEqual(sorted(found), sorted(["quant-and-pack.md", "docs/reference/nope.md", "docs/design.md"]))
        self.assertFalse(resolves("docs/reference/nope.md", "model/model.cpp"))
        self.assertTrue(resolves("docs/design.md", "model/model.cpp"))
        self.assertTrue(resolves("quant-and-pack.md", "quant/gptq.h"))


if __name__ == "__main__":
    unittest.main()
