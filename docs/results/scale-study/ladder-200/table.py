#!/usr/bin/env python3
"""The 200-case ladder cells as markdown tables, a JSON of the rows and a plot of RMSE and coverage
error against N (ladder-200.json, ladder-200.svg in this folder).

Two local-score models, each next to the tuned LETKF and the ETKF on the same cases:
 - focus: the -focus model (k = 3). Every node sigma = 1 (run.sh N [CASES [FIRST]]) with the N = 256
   setting, and at N = 256 the pooled 200 cases of ../n256-focus-tl1.5 (pool.sh all); every second node
   sigma = 1.5 (SETUP=half run.sh, files half-*) with the file's defaults.
 - cycle: the -cycle composed prior as a local score (MODEL=cycle run.sh, files [half-]cycle-N.json) with
   the fast N = 256 setting in both setups, and at N = 256 every node the pooled 200 cases of
   ../n256-cycle-local (pool.sh pc22-tl1.75).
A cell run in parts (FIRST, files *-N-fromF.json) is pooled case-weighted, as tests/eval/combine_evals.py
does. The baselines are pooled over non-overlapping files that cover exactly the model's cases (a
baseline may have a 200-case file and parts); cells not run yet are skipped.
Usage (from the repository root): python3 docs/results/scale-study/ladder-200/table.py"""
import glob
import json
import os
import sys

R = "docs/results/scale-study/"
sys.path.insert(0, "tests/eval")
import combine_evals  # noqa: E402  (the pooling)
import scale_study  # noqa: E402  (the plot)

CYCLE = "l96-sakov-w10-local-score-cycle"
MODELS = (("focus", scale_study.LOCAL, "the -focus local score (k = 3)"),
          ("cycle", CYCLE, "the -cycle composed prior as a local score (pc 22, tau_L 1.75, dynamics term)"))
N256 = {("focus", "full"): ("n256-focus-tl1.5/local5-dq-tl1.5-pooled.json", "n256-focus-tl1.5/letkf-pooled.json"),
        ("cycle", "full"): ("n256-cycle-local/pc22-tl1.75-pooled.json",
                            "n256-cycle-local/letkf-pc22-tl1.75-cases.json")}


def span(d):
    return set(range(d.get("first_case", 0), d.get("first_case", 0) + d["cases"]))


def pick(kind, n, want=None):
    """non-overlapping files of one estimator at N = n, largest first; with want (a set of case
    indices) only files inside it, and only if they cover it exactly"""
    fs = [R + "ladder-200/%s-%d.json" % (kind, n)] + sorted(glob.glob(R + "ladder-200/%s-%d-from*.json" % (kind, n)))
    ds = sorted((json.load(open(f)) for f in fs if os.path.exists(f)), key=lambda d: -d["cases"])
    got, cover = [], set()
    for d in ds:
        s = span(d)
        if (want is None or s <= want) and not s & cover:
            got.append(d)
            cover |= s
    if not got or (want is not None and cover != want):
        return None
    return got


def pool(parts):
    """(cases, rmse, spread, crps, coverage error, params, retried, case set), pooled by
    tests/eval/combine_evals.py's combine"""
    d = combine_evals.combine(parts, ["%s from %d" % (p["estimator"], p.get("first_case", 0)) for p in parts])
    return (d["cases"], d["rmse"], d["spread"], d["crps"], d["coverage"]["max_abs_error"], parts[0]["params"],
            len(d.get("dynamics_retried", [])), set().union(*(span(p) for p in parts)))


def pooled(path):
    d = json.load(open(R + path))
    return (d["cases"], d["rmse"], d["spread"], d["crps"], d["coverage"]["max_abs_error"],
            json.load(open(d["files"][0]))["params"], len(d.get("dynamics_retried", [])), None)


def row(model, setup, n, est, c):
    return {"study": "ladder", "model": model, "setup": setup, "N": n, "W": 10, "estimator": est, "cases": c[0],
            "rmse": c[1], "spread": c[2], "crps": c[3], "coverage_error": c[4], "params": c[5], "retried": c[6]}


rows = []
for mk, mname, mtitle in MODELS:
    for setup, pre, title in (("full", "", "every node, sigma = 1"), ("half", "half-", "every second node, sigma = 1.5")):
        out = []
        for n in (8, 16, 32, 40, 64, 128, 256):
            if (mk, setup) in N256 and n == 256:
                fp, lp = N256[(mk, setup)]
                if not (os.path.exists(R + fp) and os.path.exists(R + lp)):
                    continue
                f, le, et = pooled(fp), pooled(lp), None
                assert f[0] == le[0]
            else:
                fparts = pick(pre + mk, n)
                if not fparts:
                    continue
                f = pool(fparts)
                le, et = (pick(pre + k, n, f[7]) for k in ("letkf", "etkf"))
                if not (le and et):
                    continue
                le, et = pool(le), pool(et)
            rows += [row(mk, setup, n, mname, f), row(mk, setup, n, "letkf", le)] + ([row(mk, setup, n, "etkf", et)] if et else [])
            out.append("| %d | %d | %.4f | %.2f | %.4f | %.3f | %.4f (%g) | %.3f | %s | %s | %d |" % (
                n, f[0], f[1], f[2] / f[1], f[3], f[4], le[1], le[5]["radius"], le[4],
                "%.4f" % et[1] if et else "", "%.3f" % et[4] if et else "", f[6]))
        if not out:
            continue
        print("\n%s, %s:\n" % (mtitle, title))
        print("| N | cases | local score RMSE | spread/RMSE | CRPS | coverage error | tuned LETKF RMSE (radius) |"
              " coverage error | ETKF RMSE | coverage error | retried cases |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(out))
json.dump(rows, open(R + "ladder-200/ladder-200.json", "w"), indent=1)
# the plot: each local-score model; a baseline once per (setup, N), from the cell with the most cases
base = {}
for r in rows:
    if r["estimator"] in ("letkf", "etkf"):
        k = (r["setup"], r["N"], r["estimator"])
        if k not in base or r["cases"] > base[k]["cases"]:
            base[k] = r
plot = [r for r in rows if r["estimator"] not in ("letkf", "etkf")] + list(base.values())
scale_study.svg(plot, R + "ladder-200/ladder-200.svg",
                "l96-sakov, W = 10, the 200-case ladder: RMSE and coverage error against N (two local-score models)",
                colors={"etkf": ("#1f77b4", "etkf"), "letkf": ("#2ca02c", "tuned letkf"),
                        scale_study.LOCAL: ("#d62728", "local score -focus"), CYCLE: ("#9467bd", "-cycle as local score")})
