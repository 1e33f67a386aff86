#!/usr/bin/env python3
"""scripts/bench/plan_refit.py — refit golf's size model after a change to golf's coder (issue 16 §2).

  plan_refit.py --lrzip-json LRZIP_PERGROUP.json [--work DIR] [--reuse] [--skip-build] [--skip-table]
                [--golf-from-json]

golf's coder changes golf's bytes, not the GPTQ codes: every calibration artifact is packed again
with the current build (COMPRESSOR=golf; the artifacts of an earlier coder version are refused by the
new decoder, so none is reused unless --reuse) and measured again, and only golf's data are replaced:

  1. for every golf row of scripts/bench/plan_calibration.jsonl (its run, label and grid setting):
     golf-pack RUN --out WORK/LABEL-gI.golf (GPTQ with the run's Hessians; what `plan_calibrate.py
     measure` does), then `golf-pack plan --measure` under COMPRESSOR=golf (each part's bytes by
     ablation); the rows of other compressors stay as they are, in their order;
  2. scripts/bench/plan_embedding_rows.py on each run's own-settings artifact (edges
     0,1,2,4,8,16,64,256): the golf columns of scripts/bench/plan_embedding_rows.json (golf bits per
     code and bytes per bucket, the whole matrix's golf bytes) are replaced; brotli's and the
     coder-independent columns (rows, codes, order-0 bits, near repeats) stay, and any that differ
     (the GPTQ codes changed) are reported;
  3. plan_calibrate.py fit: pack/plan_calibration.h (brotli's line comes out as before: its data are
     untouched), then golf-pack is rebuilt;
  4. golf's long-training term (pack/plan.h kLongTrainingTerms): solved so that golf's plan of
     R0427L's configuration (frontier_0427.json, COMPRESSOR=golf, no shards: every row seen; artifact
     bytes without counted code, as scripts/bench/plan_records.sh) equals golf/lrzip × R0427L's blob
     15,865,260. golf/lrzip = golf's bytes on the code groups of the CPU-trained 11×512 weights
     (golf-coder-bench --only golf on the artifact step 1 packed, the current coder) / the json's
     records_code_bytes (scripts/bench/lrzip_pergroup.sh's `lrzip -z -L 9` on the records' layout of
     the same codes: it does not depend on golf's coder, so it need not be rerun; --golf-from-json
     takes golf's side from the json as well). The plan is linear in the term over the N GPTQ codes it
     touches: x' = x + 8 · (target − plan) / N, written with 4 decimals in pack/plan.h (its value and
     the ratio in its source string) and in plan_records.sh's R0427L′ target; golf-pack is rebuilt
     and the plan checked against the target;
  5. scripts/bench/plan_table.py --out scripts/bench/plan_table.md.

It prints golf's coefficients before and after, every measured row against its earlier value, the
new term, and each step's wall time. Heavy (packs seven artifacts): run it alone, niced. Environment:
GOLF_BUILD_DIR (default ROOT/build).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plan_calibrate as pc  # noqa: E402

sys.path.insert(0, os.path.join(pc.ROOT, "scripts"))
import golf_pipeline as gp  # noqa: E402

ROOT = pc.ROOT
ROWS_JSON = pc.EMBEDDING_ROWS
PLAN_H = os.path.join(ROOT, "pack", "plan.h")
RECORDS_SH = os.path.join(ROOT, "scripts", "bench", "plan_records.sh")
TABLE_MD = os.path.join(ROOT, "scripts", "bench", "plan_table.md")
EDGES = "0,1,2,4,8,16,64,256"
R0427L_BLOB = 15865260  # R0427L's published lrzip (pergroup) blob, bytes (docs/reference quant-and-pack.md §2.7)
GOLF_COLUMNS = ("golf_bits_per_code", "golf_bytes")  # per bucket; plus the run's matrix_golf_bytes
TERM_LINE = re.compile(r'(\{"golf", )(-?[0-9.]+)(, "an estimate: R0427L\'s lrzip blob x golf/lrzip )([0-9.]+)( )')


def numpy_python():
    """A Python with numpy for plan_embedding_rows.py: this one, else the pipeline's (scripts/golf_pipeline.py:
    GOLF_PYTHON, else the pinned venv under GOLF_CACHE or ~/.cache/golf)."""
    try:
        import numpy  # noqa: F401
        return sys.executable
    except ImportError:
        pass
    py = gp.default_python()
    if not os.path.exists(py):
        sys.exit(f"plan_refit: plan_embedding_rows.py needs numpy and {py} does not exist: set GOLF_PYTHON to a Python that has it")
    return py


def step(name, t0):
    print(f"[{time.time() - t0:7.1f} s] {name}", flush=True)


def write_atomic(path, text):
    """Writes `text` to `path` through a temporary file; an unchanged file is left alone (its mtime
    too, so the rebuild after it has nothing to do)."""
    if os.path.exists(path):
        with open(path) as f:
            if f.read() == text:
                return
    with open(path + ".tmp", "w") as f:
        f.write(text)
    if os.path.exists(path):
        shutil.copymode(path, path + ".tmp")  # plan_records.sh stays executable
    os.replace(path + ".tmp", path)


def rebuild(args):
    if args.skip_build:
        return
    pc.run(["cmake", "--build", pc.build_dir(), "-j2", "--target", "golf-pack", "golf-plan-rows", "golf-coder-bench"])


def measure_golf(args, golf_rows):
    """Packs and measures every golf row again; returns the new rows in the same order."""
    golf_pack = os.path.join(pc.build_dir(), "pack", "golf-pack")
    new_rows = []
    for old in golf_rows:
        i = pc.GRID.index(old["sets"])
        artifact = os.path.join(args.work, f"{old['label']}-g{i}.golf")
        t = time.time()
        if not (args.reuse and os.path.exists(artifact)):
            pc.run([golf_pack, old["run"], "--out", artifact, "--set", "COMPRESSOR=golf",
                    "--set", "ARTIFACT_BUDGET=1000000000"] + pc.sets_args(old["sets"]))
        packed = time.time() - t
        out = os.path.join(args.work, f"{old['label']}-g{i}-golf.json")
        pc.run([golf_pack, "plan", "--measure", artifact, "--config", os.path.join(old["run"], "config.json"),
                "--json", out, "--set", "COMPRESSOR=golf"] + pc.sets_args(old["sets"]))
        with open(out) as f:
            m = json.load(f)
        m.update({"label": old["label"], "run": old["run"], "sets": old["sets"]})
        new_rows.append(m)
        was, now = old["measured"], m["measured"]
        groups = " ".join(f"{g.split()[0]} {now['gptq_codes_by_group'].get(g, 0) - was['gptq_codes_by_group'].get(g, 0):+.0f}"
                          for g in pc.GROUPS if g in now["gptq_codes_by_group"] or g in was["gptq_codes_by_group"])
        print(f"  {old['label']} g{i}: {now['file_bytes']:,} bytes (was {was['file_bytes']:,}, "
              f"{now['file_bytes'] - was['file_bytes']:+,}; by group {groups}); pack {packed:.0f} s, "
              f"measure {time.time() - t - packed:.0f} s", flush=True)
    return new_rows


def replace_jsonl(new_golf):
    """The jsonl with golf's rows replaced in place (same order), the others untouched."""
    lines, k = [], 0
    with open(pc.DATA) as f:
        for line in f:
            if not line.strip():
                continue
            m = json.loads(line)
            if m["config"]["COMPRESSOR"] == "golf":
                lines.append(json.dumps(new_golf[k], sort_keys=True))
                k += 1
            else:
                lines.append(line.rstrip("\n"))
    assert k == len(new_golf)
    write_atomic(pc.DATA, "\n".join(lines) + "\n")


