#!/usr/bin/env python3
"""The 200-case ladder cells (run.sh N [CASES [FIRST]]) as a markdown table: the -focus local score
with the N = 256 setting next to the tuned LETKF and the ETKF on the same cases, and at N = 256 the
pooled 200 cases of ../n256-focus-tl1.5 (pool.sh all). A cell run in parts (FIRST, files
*-N-fromF.json) is pooled case-weighted, as tests/eval/combine_evals.py does; cells not run yet
are skipped. Usage (from the repository root): python3 docs/results/scale-study/ladder-200/table.py"""
import glob
import json
import os

R = "docs/results/scale-study/"


def cell(kind, n):
    """(cases, rmse, spread, crps, coverage error, params, retried) of one estimator at N = n"""
    one = R + "ladder-200/%s-%d.json" % (kind, n)
    parts = [json.load(open(p)) for p in ([one] if os.path.exists(one) else
                                           sorted(glob.glob(R + "ladder-200/%s-%d-from*.json" % (kind, n))))]
    if not parts:
        return None
    spans = sorted((d.get("first_case", 0), d.get("first_case", 0) + d["cases"]) for d in parts)
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "parts must tile 0..C-1"
    assert len({d["seed"] for d in parts}) == 1 and len({json.dumps(d["params"]) for d in parts}) == 1
    c = sum(d["cases"] for d in parts)
    avg = lambda k: sum(d["cases"] * d[k] for d in parts) / c
    lv = parts[0]["coverage"]["levels"]
    obs = [sum(d["cases"] * d["coverage"]["observed"][i] for d in parts) / c for i in range(len(lv))]
    retried = sum(len(d["diagnostics"].get("dynamics_retried", [])) for d in parts)
    return (c, avg("rmse"), avg("spread"), avg("crps"), max(abs(o - l) for o, l in zip(obs, lv)),
            parts[0]["params"], retried)


print("| N | cases | local score RMSE | spread/RMSE | CRPS | coverage error | tuned LETKF RMSE (radius) | coverage error | ETKF RMSE | coverage error | retried cases |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for n in (8, 16, 32, 40, 64, 128):
    f, le, et = (cell(k, n) for k in ("focus", "letkf", "etkf"))
    if not (f and le and et):
        continue
    assert f[0] == le[0] == et[0]
    print("| %d | %d | %.4f | %.2f | %.4f | %.3f | %.4f (%g) | %.3f | %.4f | %.3f | %d |" % (
        n, f[0], f[1], f[2] / f[1], f[3], f[4], le[1], le[5]["radius"], le[4], et[1], et[4], f[6]))
f, le = (json.load(open(R + "n256-focus-tl1.5/%s-pooled.json" % k)) if os.path.exists(
    R + "n256-focus-tl1.5/%s-pooled.json" % k) else None for k in ("local5-dq-tl1.5", "letkf"))
if f and le and f["cases"] == le["cases"]:
    print("| 256 | %d | %.4f | %.2f | %.4f | %.3f | %.4f (16) | %.3f | | | %d |" % (
        f["cases"], f["rmse"], f["spread"] / f["rmse"], f["crps"], f["coverage"]["max_abs_error"], le["rmse"],
        le["coverage"]["max_abs_error"], len(f.get("dynamics_retried", []))))
