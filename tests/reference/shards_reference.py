#!/usr/bin/env python3
"""Reference shard writer: what the challenge's exporter writes, in plain Python + numpy.

Each document becomes [BOS=1] + sp.encode(text) (no EOS); documents are concatenated into one
stream and written as a single shard: 256 little-endian int32 header (20240520, 1, n, zeros)
followed by n little-endian uint16 tokens. golf-data's output must be byte-identical.

usage: shards_reference.py TOKENIZER.model OUT.bin INPUT... [--max-docs N]
"""
import argparse

import numpy as np
import sentencepiece

from normalized_bytes import documents


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer")
    ap.add_argument("out")
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--max-docs", type=int, default=-1)
    args = ap.parse_args()
    sp = sentencepiece.SentencePieceProcessor(model_file=args.tokenizer)
    stream, docs = [], 0
    for path in args.inputs:
        for text in documents(path):
            if docs == args.max_docs:
                break
            docs += 1
            stream.append(1)
            stream.extend(sp.encode(text))
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(stream))
    with open(args.out, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(stream, dtype="<u2").tobytes())


if __name__ == "__main__":
    main()