def embedding_rows(args, golf_rows):
    """plan_embedding_rows.py on each run's own-settings artifact; golf's columns merged into
    plan_embedding_rows.json."""
    with open(ROWS_JSON) as f:
        old = json.load(f)
    specs = []
    for m in golf_rows:
        if not m["sets"] and any(r["label"] == m["label"] for r in old):
            specs.append(f"{m['label']}={m['run']}={os.path.join(args.work, m['label'] + '-g0.golf')}")
    out = os.path.join(args.work, "plan_embedding_rows.json")
    pc.run([numpy_python(), os.path.join(ROOT, "scripts", "bench", "plan_embedding_rows.py"), *specs,
            "--edges", EDGES, "--json", out])
    with open(out) as f:
        new = {r["label"]: r for r in json.load(f)}
    for r in old:
        n = new.get(r["label"])
        if n is None:
            print(f"  {r['label']}: no golf calibration row, kept as it was")
            continue
        if len(n["buckets"]) != len(r["buckets"]):
            sys.exit(f"plan_refit: {r['label']}: {len(n['buckets'])} buckets, the data have {len(r['buckets'])}")
        changed = []
        for b, nb in zip(r["buckets"], n["buckets"]):
            for key in ("lo", "hi", "rows", "codes", "order0_bits_per_code", "near_repeat_share"):
                if b[key] != nb[key]:
                    changed.append(f"bucket {b['lo']} {key} {b[key]} -> {nb[key]}")
            for key in GOLF_COLUMNS:
                b[key] = nb[key]
        for key in ("steps", "seen_rows", "gaussian_bits"):
            if r[key] != n[key]:
                changed.append(f"{key} {r[key]} -> {n[key]}")
        was = r["matrix_golf_bytes"]
        r["matrix_golf_bytes"] = n["matrix_golf_bytes"]
        print(f"  {r['label']}: tok_emb alone {n['matrix_golf_bytes']:,} golf bytes (was {was:,}, "
              f"{n['matrix_golf_bytes'] - was:+,})" + (f"; CODER-INDEPENDENT COLUMNS DIFFER: {changed}" if changed else ""),
              flush=True)
    write_atomic(ROWS_JSON, json.dumps(old, indent=1))


