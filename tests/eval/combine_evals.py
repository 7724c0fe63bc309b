#!/usr/bin/env python3
"""Pools `sbida eval` results of one estimator run on disjoint test sets (e.g. the same flags
with --seed 2026 and --seed 2027, or one seed split with --first-case, each in its own process) into
one summary, as if one run had seen all their cases. Parts that share cases are refused.

usage: tests/eval/combine_evals.py A.json B.json [...] > combined.json

rmse, spread and crps are averages over cases (docs/evaluation.md), so the pooled value is the
case-weighted mean; the coverage curve's observed fractions are pooled the same way and the
coverage error is taken from the pooled curve (not the max of the parts). Cases that ran
again with a wider dynamics term (diagnostics.dynamics_retried) are listed with their seed.
"""
import json
import sys


class CombineError(ValueError):
    """the results cannot be pooled (other flags, shared cases, other coverage levels)"""


def combine(ds, paths):
    """the pooled summary of loaded `sbida eval` results ds (read from paths, which it records)"""
    keys = ("estimator", "preset", "N", "window", "operator", "noise_std", "samples", "params")
    # dynamics_retries may differ: it only decides whether a case that diverged runs again (the
    # same samples otherwise); each part's value is kept in "parts"
    same = lambda d, k: ({a: b for a, b in d[k].items() if a != "dynamics_retries"}
                         if k == "params" and isinstance(d.get(k), dict) else d.get(k))
    for d in ds[1:]:
        for k in keys:
            if same(d, k) != same(ds[0], k):
                raise CombineError("%s differs between files (%r, %r)" % (k, ds[0].get(k), d.get(k)))
    spans = sorted((d["seed"], d.get("first_case", 0), d.get("first_case", 0) + d["cases"]) for d in ds)
    for a, b in zip(spans, spans[1:]):  # parts of one seed (--first-case) must not share cases
        if a[0] == b[0] and b[1] < a[2]:
            raise CombineError("two files share cases of seed %d (cases %d..%d and %d..%d)"
                               % (a[0], a[1], a[2] - 1, b[1], b[2] - 1))
    n = sum(d["cases"] for d in ds)
    w = [d["cases"] / n for d in ds]

    def avg(k):
        return sum(wi * d[k] for wi, d in zip(w, ds))

    levels = ds[0]["coverage"]["levels"]
    if any(d["coverage"]["levels"] != levels for d in ds):
        raise CombineError("the files' coverage levels differ")
    observed = [sum(wi * d["coverage"]["observed"][i] for wi, d in zip(w, ds)) for i in range(len(levels))]
    out = {
        "files": paths,
        "estimator": ds[0]["estimator"],
        "cases": n,
        "seeds": [d["seed"] for d in ds],
        "rmse": avg("rmse"),
        "spread": avg("spread"),
        "crps": avg("crps"),
        "coverage": {"levels": levels, "observed": observed,
                     "max_abs_error": max(abs(o - l) for o, l in zip(observed, levels))},
        "seconds_per_request": avg("seconds_per_request"),
        "parts": [dict({"seed": d["seed"], "cases": d["cases"], "rmse": d["rmse"],
                        "coverage_max_error": d["coverage"]["max_abs_error"]},
                       **({"first_case": d["first_case"]} if "first_case" in d else {}),
                       **({"dynamics_retries": d["params"]["dynamics_retries"]}
                          if "dynamics_retries" in (d.get("params") or {}) else {})) for d in ds],
    }
    # cases whose sampling ran again with a wider dynamics term (sbida eval's diagnostics)
    retried = [dict({"seed": d["seed"]}, **r) for d in ds
               for r in (d.get("diagnostics") or {}).get("dynamics_retried", [])]
    if retried:
        out["dynamics_retried"] = retried
    return out


def main(paths):
    if not paths:
        sys.exit(__doc__)
    ds = []
    for p in paths:
        try:
            d = json.load(open(p))
            float(d["rmse"]), float(d["spread"]), float(d["crps"]), int(d["cases"])
            d["coverage"]["levels"], d["coverage"]["observed"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.exit("combine_evals: %s is not an sbida eval result (%s)" % (p, e))
        if d["cases"] < 1 or len(d["coverage"]["observed"]) != len(d["coverage"]["levels"]):
            sys.exit("combine_evals: %s has no cases or a malformed coverage curve" % p)
        ds.append(d)
    try:
        out = combine(ds, paths)
    except CombineError as e:
        sys.exit("combine_evals: %s" % e)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
