#!/usr/bin/env python3
"""What a program of the build links: its golf libraries, its project files, its counted code.

The link closure is read from the Ninja build itself, not from the CMake files, so it is what the
linker really gets: the program's link command lists its static libraries (`ninja -t commands`),
each library lists its objects (`ninja -t query`), and each compiled object lists the source and
every header it read (`ninja -t deps`, the compiler's own dependency output; objects not yet built
contribute their source file only).

    scripts/link_closure.py [--build build] PROGRAM [PROGRAM ...]
        [--forbid LIB ...]        exit 1 when a program links one of these libraries (e.g. golf_quant)
        [--require LIB ...]       exit 1 when a program does not link one of these
        [--counted]               also the counted code of each program's closure: the counted files
                                  (artifact/code_manifest.txt) it compiles, measured by `golf-pack code`
        [--json OUT]              the result as JSON
        [--repo-root DIR]         the source tree the build was configured from (default: this one)

PROGRAM is a Ninja target path relative to the build folder (eval/golf-eval, pack/golf-pack,
train/golf-train) or a bare program name (golf-eval), looked up under eval/, pack/, train/, data/.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ninja(build, *args):
    r = subprocess.run(["ninja", "-C", build, "-t", *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"link_closure.py: ninja -t {' '.join(args)} failed: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def target_path(build, program):
    if "/" in program:
        return program
    for folder in ("eval", "pack", "train", "data"):
        r = subprocess.run(["ninja", "-C", build, "-t", "query", f"{folder}/{program}"], capture_output=True, text=True)
        if r.returncode == 0:
            return f"{folder}/{program}"
    sys.exit(f"link_closure.py: no program {program} in {build} (looked under eval/, pack/, train/, data/)")


def link_inputs(build, target):
    """The program's own objects and the project's static libraries on its link line."""
    lines = [l for l in ninja(build, "commands", target).splitlines() if l.strip()]
    if not lines:
        sys.exit(f"link_closure.py: ninja has no commands for {target}")
    words = lines[-1].split()  # the link is the last command
    objects = [w for w in words if w.endswith(".o") and not os.path.isabs(w)]
    libraries = [w for w in words if w.endswith(".a") and not os.path.isabs(w)]
    return objects, libraries


def library_objects(build, library):
    objects = []
    for line in ninja(build, "query", library).splitlines():
        line = line.strip()
        if line.endswith(".o") and not line.startswith("||"):
            objects.append(line)
    return objects


def project_files(build, obj, repo):
    """Files of the repository an object was compiled from (source and headers), relative paths."""
    out = ninja(build, "deps", obj)
    files = []
    for line in out.splitlines()[1:]:
        path = os.path.normpath(os.path.join(build, line.strip()))
        inside_build = path == build or path.startswith(build + os.sep)
        if path.startswith(repo + os.sep) and not inside_build and not os.path.isdir(path):
            files.append(os.path.relpath(path, repo))
    if not files:  # not built yet (or no deps recorded): the source named in the object's path
        m = re.match(r"(.*)/CMakeFiles/[^/]+\.dir/(.*)\.o$", obj)
        if m:
            files.append(os.path.normpath(os.path.join(m.group(1), m.group(2))))
    return files


def library_name(path):
    return re.sub(r"^lib(.*)\.a$", r"\1", os.path.basename(path))


def counted_files(build, repo):
    """Every counted file, as golf-pack's manifest resolves it (written out by `golf-pack code`)."""
    with tempfile.TemporaryDirectory(prefix="golf-counted-") as tree:
        subprocess.run([os.path.join(build, "pack", "golf-pack"), "--repo-root", repo, "code", "--write-minified", tree],
                       check=True, capture_output=True)
        return {os.path.relpath(os.path.join(d, f), tree) for d, _, fs in os.walk(tree) for f in fs}


def counted_bytes(build, repo, files):
    """golf-pack code's count of exactly these files (a manifest listing them one per line)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as m:
        m.write("".join(f + "\n" for f in sorted(files)))
    try:
        r = subprocess.run([os.path.join(build, "pack", "golf-pack"), "--repo-root", repo, "--manifest", m.name, "code"],
                           check=True, capture_output=True, text=True)
    finally:
        os.unlink(m.name)
    total = re.search(r"counted code: ([\d,]+) bytes", r.stdout)
    if not total:
        sys.exit("link_closure.py: no 'counted code: N bytes' line in golf-pack code's output:\n" + r.stdout)
    return int(total.group(1).replace(",", "")), r.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("programs", nargs="+")
    p.add_argument("--build", default=os.path.join(REPO, "build"))
    p.add_argument("--forbid", nargs="*", default=[])
    p.add_argument("--require", nargs="*", default=[])
    p.add_argument("--counted", action="store_true")
    p.add_argument("--json")
    p.add_argument("--repo-root", default=REPO)
    a = p.parse_args()
    build, repo = os.path.abspath(a.build), os.path.abspath(a.repo_root)
    counted = counted_files(build, repo) if a.counted else None
    report, failures = {}, []
    for program in a.programs:
        target = target_path(build, program)
        objects, libraries = link_inputs(build, target)
        names = [library_name(l) for l in libraries]
        files = set()
        for obj in objects + [o for l in libraries for o in library_objects(build, l)]:
            files.update(project_files(build, obj, repo))
        entry = {"target": target, "libraries": names, "files": sorted(files)}
        print(f"{target}: links {' '.join(names)}")
        print(f"  {len(files)} project files compiled in")
        if counted is not None:
            mine = sorted(files & counted)
            entry["counted_files"] = mine
            entry["counted_bytes"], _ = counted_bytes(build, repo, mine)
            print(f"  counted code of its closure: {len(mine)} files, {entry['counted_bytes']:,} bytes")
        for lib in a.forbid:
            if lib in names:
                failures.append(f"{target} links {lib}")
        for lib in a.require:
            if lib not in names:
                failures.append(f"{target} does not link {lib}")
        report[program] = entry
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    for f in failures:
        print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
