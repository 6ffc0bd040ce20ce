#!/usr/bin/env python3
"""The layering of src/, checked: who imports whom, and what must never appear where.

Reads every .rs file under src/, resolves its `crate::`, `super::` and `self::` paths
to the files they name, and fails (exit 1) when
  - a part uses a part above it in LAYERS (e.g. `log/` importing `protocol`),
  - a file outside `broker.rs`/`server.rs`/`main.rs`/`lib.rs` names every service,
  - an import cycle spans more than one folder,
  - `Mutex`, `RwLock` or atomics appear in `partition/` or on the produce/fetch path,
  - `todo!()` or `unimplemented!()` appears anywhere in src/,
  - a message that crosses cores (`impl Message for`) is declared outside the
    `messages.rs` of the part that answers it (or `broker.rs`, for the shard-wide
    ones): the mesh carries nothing but `Message`s, so those files list every kind
    of cross-core call.

Usage: scripts/check_layers.py [--src DIR] [--report]
  --report   also print the import cycles, the longest functions and the layer graph
"""

import argparse
import os
import re
import sys
from collections import defaultdict

# Parts from the bottom up; a part may use the parts listed before it (and itself).
# Parts on one line are peers that must not use each other.
LAYERS = [
    ["kafka", "crc"],
    ["runtime"],
    ["log", "store"],
    ["config"],
    ["metrics"],
    ["cluster"],
    ["partition"],
    ["coordinator"],
    ["protocol"],
    ["net"],
    ["broker", "server", "main", "lib", "fuzzing"],
]
# Clients of the broker: they use no broker part at all.
CLIENTS = {"bench": set(), "client": {"kafka", "crc"}, "cli": {"client", "kafka", "crc", "config"}}
# Inside coordinator/: txn may use group (offsets of a committed transaction), never back.
SUBLAYERS = {"coordinator": [["group"], ["txn"], ["share"]]}
TOP = {"broker", "server", "main", "lib", "fuzzing"}
SERVICES = ["partition", "coordinator", "cluster", "protocol", "net"]
NO_SYNC_PARTS = ["partition"]
NO_SYNC_FILES = [
    "protocol/produce.rs",
    "protocol/fetch.rs",
    "protocol/fetch_response.rs",
    "net/connection.rs",
    "net/send.rs",
    "net/credit.rs",
]
SYNC_WORDS = re.compile(r"\b(Mutex|RwLock|Atomic[A-Z][A-Za-z0-9]*|std::sync::atomic)\b")
TODO = re.compile(r"\b(todo|unimplemented)!\s*\(")
CROSS = re.compile(r"\bimpl\s+(crate::runtime::)?(mesh::)?Message\s+for\b|\bmessage!\s*\{")
CROSS_ALLOWED = re.compile(r"(^|/)messages\.rs$|^broker\.rs$")


def strip_comments(text):
    """Remove // and /* */ comments and string contents (keep line structure)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and i + 2 < n and (text[i + 2] == "'" or text[i + 1] == "\\"):
            j = text.find("'", i + 2)
            i = (j + 1) if j > 0 else i + 1
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(rel):
    """src-relative file path → module path (tuple)."""
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    if parts == ["main"]:
        return ("main",)
    return tuple(parts)


def load(src):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, src).replace(os.sep, "/")
                with open(path, encoding="utf-8") as f:
                    files[rel] = f.read()
    return files


def use_paths(code):
    """Every path a file names: `use` trees expanded, plus inline `crate::a::b` paths."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        paths.extend(expand_use(m.group(1).replace("\n", " ")))
    for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", code):
        paths.append(m.group(1))
    # A bare `child::item` path names a child module of this one.
    for m in re.finditer(r"(?<![\w:])([a-z_][a-z0-9_]*(?:::\w+)+)", code):
        if not m.group(1).startswith(("crate::", "super::", "self::")):
            paths.append("self::" + m.group(1))
    return paths


def expand_use(tree):
    tree = tree.strip()
    if tree.startswith("pub "):
        tree = tree[4:]
    depth, brace = 0, -1
    for i, c in enumerate(tree):
        if c == "{":
            if depth == 0:
                brace = i
            depth += 1
        elif c == "}":
            depth -= 1
    if brace < 0:
        return [tree.split(" as ")[0].strip()]
    prefix = tree[:brace].rstrip(":").strip()
    inner = tree[brace + 1 : tree.rfind("}")]
    items, depth, cur = [], 0, ""
    for c in inner:
        if c == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += c == "{"
        depth -= c == "}"
        cur += c
    items.append(cur)
    out = []
    for it in items:
        it = it.strip()
        if not it:
            continue
        for sub in expand_use(it):
            out.append(prefix if sub == "self" else f"{prefix}::{sub}")
    return out


def resolve(path, here, modules):
    """A path named in module `here` → the module (tuple) it lands in, or None."""
    segs = path.split("::")
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base = here
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
        rest = segs
    else:
        return None
    best = None
    for k in range(len(rest), -1, -1):
        cand = base + tuple(rest[:k])
        if cand in modules:
            best = cand
            break
    return best


def part_of(mod):
    return mod[0] if mod else "lib"


def level(part):
    for i, row in enumerate(LAYERS):
        if part in row:
            return i
    return None


