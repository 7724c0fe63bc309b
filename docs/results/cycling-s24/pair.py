#!/usr/bin/env python3
"""Paired per-cycle RMSE differences of `sbida cycle --jsonl` runs on the same truth times.

Usage: pair.py BASE.jsonl[.gz] OTHER.jsonl[.gz] ...  For each OTHER: the mean RMSE of both over
the truth times t they share (counted cycles only: a learned run's cycle >= 30, a W = 1 classical
run's cycle >= 39, i.e. t >= 39 in both), the mean difference with its standard error over 30
blocks of consecutive cycles (errors are correlated in time), and how often OTHER is lower.
"""
import gzip
import json
import sys

import numpy as np


def load(path):
    op = gzip.open if path.endswith(".gz") else open
    rows = [json.loads(line) for line in op(path, "rt")]
    return {d["t"]: d["rmse"] for d in rows if d["t"] >= 39}


def main(argv):
    if len(argv) < 3:
        sys.exit("usage: pair.py BASE.jsonl OTHER.jsonl ...")
    base = load(argv[1])
    for path in argv[2:]:
        other = load(path)
        ts = sorted(set(base) & set(other))
        if len(ts) < 2:
            sys.exit(f"pair.py: {path} and {argv[1]} share {len(ts)} counted cycles (t >= 39); need 2 or more")
        d = np.array([other[t] - base[t] for t in ts])
        nb = min(30, len(d))
        blocks = np.array([b.mean() for b in np.array_split(d, nb)])
        se = blocks.std(ddof=1) / np.sqrt(nb)
        print(f"{path}: n={len(ts)}  {np.mean([other[t] for t in ts]):.4f} vs {np.mean([base[t] for t in ts]):.4f}"
              f"  difference {d.mean():+.4f} ± {se:.4f}  lower in {100 * (d < 0).mean():.0f}% of cycles")


if __name__ == "__main__":
    main(sys.argv)
