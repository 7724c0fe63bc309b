#!/usr/bin/env python3
"""check_layers.py: the include rules of sbida's tree (core/layers.txt).

Every quoted include in core/ and server/ must name its module
("est/est.h"; server/ files include their own headers by plain name) and
must not go up the declared layer order, across siblings, or close a cycle
of headers. tests/unit may include any module but must name it too.

  tests/check_layers.py [ROOT]      check the tree at ROOT (default: the repo)
  tests/check_layers.py --self-test checks that a clean copy passes and that
                                    copies with an upward include, a sibling
                                    include, a bare include and a header
                                    cycle fail
Exit 0 when clean, 1 with one line per violation otherwise."""
import os
import re
import shutil
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layers(root):
    """module -> rank; a line "parent/*" ranks every folder under core/parent/
    that no other line names."""
    rank, wild, n = {}, {}, 0
    with open(os.path.join(root, "core", "layers.txt")) as f:
        for line in f:
            names = line.split("#", 1)[0].split()
            for m in names:
                if m.endswith("/*"):
                    wild[m[:-2]] = n
                else:
                    rank[m] = n
            n += bool(names)
    for parent, r in wild.items():
        base = os.path.join(root, "core", parent)
        for d in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            m = parent + "/" + d
            if os.path.isdir(os.path.join(base, d)) and m not in rank:
                rank[m] = r
    return rank


def sources(root, top):
    for d, _, files in os.walk(os.path.join(root, top)):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.join(d, f)


def module_of(root, path):
    rel = os.path.relpath(os.path.dirname(path), root)
    if rel.startswith("core" + os.sep):
        return rel[len("core") + 1:].replace(os.sep, "/")
    return rel.split(os.sep)[0]  # server, tests


def check(root):
    rank = layers(root)
    errors, edges = [], {}
    core_dirs = {module_of(root, p) for p in sources(root, "core")}
    for m in sorted(core_dirs - set(rank)):
        errors.append(f"core/{m}: module not declared in core/layers.txt")
    files = list(sources(root, "core")) + list(sources(root, "server")) + list(sources(root, "tests/unit"))
    for path in files:
        src = module_of(root, path)
        rel = os.path.relpath(path, root)
        text = open(path, encoding="utf-8", errors="replace").read()
        for m in INCLUDE.finditer(text):
            inc = m.group(1)
            line = text.count("\n", 0, m.start()) + 1
            where = f"{rel}:{line}: #include \"{inc}\""
            if "/" not in inc:
                if src in ("server", "tests") and os.path.exists(os.path.join(os.path.dirname(path), inc)):
                    target, dst = os.path.join(os.path.dirname(path), inc), src
                else:
                    errors.append(f"{where} does not name its module (write \"<module>/{inc}\")")
                    continue
            elif inc.startswith("server/"):
                target, dst = os.path.join(root, inc), "server"
            else:
                target = os.path.join(root, "core", inc)
                dst = os.path.dirname(inc)
                if not os.path.exists(target) or dst not in rank:
                    errors.append(f"{where}: no such module header under core/")
                    continue
            if target.endswith(".h"):
                edges.setdefault(os.path.normpath(path), set()).add(os.path.normpath(target))
            if src == "tests" or dst == src:
                continue
            if src not in rank:
                continue
            if rank[dst] > rank[src]:
                errors.append(f"{where} goes up the layers: {src} (layer {rank[src]}) may not use {dst} (layer {rank[dst]})")
            elif rank[dst] == rank[src]:
                errors.append(f"{where}: {src} and {dst} are siblings (same layer) and may not include each other")
    # cycles among headers (a.h -> b.h -> a.h), which the layer order cannot show within a module
    state = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cyc = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                errors.append("include cycle: " + " -> ".join(os.path.relpath(c, root) for c in cyc))
            elif not state.get(nxt):
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if not state.get(node):
            visit(node, [node])
    return errors


def self_test(root):
    """A clean copy passes; each injected mistake fails with its own message."""
    cases = [
        ("core/util/rng.c", '#include "est/est.h"\n', "goes up the layers"),
        ("core/kinds/npe/npe.c", '#include "kinds/nre/nre.h"\n', "siblings"),
        ("core/est/est.c", '#include "sim.h"\n', "does not name its module"),
        ("core/util/rng.h", '#include "util/npy.h"\n', "include cycle"),
    ]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for top in ("core", "server", "tests/unit"):
            shutil.copytree(os.path.join(root, top), os.path.join(tmp, top),
                            ignore=shutil.ignore_patterns("*.o", "*.d"))
        if check(tmp):
            print("self-test: the clean copy fails:", *check(tmp), sep="\n  ")
            return False
        # the cycle case needs npy.h to include rng.h back
        extra = {"core/util/rng.h": ("core/util/npy.h", '#include "util/rng.h"\n')}
        for path, line, needle in cases:
            saved = {}
            for p, ln in [(path, line)] + ([extra[path]] if path in extra else []):
                full = os.path.join(tmp, p)
                saved[full] = open(full).read()
                body = saved[full]
                at = body.find("#include")
                open(full, "w").write(body[:at] + ln + body[at:])
            errs = check(tmp)
            hit = [e for e in errs if needle in e]
            print(f"self-test: {line.strip()} in {path}: " + (hit[0] if hit else "NOT DETECTED"))
            ok &= bool(hit)
            for full, body in saved.items():
                open(full, "w").write(body)
    return ok


def main():
    args = sys.argv[1:]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if args and args[0] == "--self-test":
        sys.exit(0 if self_test(here) else 1)
    root = args[0] if args else here
    errs = check(root)
    for e in errs:
        print(e)
    if errs:
        print(f"check-layers: {len(errs)} violation(s) of core/layers.txt")
        sys.exit(1)
    print("check-layers: every include names its module and goes down core/layers.txt")


if __name__ == "__main__":
    main()