def golf_line():
    with open(os.path.join(ROOT, "pack", "plan_calibration.h")) as f:
        return next(line.strip() for line in f if line.strip().startswith('{"golf"'))


def plan_r0427l():
    """golf's plan of R0427L's configuration: (artifact bytes without counted code, GPTQ codes)."""
    out = os.path.join(pc.build_dir(), "plan_refit_r0427l.json")
    pc.run([os.path.join(pc.build_dir(), "pack", "golf-pack"), "plan", "--config",
            os.path.join(ROOT, "train", "configs", "frontier_0427.json"), "--set", "COMPRESSOR=golf", "--json", out])
    with open(out) as f:
        p = json.load(f)
    os.unlink(out)
    if p["coverage"]["measured"]:
        sys.exit("plan_refit: frontier_0427.json's DATA_PATH has train shards here; the term is solved with every row seen")
    return p["bytes_model"], pc.summarize(p)["codes"]


def golf_code_bytes(args, lz):
    """golf's bytes on the code groups of LRZIP_PERGROUP.json, by the current coder: golf-coder-bench
    --only golf on the freshly packed 11×512 artifact (WORK/11x512-g0.golf, the weights
    lrzip_pergroup.sh measured), summed over the json's groups as lrzip_pergroup.sh sums them. The
    records' side (lrzip on the records' layout) depends only on the codes, so it is taken from the json.
    --golf-from-json: the json's own golf_code_bytes (lrzip_pergroup.sh rerun with the new coder)."""
    if args.golf_from_json:
        return lz["golf_code_bytes"]
    artifact = os.path.join(args.work, "11x512-g0.golf")
    out = os.path.join(args.work, "golf-coder-bench-11x512.json")
    pc.run([os.path.join(pc.build_dir(), "artifact", "golf-coder-bench"), artifact, "--only", "golf", "--json", out])
    with open(out) as f:
        groups = json.load(f)["groups"]
    missing = [g["group"] for g in lz["groups"] if g["group"] not in groups]
    if missing:
        sys.exit(f"plan_refit: golf-coder-bench's groups lack {missing} (has {sorted(groups)})")
    total = sum(groups[g["group"]] for g in lz["groups"])
    print(f"  golf on {artifact}'s code groups: {total:,} bytes (the json's golf: {lz['golf_code_bytes']:,}, "
          f"{total - lz['golf_code_bytes']:+,}); by group " +
          ", ".join(f"{g['group']} {groups[g['group']]:,} ({groups[g['group']] - g['golf']:+,})" for g in lz["groups"]),
          flush=True)
    return total


