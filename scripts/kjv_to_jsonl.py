#!/usr/bin/env python3
"""The demo's fallback corpus: the King James Bible (public domain, Debian's bible-kjv), one
document per chapter, as challenge-style .jsonl ({"text": ...} per line). Every 20th chapter
goes to validation, the rest to training.

usage: kjv_to_jsonl.py OUT_DIR    (reads the text from the `bible` command)
"""
import json
import os
import re
import subprocess
import sys


def chapters():
    text = subprocess.run(["bible", "-l0", "gen1:1-rev22:21"], check=True, capture_output=True, text=True).stdout
    title, verses = None, []
    for line in text.splitlines():
        heading = re.fullmatch(r"(\S.*) (\d+)", line)
        if heading:
            if title:
                yield title, verses
            title, verses = line, []
        elif line.strip():
            verses.append(re.sub(r"^\s*\d+ ", "", line))  # drop the verse number
    if title:
        yield title, verses


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "kjv_train.jsonl.tmp"), "w") as train, open(os.path.join(out, "kjv_val.jsonl.tmp"), "w") as val:
        for i, (title, verses) in enumerate(chapters()):
            doc = {"text": title + "\n" + " ".join(verses), "title": title}
            (val if i % 20 == 19 else train).write(json.dumps(doc) + "\n")
    for split in ("train", "val"):
        os.replace(os.path.join(out, f"kjv_{split}.jsonl.tmp"), os.path.join(out, f"kjv_{split}.jsonl"))


if __name__ == "__main__":
    main()
