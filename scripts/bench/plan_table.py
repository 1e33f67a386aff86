#!/usr/bin/env python3
"""scripts/bench/plan_table.py — golf-pack plan's predicted vs real artifact bytes (issue 16 §2).

  plan_table.py [--compressors brotli,golf] [--out FILE.md]

For every run measured in scripts/bench/plan_calibration.jsonl (plan_calibrate.py measure), at the
run's own settings: the real bytes are the artifact golf-pack writes for the run's GPTQ'd weights
with that compressor (plan --measure's file_bytes: the real serializer's output) plus the counted
code; "plan" is `golf-pack plan --config RUN/config.json` (the calibration in pack/plan_calibration.h,
fitted on all runs, this one included: in-sample); "held out" recomputes the same model with
coefficients fitted on the other runs only (plan_calibrate.py fit --exclude), the honest
out-of-sample figure. Environment: GOLF_BUILD_DIR.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plan_calibrate as pc  # noqa: E402
import plan_embedding_rows as per  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--compressors", default="brotli,golf")
    p.add_argument("--out")
    args = p.parse_args()
    golf_pack = os.path.join(pc.build_dir(), "pack", "golf-pack")
    all_rows = [r for rows in pc.load().values() for r in rows]
    labels = []
    for r in all_rows:
        if r["label"] not in labels:
            labels.append(r["label"])
    lines = ["| run | compressor | params | rows seen | real total | plan | error | held-out plan | held-out error |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for compressor in args.compressors.split(","):
        for label in labels:
            own = [r for r in all_rows if r["label"] == label and not r["sets"] and r["config"]["COMPRESSOR"] == compressor]
            if not own:
                continue
            row = own[0]
            with tempfile.TemporaryDirectory() as tmp:
                # The run's real step count (MAX_WALLCLOCK_SECONDS stopped it long before ITERATIONS): the
                # planner counts the embedding rows its tokens see in DATA_PATH's train shards.
                steps = per.run_steps(row["run"])
                out = subprocess.run([golf_pack, "plan", "--config", os.path.join(row["run"], "config.json"),
                                      "--set", f"COMPRESSOR={compressor}", "--set", f"ITERATIONS={steps}",
                                      "--json", os.path.join(tmp, "plan.json")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                if out.returncode != 0:
                    sys.exit(out.stdout)
                with open(os.path.join(tmp, "plan.json")) as f:
                    plan = json.load(f)
            code = plan["bytes_code"]
            real = row["measured"]["file_bytes"] + code
            held = pc.fit_rows(pc.load(exclude=label).get(compressor, []), exclude=label)
            if held:
                loo = round(pc.predict_bytes(row, held)) + code
                loo_cells = f"{loo:,} | {100 * (loo - real) / real:+.2f} %"
            else:
                loo_cells = "– | –"
            cov = plan["coverage"]
            seen = f"{cov['rows_seen']:,}" if cov["measured"] else "all (assumed)"
            lines.append(f"| {label} | {compressor} | {plan['params']:,} | {seen} | {real:,} | {plan['bytes_total']:,} | "
                         f"{100 * (plan['bytes_total'] - real) / real:+.2f} % | {loo_cells} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
