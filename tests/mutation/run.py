#!/usr/bin/python3
"""Mutation testing for sbida: how many deliberate bugs does the test suite catch?

Each mutant in mutants.py is a small edit (one or more exact text replacements)
that a correct test suite must notice. For every mutant this script

  1. applies the edit to a private copy of the tree (the checkout is never touched),
  2. rebuilds incrementally (only the mutated files recompile),
  3. runs the tests named for that mutant, stopping at the first failure,
  4. restores the file, byte for byte.

A mutant is *killed* when a test fails (or times out), a *survivor* when every
test passes, and *stillborn* when it does not compile (a broken list entry, not
a measure of the suite; reported separately). Before any mutant the unmutated
tree must pass every listed test, or the run stops: a red suite measures nothing.

Output: a table, then as the last line one JSON object
  {"mutants": N, "killed": K, "survivors": [...], ...}

  tests/mutation/run.py                 every mutant
  tests/mutation/run.py --only a,b      just those ids
  tests/mutation/run.py --list          list the mutants and exit
  tests/mutation/run.py --full          run the whole suite (tests/run.sh) per mutant
  tests/mutation/run.py --rev COMMIT    measure the suite of a commit (e.g. before a change)
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from mutants import MUTANTS, EQUIVALENT  # noqa: E402

# The tests run with Debian's python3 (pytest, numpy), as tests/run.sh does.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SOURCE_GLOBS = ("core/**/*.c", "core/**/*.h", "server/**/*.c", "server/**/*.h")


def copy_tree(dst, rev=None):
    """Copies the files git knows about (tracked and untracked, not ignored),
    or the tree of commit rev."""
    if rev:
        dst.mkdir(parents=True)
        arc = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dst)], input=arc, check=True)
        return
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                         check=True, capture_output=True).stdout
    for rel in filter(None, out.decode().split("\0")):
        src = ROOT / rel
        if not src.is_file():
            continue
        d = dst / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, d)


def locate(tree, path, original):
    """The file an edit applies to: its path, or (after files moved) the one
    source file that contains the original text exactly once."""
    p = tree / path
    if p.is_file():
        return p
    hits = []
    for g in SOURCE_GLOBS:
        for f in tree.glob(g):
            if f.read_text(errors="replace").count(original) == 1:
                hits.append(f)
    if len(hits) == 1:
        return hits[0]
    raise LookupError(f"{path}: not found, and the text is in {len(hits)} files")


def apply(tree, m):
    """Applies every edit of m; returns {path: original bytes} to restore."""
    saved = {}
    try:
        for path, original, replacement in m["edits"]:
            f = locate(tree, path, original)
            text = f.read_text()
            n = text.count(original)
            if n != 1:
                raise LookupError(f"{f.relative_to(tree)}: original text found {n} times, need exactly 1: {original!r}")
            if f not in saved:
                saved[f] = f.read_bytes()
            f.write_text(text.replace(original, replacement))
    except Exception:
        restore(saved)
        raise
    return saved


def restore(saved):
    for f, data in saved.items():
        f.write_bytes(data)


def sh(cmd, cwd, env, timeout):
    t0 = time.time()
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=timeout)
        return r.returncode, time.time() - t0, (r.stdout + r.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        out = ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace")
        return "timeout", time.time() - t0, out


def test_cmd(spec, build):
    """A test spec: unit:NAME (a cmocka binary), py:PATH[::node] (pytest),
    sh:COMMAND (a shell line, BUILD in the environment)."""
    kind, _, arg = spec.partition(":")
    if kind == "unit":
        return [f"{build}/tests/{arg}"]
    if kind == "py":
        return [PYTHON, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", arg]
    if kind == "sh":
        return ["sh", "-c", arg]
    raise ValueError(f"bad test spec {spec!r}")


def available(spec, tree, build):
    """Whether the test a spec names exists in tree (older commits lack newer tests)."""
    kind, _, arg = spec.partition(":")
    if kind == "unit":
        return (tree / build / "tests" / arg).is_file()
    if kind == "py":
        return (tree / arg.split("::")[0]).is_file()
    return True


def build(tree, env, jobs):
    return sh(["make", f"-j{jobs}", "--no-print-directory", f"BUILD={env['BUILD']}", "build"], tree, env, 1800)


def run_tests(specs, tree, env, timeout):
    """(killed_by or None, seconds)"""
    total = 0.0
    for spec in specs:
        rc, dt, out = sh(test_cmd(spec, env["BUILD"]), tree, env, timeout)
        total += dt
        if rc != 0:
            return (spec if rc != "timeout" else spec + " (timeout)"), total, out
    return None, total, ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated mutant ids")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--full", action="store_true", help="run tests/run.sh (every test) for each mutant")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per test command (default 600)")
    ap.add_argument("--jobs", type=int, default=2, help="make -j (default 2)")
    ap.add_argument("--rev", help="measure the suite of this commit instead of the working tree")
    ap.add_argument("--keep", action="store_true", help="keep the scratch tree")
    ap.add_argument("--verbose", "-v", action="store_true", help="print the output of surviving runs' tests")
    a = ap.parse_args()

    ids = [m["id"] for m in MUTANTS]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        sys.exit(f"duplicate mutant ids: {sorted(dup)}")
    chosen = MUTANTS
    if a.only:
        want = a.only.split(",")
        unknown = [w for w in want if w not in ids]
        if unknown:
            sys.exit(f"unknown mutant ids: {unknown} (see --list)")
        chosen = [m for m in MUTANTS if m["id"] in want]
    if a.list:
        for m in chosen:
            print(f"{m['id']:32s} {m['what']}")
        print(f"{len(chosen)} mutants")
        return 0

    t_start = time.time()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="sbida-mutation-"))
    tree = tmp / "tree"
    env = dict(os.environ, BUILD="build-mutation", PYTHONDONTWRITEBYTECODE="1")
    try:
        copy_tree(tree, a.rev)
        print(f"scratch tree {tree}", flush=True)
        rc, dt, out = build(tree, env, a.jobs)
        if rc != 0:
            print(out[-4000:])
            sys.exit("the unmutated tree does not build")
        print(f"unmutated build {dt:.0f} s", flush=True)
        base_specs = sorted({s for m in chosen for s in m["tests"]}) if not a.full else ["sh:tests/run.sh"]
        missing = [s for s in base_specs if not available(s, tree, env["BUILD"])]
        if missing and not a.rev:
            sys.exit(f"mutants name tests that do not exist: {missing}")
        if missing:
            print(f"not in {a.rev} (left out): {', '.join(missing)}")
            base_specs = [s for s in base_specs if s not in missing]
        killed_by, dt, out = run_tests(base_specs, tree, env, a.timeout)
        if killed_by:
            print(out[-6000:])
            sys.exit(f"the unmutated tree fails {killed_by}: fix the suite first")
        print(f"unmutated tests pass ({len(base_specs)} commands, {dt:.0f} s)\n", flush=True)

        rows = []
        for m in chosen:
            specs = ["sh:tests/run.sh"] if a.full else [s for s in m["tests"] if s not in missing]
            t0 = time.time()
            try:
                saved = apply(tree, m)
            except LookupError as e:
                rows.append((m, "stillborn", str(e), 0.0))
                print(f"{m['id']:32s} stillborn  {e}", flush=True)
                continue
            try:
                rc, _, out = build(tree, env, a.jobs)
                if rc != 0:
                    status, detail = "stillborn", "does not compile"
                    if a.verbose:
                        print(out[-3000:])
                else:
                    killed_by, _, out = run_tests(specs, tree, env, a.timeout)
                    status, detail = ("killed", killed_by) if killed_by else ("SURVIVED", "all of " + ", ".join(specs))
                    if not killed_by and a.verbose:
                        print(out[-3000:])
            finally:
                restore(saved)
            rows.append((m, status, detail, time.time() - t0))
            print(f"{m['id']:32s} {status:9s}  {detail}  ({time.time() - t0:.0f} s)", flush=True)

        valid = [r for r in rows if r[1] != "stillborn"]
        killed = [r for r in valid if r[1] == "killed"]
        survivors = [r[0]["id"] for r in valid if r[1] == "SURVIVED"]
        stillborn = [r[0]["id"] for r in rows if r[1] == "stillborn"]
        print("\n| mutant | where | what | result | caught by |")
        print("|---|---|---|---|---|")
        for m, status, detail, _ in rows:
            where = ", ".join(sorted({e[0] for e in m["edits"]}))
            print(f"| {m['id']} | {where} | {m['what']} | {status} | {detail if status == 'killed' else ''} |")
        for s in survivors:
            if s in EQUIVALENT:
                print(f"survivor {s} is listed as equivalent: {EQUIVALENT[s]}")
        minutes = (time.time() - t_start) / 60
        print(f"\n{len(killed)} of {len(valid)} killed ({100.0 * len(killed) / max(1, len(valid)):.1f}%), "
              f"{len(stillborn)} stillborn, {minutes:.1f} min")
        print(json.dumps({"mutants": len(valid), "killed": len(killed), "survivors": survivors,
                          "stillborn": stillborn, "minutes": round(minutes, 1)}))
        return 0 if not stillborn else 1
    finally:
        if a.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
