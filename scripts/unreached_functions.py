#!/usr/bin/env python3
"""Functions compiled into a program that it never reaches from main: --gc-sections done by hand, at
function granularity, on the build's own objects (no second build with -ffunction-sections).

    scripts/unreached_functions.py [--build build] [--all] PROGRAM [PROGRAM ...]

The objects are each program's link closure (scripts/link_closure.py). Edges: every symbol an
instruction names (objdump -dr: resolved <sym> targets and relocations, a section symbol + addend
mapped to the function at that offset) and every relocation of a data section (readelf -rW). Roots:
main and every .init_array/.preinit_array section. Each data section is one node, so a vtable keeps
all its functions (conservative). .eh_frame and debug sections add no edges, as with --gc-sections.
Functions at one address (constructor aliases) are one node.

Prints the project's own (non-weak golf::) functions that no listed program reaches, with the
programs that link them; --all prints every unreached function (library template instances too).
A function listed may still be used: inlined at every call (its out-of-line copy unreached), or a
CUDA __device__ helper's host copy. Each one must be checked against the sources before it moves.
Needs binutils (objdump, readelf, c++filt) and a Ninja build."""
import argparse
import collections
import os
import re
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import link_closure as lc

def run(*a): return subprocess.run(a, capture_output=True, text=True, check=True).stdout

def sections(obj):
    secs = {}
    for m in re.finditer(r'^\s*\[\s*(\d+)\]\s+(\S+)\s+(\S+)\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S*)', run('readelf', '-SW', obj), re.M):
        secs[int(m.group(1))] = (m.group(2), 'X' in m.group(4))
    return secs

def symbols(obj, secs):
    out = []  # (name, value, size, type, bind, secname)
    for line in run('readelf', '-sW', obj).splitlines():
        f = line.split()
        if len(f) < 8 or not f[0].endswith(':') or not f[6].isdigit(): continue
        out.append((f[7], int(f[1], 16), int(f[2], 0) if not f[2].startswith('0x') else int(f[2], 16), f[3], f[4], secs[int(f[6])][0]))
    return out

def analyse(objs):
    defs_global = collections.defaultdict(list)   # name -> [(obj, node)]
    nodes_of = {}   # obj -> {secname: [(start, end, node)]}
    local_name = {}  # (obj, name) -> node
    edges = collections.defaultdict(set)  # node -> set of ('name', obj, symname) or node
    roots, funcs = [], []
    for obj in objs:
        secs = sections(obj); syms = symbols(obj, secs)
        ranges = collections.defaultdict(list)
        for name, val, size, typ, bind, sec in syms:
            if typ == 'FUNC':
                node = (obj, sec + '@' + hex(val)); ranges[sec].append((val, val + max(size, 1), node)); funcs.append((obj, name, bind, sec, node))
                local_name[(obj, name)] = node
                if bind in ('GLOBAL', 'WEAK'): defs_global[name].append(node)
                if name == 'main': roots.append(node)
            elif typ == 'OBJECT' and sec:
                node = (obj, 'section:' + sec); local_name[(obj, name)] = node
                if bind in ('GLOBAL', 'WEAK'): defs_global[name].append(node)
        nodes_of[obj] = ranges
        def at(sec, off):
            for s, e, n in ranges.get(sec, []):
                if s <= off < e: return n
            return (obj, 'section:' + sec)
        def target(sym, addend):
            if sym in dict(secs.values()) or sym.startswith('.'):  # section symbol
                ex = dict(secs.values()).get(sym, False)
                if ex: return [at(sym, addend), at(sym, addend + 4)]
                return [(obj, 'section:' + sym)]
            return [('name', obj, sym)]
        for idx, (sec, ex) in secs.items():
            if sec.startswith(('.init_array', '.preinit_array', '.ctors')): roots.append((obj, 'section:' + sec))
        # data-section relocations
        cur = None
        for line in run('readelf', '-rW', obj).splitlines():
            m = re.match(r"Relocation section '\.rela(\S+)'", line)
            if m:
                cur = m.group(1); continue
            f = line.split()
            if cur is None or len(f) < 5 or not re.match(r'^[0-9a-f]{8,}$', f[0]): continue
            if dict(secs.values()).get(cur, False) or cur.startswith(('.eh_frame', '.debug')): continue
            sym = f[4]; m2 = re.match(r'([+-])\s*([0-9a-f]+)', ' '.join(f[5:]))
            add = (int(m2.group(2), 16) * (1 if m2.group(1) == '+' else -1)) if m2 else 0
            for t in target(sym, add): edges[(obj, 'section:' + cur)].add(t)
        # code: every exec section
        cur_sec = cur_fn = None
        for line in run('objdump', '-dr', '--no-show-raw-insn', '-w', obj).splitlines():
            m = re.match(r'Disassembly of section (\S+):', line)
            if m: cur_sec = m.group(1); cur_fn = None; continue
            m = re.match(r'^([0-9a-f]+) <(.+)>:$', line)
            if m: cur_fn = at(cur_sec, int(m.group(1), 16)); continue
            if cur_fn is None: continue
            for rs, sign, hx in re.findall(r'R_X86_64_\S+\s+([^\s+-]+)(?:([+-])0x([0-9a-f]+))?', line):
                add = int(hx, 16) * (1 if sign == '+' else -1) if hx else 0
                for t in target(rs, add): edges[cur_fn].add(t)
            line = line.split('R_X86_64_')[0]
            for sym in re.findall(r'<([^<>+]+)(?:\+0x[0-9a-f]+)?>', line):
                edges[cur_fn].add(('name', obj, sym))
    def resolve(t):
        if t[0] != 'name': return [t]
        _, obj, sym = t
        if (obj, sym) in local_name: return [local_name[(obj, sym)]]
        return defs_global.get(sym, [])
    seen, stack = set(roots), list(roots)
    while stack:
        n = stack.pop()
        for t in edges.get(n, ()):
            for r in resolve(t):
                if r not in seen: seen.add(r); stack.append(r)
    return funcs, seen

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("programs", nargs="+")
p.add_argument("--build", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build"))
p.add_argument("--all", action="store_true")
a = p.parse_args()
build, programs = os.path.abspath(a.build), a.programs
objs = []
for prog in programs:
    t = lc.target_path(build, prog); o, libs = lc.link_inputs(build, t)
    objs.append([os.path.join(build, x) for x in o + [y for l in libs for y in lc.library_objects(build, l)]])
info = {}
linked = collections.defaultdict(set); reached = collections.defaultdict(set)
for prog, ol in zip(programs, objs):
    funcs, seen = analyse(ol)
    for o, n, b, sec, node in funcs:
        k = (os.path.relpath(o, build), n); info[k] = b; linked[k].add(prog)
        if node in seen: reached[k].add(prog)
    print(f"{prog}: {len(funcs)} functions, {sum(1 for f in funcs if f[4] not in seen)} unreached", file=sys.stderr)
names = sorted(k for k in linked if not reached[k])
demangled = subprocess.run(["c++filt"], input="\n".join(n for _, n in names), capture_output=True, text=True).stdout.splitlines()
for (obj, _), d in zip(names, demangled):
    if a.all or (info[(obj, _)] != "WEAK" and d.startswith("golf::") and "[clone" not in d):
        print(f"{obj}\t{','.join(sorted(linked[(obj, _)]))}\t{d}")