def long_training_term(args):
    with open(args.lrzip_json) as f:
        lz = json.load(f)
    golf_bytes = golf_code_bytes(args, lz)
    ratio = golf_bytes / lz["records_code_bytes"]
    target = round(R0427L_BLOB * ratio)
    with open(PLAN_H) as f:
        text = f.read()
    m = TERM_LINE.search(text)
    if not m:
        sys.exit(f"plan_refit: {PLAN_H}: golf's kLongTrainingTerms line not found")
    old = float(m.group(2))
    plan, codes = plan_r0427l()
    new = old + 8 * (target - plan) / codes
    print(f"  golf/lrzip = {golf_bytes:,} / {lz['records_code_bytes']:,} = {ratio:.4f}; target "
          f"{ratio:.4f} x {R0427L_BLOB:,} = {target:,}; plan with {old:+.4f}: {plan:,}; N = {codes:,} codes; "
          f"x = {old:+.4f} + 8 x ({target:,} - {plan:,}) / N = {new:+.5f} -> {new:+.4f}", flush=True)
    text = TERM_LINE.sub(lambda g: f"{g.group(1)}{new:.4f}{g.group(3)}{ratio:.4f}{g.group(5)}", text, count=1)
    write_atomic(PLAN_H, text)
    with open(RECORDS_SH) as f:
        sh = f.read()
    sh, n = re.subn(r"15865260 \* [0-9]+ / [0-9]+", f"15865260 * {golf_bytes} / {lz['records_code_bytes']}", sh)
    if n != 1:
        sys.exit(f"plan_refit: {RECORDS_SH}: the R0427L' target expression not found")
    write_atomic(RECORDS_SH, sh)
    return old, new, target


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lrzip-json", required=True, help="lrzip_pergroup.sh's JSON for the current coder")
    p.add_argument("--work", default="/work/planner8-cal")
    p.add_argument("--reuse", action="store_true", help="reuse WORK's artifacts (packed by this coder version)")
    p.add_argument("--skip-build", action="store_true", help="do not rebuild golf-pack (it is current)")
    p.add_argument("--skip-table", action="store_true")
    p.add_argument("--golf-from-json", action="store_true",
                   help="take golf's side of the ratio from the json (else measured on WORK/11x512-g0.golf)")
    args = p.parse_args()
    with open(args.lrzip_json) as f:
        lz = json.load(f)
    if not {"golf_code_bytes", "records_code_bytes"} <= lz.keys():
        sys.exit(f"plan_refit: {args.lrzip_json}: needs golf_code_bytes and records_code_bytes")
    os.makedirs(args.work, exist_ok=True)
    t0 = time.time()
    before = golf_line()
    golf_rows = [m for m in pc.load().get("golf", [])]
    if not golf_rows:
        sys.exit(f"plan_refit: {pc.DATA}: no golf rows")
    step(f"1. packing and measuring {len(golf_rows)} golf calibration artifacts in {args.work}", t0)
    new_rows = measure_golf(args, golf_rows)
    replace_jsonl(new_rows)
    step("2. embedding rows by training-prefix count (golf-plan-rows)", t0)
    embedding_rows(args, golf_rows)
    step("3. fit (pack/plan_calibration.h) and rebuild golf-pack", t0)
    pc.run([sys.executable, os.path.join(ROOT, "scripts", "bench", "plan_calibrate.py"), "fit"])
    after = golf_line()
    print(f"  before: {before}\n  after:  {after}", flush=True)
    rebuild(args)
    step("4. golf's long-training term", t0)
    old, new, target = long_training_term(args)
    rebuild(args)
    plan, _ = plan_r0427l()
    print(f"  golf's plan of R0427L with {new:+.4f}: {plan:,} (target {target:,}, {plan - target:+,}; the term's 4 "
          f"decimals hold it to ~±225 bytes)", flush=True)
    if not args.skip_table:
        step("5. scripts/bench/plan_table.py --out scripts/bench/plan_table.md", t0)
        print(pc.run([sys.executable, os.path.join(ROOT, "scripts", "bench", "plan_table.py"), "--out", TABLE_MD]), end="")
    step(f"done: golf's term {old:+.4f} -> {new:+.4f}; review `git diff` (pack/plan_calibration.h, pack/plan.h, "
         "scripts/bench/plan_calibration.jsonl, plan_embedding_rows.json, plan_records.sh, plan_table.md)", t0)


if __name__ == "__main__":
    main()
