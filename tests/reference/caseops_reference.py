#!/usr/bin/env python3
"""Reference CaseOps transform and CaseOps shard writer, in plain Python (str methods and regular
expressions over characters, where core/caseops.cpp works on UTF-8 bytes).

The transform (rules-and-eval.md section 2.6; core/caseops.h): over maximal runs of ASCII letters,
a lowercase word stays, an all-caps word of >= 2 letters becomes ALLCAPS + lowercase, otherwise
TITLE marks an uppercase first letter and CAPNEXT each later uppercase letter; an operator
character already in the text is escaped with ESC.

Byte sidecar: per token, the original UTF-8 bytes its piece's surface covers, counted per character
of the surface: an operator counts 0, except one escaped by the ESC just before it (3); any other
character its UTF-8 length. Surfaces come from SentencePiece's serialized proto (parsed here by hand:
the venv has no protobuf).

usage:
  caseops_reference.py transform INPUT OUT.jsonl [--max-docs N]
      one JSON line per document: {"t": transformed text, "rt": decode(transformed) == text}
  caseops_reference.py shards TOKENIZER.model OUT_DIR INPUT [--max-docs N]
      OUT_DIR/fineweb_val_000000.bin and fineweb_val_bytes_000000.bin, one shard each
"""
import argparse
import json
import os
import re

import numpy as np

from normalized_bytes import documents

TITLE, ALLCAPS, CAPNEXT, ESC = "\ue001", "\ue002", "\ue003", "\ue004"
OPERATORS = (TITLE, ALLCAPS, CAPNEXT, ESC)
WORD_OR_OPERATOR = re.compile("[A-Za-z]+|[\ue001-\ue004]")


def encode_word(word):
    if word.islower():
        return word
    if len(word) >= 2 and word.isupper():
        return ALLCAPS + word.lower()
    out = [TITLE + word[0].lower() if word[0].isupper() else word[0]]
    out += [CAPNEXT + c.lower() if c.isupper() else c for c in word[1:]]
    return "".join(out)


def encode(text):
    return WORD_OR_OPERATOR.sub(lambda m: ESC + m.group() if m.group() in OPERATORS else encode_word(m.group()), text)


def decode(t):
    out, i = [], 0
    while i < len(t):
        c = t[i]
        if c == ESC:
            assert t[i + 1] in OPERATORS, f"ESC at {i} not before an operator"
            out.append(t[i + 1])
            i += 2
        elif c in (TITLE, CAPNEXT):
            assert "a" <= t[i + 1] <= "z", f"operator at {i} not before a lowercase letter"
            out.append(t[i + 1].upper())
            i += 2
        elif c == ALLCAPS:
            m = re.compile("[a-z]+").match(t, i + 1)
            assert m, f"ALLCAPS at {i} not before a lowercase letter"
            out.append(m.group().upper())
            i = m.end()
        else:
            assert not ("A" <= c <= "Z"), f"uppercase letter at {i}"
            out.append(c)
            i += 1
    return "".join(out)


# ---- SentencePieceText wire format: text=1, pieces=2 {piece=1, id=2, surface=3, begin=4, end=5} ----
def _varint(b, i):
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return r, i


def _fields(b):
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            v, i = b[i : i + n], i + n
        elif wire == 5:
            v, i = b[i : i + 4], i + 4
        elif wire == 1:
            v, i = b[i : i + 8], i + 8
        else:
            raise ValueError(f"wire type {wire}")
        yield field, v


def pieces(sp, text):
    """[(id, surface str)] of sp's encoding of text."""
    out = []
    for field, v in _fields(sp.encode(text, out_type="serialized_proto")):
        if field == 2:
            d = dict(_fields(v))
            out.append((d.get(2, 0), d.get(3, b"").decode("utf-8")))
    return out


def sidecar_counts(surfaces):
    counts, escaped = [], False
    for surface in surfaces:
        n = 0
        for c in surface:
            if c in OPERATORS and not escaped:
                escaped = c == ESC
            else:
                n += len(c.encode("utf-8"))
                escaped = False
        counts.append(n)
    return counts


def write_shard(path, values):
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(values))
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(values, dtype="<u2").tobytes())


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transform")
    t.add_argument("input")
    t.add_argument("out")
    t.add_argument("--max-docs", type=int, default=-1)
    s = sub.add_parser("shards")
    s.add_argument("tokenizer")
    s.add_argument("out_dir")
    s.add_argument("input")
    s.add_argument("--max-docs", type=int, default=-1)
    args = ap.parse_args()
    if args.cmd == "transform":
        with open(args.out, "w", encoding="utf-8") as f:
            for k, text in enumerate(documents(args.input)):
                if k == args.max_docs:
                    break
                e = encode(text)
                f.write(json.dumps({"t": e, "rt": decode(e) == text}) + "\n")
        return
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=args.tokenizer)
    tokens, sidecar = [], []
    for k, text in enumerate(documents(args.input)):
        if k == args.max_docs:
            break
        ps = pieces(sp, encode(text))
        assert [p[0] for p in ps] == sp.encode(encode(text))
        tokens += [1] + [p[0] for p in ps]
        sidecar += [0] + sidecar_counts(p[1] for p in ps)
    os.makedirs(args.out_dir, exist_ok=True)
    write_shard(os.path.join(args.out_dir, "fineweb_val_000000.bin"), tokens)
    write_shard(os.path.join(args.out_dir, "fineweb_val_bytes_000000.bin"), sidecar)


if __name__ == "__main__":
    main()
