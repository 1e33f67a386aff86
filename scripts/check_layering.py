#!/usr/bin/env python3
"""scripts/check_layering.py [--root DIR] — the include layering of issue 17: libraries below,
stages on top, and no library includes a stage (nor a library above it).

Each library folder may include only the folders listed for it below; an include of a project
folder not listed is one line `FAIL file:line: folder includes "path"` and exit 1. Stages (data,
train, pack, eval) may include any library; includes outside the project's folders (gloo's stub,
system headers) are not checked.
"""
import argparse
import re
import sys
from pathlib import Path

LIBRARIES = {  # folder: the project folders its sources may include
    "core": {"core"},
    "model": {"core", "model"},                          # the model knows nothing of packing or scoring
    "artifact": {"core", "model", "artifact"},           # the decoder half loads weights into a Model
    "scoring": {"core", "model", "scoring"},
    "quant": {"core", "artifact", "quant"},              # writes the forms artifact/codes.h decodes
}
STAGES = {"data", "train", "pack", "eval"}
SOURCES = {".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh"}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def violations(root):
    folders = set(LIBRARIES) | STAGES
    for lib, allowed in LIBRARIES.items():
        for f in sorted((root / lib).rglob("*")):
            if f.suffix not in SOURCES:
                continue
            for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                top = m.group(1).split("/", 1)[0]
                if top in folders and top not in allowed:
                    yield f"FAIL {f.relative_to(root)}:{n}: {lib} includes \"{m.group(1)}\""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    root = Path(p.parse_args().root)
    missing = [lib for lib in LIBRARIES if not (root / lib).is_dir()]
    if missing:
        sys.exit(f"check_layering: {root} has no library folder {', '.join(missing)}")
    bad = list(violations(root))
    for line in bad:
        print(line)
    if bad:
        return 1
    print(f"layering OK: {', '.join(LIBRARIES)} include no stage ({', '.join(sorted(STAGES))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
