#!/usr/bin/env python3
"""The 200-case ladder cells as markdown tables, a JSON of the rows and a plot of RMSE and coverage
error against N (ladder-200.json, ladder-200.svg in this folder).

Every node sigma = 1 (run.sh N [CASES [FIRST]]): the -focus local score with the N = 256 setting next
to the tuned LETKF and the ETKF on the same cases, and at N = 256 the pooled 200 cases of
../n256-focus-tl1.5 (pool.sh all). Every second node sigma = 1.5 (SETUP=half run.sh, files half-*): the
-focus local score with the file's defaults. A cell run in parts (FIRST, files *-N-fromF.json) is
pooled case-weighted, as tests/eval/combine_evals.py does (parts need not be contiguous: every estimator
of a cell is pooled over the parts the model finished, the same cases); cells not run yet are skipped.
Usage (from the repository root): python3 docs/results/scale-study/ladder-200/table.py"""
import glob
import json
import os
import sys

R = "docs/results/scale-study/"
sys.path.insert(0, "tests/eval")
import scale_study  # noqa: E402  (the plot)


def cell(kind, n, starts=None):
    """(cases, rmse, spread, crps, coverage error, params, retried, part starts) of one estimator at
    N = n; starts: keep only the parts that begin there (the parts another estimator has finished)"""
    one = R + "ladder-200/%s-%d.json" % (kind, n)
    parts = [json.load(open(p)) for p in ([one] if os.path.exists(one) else
                                           sorted(glob.glob(R + "ladder-200/%s-%d-from*.json" % (kind, n))))]
    if starts is not None:
        parts = [d for d in parts if d.get("first_case", 0) in starts]
    if not parts:
        return None
    spans = sorted((d.get("first_case", 0), d.get("first_case", 0) + d["cases"]) for d in parts)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "parts must not overlap"
    assert len({d["seed"] for d in parts}) == 1 and len({json.dumps(d["params"]) for d in parts}) == 1
    c = sum(d["cases"] for d in parts)
    avg = lambda k: sum(d["cases"] * d[k] for d in parts) / c
    lv = parts[0]["coverage"]["levels"]
    obs = [sum(d["cases"] * d["coverage"]["observed"][i] for d in parts) / c for i in range(len(lv))]
    retried = sum(len(d["diagnostics"].get("dynamics_retried", [])) for d in parts)
    return (c, avg("rmse"), avg("spread"), avg("crps"), max(abs(o - l) for o, l in zip(obs, lv)),
            parts[0]["params"], retried, {d.get("first_case", 0) for d in parts})


def row(setup, n, est, c):
    return {"study": "ladder", "setup": setup, "N": n, "W": 10, "estimator": est, "cases": c[0], "rmse": c[1],
            "spread": c[2], "crps": c[3], "coverage_error": c[4], "params": c[5], "retried": c[6]}


rows = []
for setup, pre, title in (("full", "", "every node, sigma = 1"), ("half", "half-", "every second node, sigma = 1.5")):
    print("\n%s:\n" % title)
    print("| N | cases | local score RMSE | spread/RMSE | CRPS | coverage error | tuned LETKF RMSE (radius) |"
          " coverage error | ETKF RMSE | coverage error | retried cases |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in (8, 16, 32, 40, 64, 128):
        f = cell(pre + "focus", n)  # the model runs last: its finished parts set the cases
        if not f:
            continue
        le, et = (cell(pre + k, n, f[7]) for k in ("letkf", "etkf"))
        if not (le and et):
            continue
        assert f[0] == le[0] == et[0]
        rows += [row(setup, n, scale_study.LOCAL, f), row(setup, n, "letkf", le), row(setup, n, "etkf", et)]
        print("| %d | %d | %.4f | %.2f | %.4f | %.3f | %.4f (%g) | %.3f | %.4f | %.3f | %d |" % (
            n, f[0], f[1], f[2] / f[1], f[3], f[4], le[1], le[5]["radius"], le[4], et[1], et[4], f[6]))
    if setup != "full":
        continue
    f, le = (json.load(open(R + "n256-focus-tl1.5/%s-pooled.json" % k)) if os.path.exists(
        R + "n256-focus-tl1.5/%s-pooled.json" % k) else None for k in ("local5-dq-tl1.5", "letkf"))
    if f and le and f["cases"] == le["cases"]:
        fr = (f["cases"], f["rmse"], f["spread"], f["crps"], f["coverage"]["max_abs_error"], json.load(open(f["files"][0]))["params"],
              len(f.get("dynamics_retried", [])))
        lr = (le["cases"], le["rmse"], le["spread"], le["crps"], le["coverage"]["max_abs_error"], json.load(open(le["files"][0]))["params"], 0)
        rows += [row(setup, 256, scale_study.LOCAL, fr), row(setup, 256, "letkf", lr)]
        print("| 256 | %d | %.4f | %.2f | %.4f | %.3f | %.4f (%g) | %.3f | | | %d |" % (
            fr[0], fr[1], fr[2] / fr[1], fr[3], fr[4], lr[1], lr[5]["radius"], lr[4], fr[6]))
json.dump(rows, open(R + "ladder-200/ladder-200.json", "w"), indent=1)
scale_study.svg(rows, R + "ladder-200/ladder-200.svg",
                "l96-sakov, W = 10, the 200-case ladder: RMSE and coverage error against N (one local-score model)")
