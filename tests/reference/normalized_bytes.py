#!/usr/bin/env python3
"""Independent byte count for bits per byte: Σ UTF-8 bytes of the tokenizer-normalised text.

This goes through Python sentencepiece's own normaliser (sp.normalize, PyPI sentencepiece 0.2),
not through golf's C++ byte table or its decoder, so agreement between the two is evidence that
the table charges exactly the text the tokenizer encodes.

usage: normalized_bytes.py TOKENIZER.model INPUT... [--max-docs N]   → prints one JSON object
Inputs are read like golf-data reads them: .jsonl[.xz] (field "text", one document per line) or
.txt[.xz] (one document per file).
"""
import argparse
import json
import lzma

import sentencepiece


def documents(path):
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        if ".jsonl" in path:
            for line in f:
                if line.strip():
                    yield json.loads(line)["text"]
        else:
            yield f.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer")
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--max-docs", type=int, default=-1)
    args = ap.parse_args()
    sp = sentencepiece.SentencePieceProcessor(model_file=args.tokenizer)
    docs = raw = normalized = 0
    for path in args.inputs:
        for text in documents(path):
            if docs == args.max_docs:
                break
            docs += 1
            raw += len(text.encode("utf-8"))
            # The normaliser marks spaces with U+2581; the text it stands for has a plain space.
            normalized += len(sp.normalize(text).replace("\u2581", " ").encode("utf-8"))
    print(json.dumps({"documents": docs, "raw_bytes": raw, "normalized_bytes": normalized}))


if __name__ == "__main__":
    main()