def graph(files):
    modules = {module_of(rel): rel for rel in files}
    modules.setdefault((), "lib.rs")
    edges = defaultdict(set)
    codes = {}
    for rel, text in files.items():
        code = strip_comments(text)
        codes[rel] = code
        here = module_of(rel)
        for p in use_paths(code):
            target = resolve(p, here, modules)
            if target is None or target == () or target == here:
                continue
            edges[rel].add(modules[target])
    return modules, edges, codes


def sccs(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def folder(rel):
    return rel.rsplit("/", 1)[0] if "/" in rel else "."


def check_layers(edges):
    errors = []
    for src, targets in edges.items():
        a = part_of(module_of(src))
        for dst in targets:
            b = part_of(module_of(dst))
            if a == b:
                errors.extend(check_sublayers(a, src, dst))
                continue
            if a in CLIENTS:
                if b not in CLIENTS[a]:
                    errors.append(f"{src}: the client `{a}/` uses the broker part `{b}` ({dst})")
                continue
            if b in CLIENTS:
                errors.append(f"{src}: the broker uses the client part `{b}` ({dst})")
                continue
            la, lb = level(a), level(b)
            if la is None or lb is None:
                errors.append(f"{src}: `{a}` or `{b}` is not in scripts/check_layers.py LAYERS")
            elif lb >= la and a not in TOP:
                errors.append(f"{src}: `{a}` uses `{b}` ({dst}), which is not below it")
    return errors


def check_sublayers(part, src, dst):
    rows = SUBLAYERS.get(part)
    if not rows:
        return []
    a, b = module_of(src), module_of(dst)
    if len(a) < 2 or len(b) < 2 or a[1] == b[1]:
        return []
    la = next((i for i, r in enumerate(rows) if a[1] in r), None)
    lb = next((i for i, r in enumerate(rows) if b[1] in r), None)
    if la is None or lb is None or lb >= la:
        return [f"{src}: `{part}/{a[1]}` uses `{part}/{b[1]}` ({dst}), which is not below it"]
    return []


def check_services(edges):
    errors = []
    for src, targets in edges.items():
        if part_of(module_of(src)) in TOP:
            continue
        named = {part_of(module_of(d)) for d in targets}
        if all(s in named for s in SERVICES):
            errors.append(f"{src}: names every service ({', '.join(SERVICES)}); only broker.rs may")
    return errors


def check_words(codes):
    errors = []
    for rel, code in sorted(codes.items()):
        in_tests = test_lines(code)
        if is_test_file(rel):
            continue
        for i, line in enumerate(code.split("\n"), 1):
            if i in in_tests:
                continue
            if TODO.search(line):
                errors.append(f"{rel}:{i}: todo!/unimplemented! in src/")
            hot = rel.split("/")[0] in NO_SYNC_PARTS or rel in NO_SYNC_FILES
            if hot and SYNC_WORDS.search(line):
                errors.append(f"{rel}:{i}: Mutex/RwLock/atomic on the partition or produce/fetch path")
            if CROSS.search(line) and not CROSS_ALLOWED.search(rel):
                errors.append(
                    f"{rel}:{i}: a cross-core message declared outside a messages.rs"
                )
    return errors


def is_test_file(rel):
    return rel.endswith("/tests.rs") or rel == "tests.rs"


def test_lines(code):
    """Line numbers (1-based) inside `#[cfg(test)] mod x { ... }` blocks."""
    out = set()
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code):
        depth, i = 0, m.end() - 1
        while i < len(code):
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            if depth == 0:
                break
            i += 1
        first = code[: m.start()].count("\n") + 1
        last = code[:i].count("\n") + 1
        out.update(range(first, last + 1))
    return out


def longest_functions(codes, top=5):
    found = []
    for rel, code in codes.items():
        if is_test_file(rel):
            continue
        lines = code.split("\n")
        in_tests = test_lines(code)
        for i, line in enumerate(lines):
            if i + 1 in in_tests:
                continue
            m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?fn\s+(\w+)", line)
            if not m:
                continue
            depth, started, j = 0, False, i
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                started = started or "{" in lines[j]
                if started and depth <= 0:
                    break
                if not started and lines[j].rstrip().endswith(";"):
                    break
                j += 1
            if started:
                found.append((j - i + 1, f"{rel}:{i + 1} {m.group(5)}"))
    return sorted(found, reverse=True)[:top]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", "src"))
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    files = load(args.src)
    modules, edges, codes = graph(files)
    cycles = sccs(files.keys(), edges)
    errors = check_layers(edges) + check_services(edges) + check_words(codes)
    for comp in cycles:
        folders = sorted({folder(f) for f in comp})
        if len(folders) > 1:
            errors.append(f"import cycle across folders {folders}: {' '.join(comp)}")
    if args.report:
        in_cycles = sum(len(c) for c in cycles)
        print(f"files: {len(files)}; files in import cycles: {in_cycles} in {len(cycles)} cycles")
        for comp in sorted(cycles, key=len, reverse=True):
            print(f"  cycle of {len(comp)}: {' '.join(comp)}")
        print("longest functions (lines):")
        for n, where in longest_functions(codes):
            print(f"  {n:4d} {where}")
    for e in errors:
        print(f"layers: {e}")
    if errors:
        print(f"layers: {len(errors)} violation(s)")
        return 1
    print("layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
