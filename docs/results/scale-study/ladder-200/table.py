#!/usr/bin/env python3
"""The 200-case ladder cells (run.sh N) as a markdown table: the -focus local score with the
N = 256 setting next to the tuned LETKF and the ETKF on the same cases, and at N = 256 the pooled
200 cases of ../n256-focus-tl1.5 (pool.sh all). Cells not run yet are skipped.
Usage (from the repository root): python3 docs/results/scale-study/ladder-200/table.py"""
import json
import os

R = "docs/results/scale-study/"


def load(p):
    return json.load(open(p)) if os.path.exists(p) else None


def cov(d):
    return d["coverage"]["max_abs_error"]


print("| N | cases | local score RMSE | spread/RMSE | CRPS | coverage error | tuned LETKF RMSE (radius) | coverage error | ETKF RMSE | coverage error | retried cases |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for n in (8, 16, 32, 40, 64, 128):
    f, le, et = (load(R + "ladder-200/%s-%d.json" % (k, n)) for k in ("focus", "letkf", "etkf"))
    if not (f and le and et):
        continue
    assert f["cases"] == le["cases"] == et["cases"] and f["seed"] == le["seed"] == et["seed"]
    rt = len(f["diagnostics"].get("dynamics_retried", []))
    print("| %d | %d | %.4f | %.2f | %.4f | %.3f | %.4f (%g) | %.3f | %.4f | %.3f | %d |" % (
        n, f["cases"], f["rmse"], f["spread"] / f["rmse"], f["crps"], cov(f), le["rmse"], le["params"]["radius"],
        cov(le), et["rmse"], cov(et), rt))
f, le = load(R + "n256-focus-tl1.5/local5-dq-tl1.5-pooled.json"), load(R + "n256-focus-tl1.5/letkf-pooled.json")
if f and le and f["cases"] == le["cases"]:
    print("| 256 | %d | %.4f | %.2f | %.4f | %.3f | %.4f (16) | %.3f | | | %d |" % (
        f["cases"], f["rmse"], f["spread"] / f["rmse"], f["crps"], cov(f), le["rmse"], cov(le),
        len(f.get("dynamics_retried", []))))
