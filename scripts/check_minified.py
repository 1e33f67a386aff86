#!/usr/bin/env python3
"""Compile the minified copies of the counted C++ sources with the build's own flags.

The counted code is the minified archive (artifact/minify.h); this checks that what is counted is
still the program: golf-pack writes every counted file as archived into a temporary tree, and each
counted translation unit (a .cpp in build/compile_commands.json) is compiled from that tree with
-fsyntax-only, its #include "..." of project headers resolving to the minified headers. CUDA
translation units (.cu) are not compiled here (nvcc has no syntax-only mode); the token check in
tests/artifact/minify_test.cpp covers them.

    scripts/check_minified.py [--build build] [--jobs 2] [--manifest M] [FILE.cpp ...]
                                                  (default: every counted .cpp)

Exit status 0 when all compile; otherwise 1, with the compiler's messages of each failure.
"""
import argparse
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import tempfile


def compile_minified(entry, repo, build, tree):
    """One compile_commands entry, rewritten to read the minified tree, with -fsyntax-only."""
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":  # no object file
            skip = True
            continue
        if a.startswith("-I" + repo) and not a.startswith("-I" + build):
            a = "-I" + tree + a[2 + len(repo):]  # the repo's include dirs (root, gloo stub) in the tree
        elif a == entry["file"]:
            a = os.path.join(tree, os.path.relpath(entry["file"], repo))
        out.append(a)
    out.append("-fsyntax-only")
    r = subprocess.run(out, cwd=entry["directory"], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default=os.path.join(repo, "build"))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--manifest", help="counted-code manifest (default artifact/code_manifest.txt)")
    p.add_argument("files", nargs="*", help="counted .cpp files (relative to the repo root)")
    a = p.parse_args()
    build = os.path.abspath(a.build)
    golf_pack = os.path.join(build, "pack", "golf-pack")
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = {os.path.relpath(e["file"], repo): e for e in json.load(f)}
    with tempfile.TemporaryDirectory(prefix="golf-minified-") as tree:
        manifest = ["--manifest", os.path.abspath(a.manifest)] if a.manifest else []
        listing = subprocess.run([golf_pack, "--repo-root", repo, *manifest, "code", "--write-minified", tree],
                                 capture_output=True, text=True)
        if listing.returncode != 0:
            sys.exit(f"check_minified: golf-pack code failed:\n{listing.stdout}{listing.stderr}")
        counted = sorted(os.path.relpath(os.path.join(d, n), tree) for d, _, ns in os.walk(tree) for n in ns)
        wanted = a.files or [f for f in counted if f.endswith(".cpp")]
        for f in wanted:
            if f not in counted:
                sys.exit(f"check_minified: {f} is not counted (artifact/code_manifest.txt)")
            if f not in entries:
                sys.exit(f"check_minified: {f} has no entry in {build}/compile_commands.json")
        failed = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
            results = pool.map(lambda f: (f, *compile_minified(entries[f], repo, build, tree)), wanted)
            for f, rc, log in results:
                print(f"{'ok  ' if rc == 0 else 'FAIL'} {f}", flush=True)
                if rc != 0:
                    failed += 1
                    print(log)
        print(f"{len(wanted) - failed} of {len(wanted)} minified translation units compile")
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
