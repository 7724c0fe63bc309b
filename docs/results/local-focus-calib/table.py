#!/usr/bin/env python3
"""The calibration matrix of run.sh as a markdown table: per cell the -focus local score with its
setting, and the LETKF and ETKF with the best RMSE of their grids on the same cases (tune/).
Cells not finished are skipped. Usage (from the repository root):
python3 docs/results/local-focus-calib/table.py"""
import glob
import json
import os

O = "docs/results/local-focus-calib/"
CELLS = [("id-s0.3", "every node", 0.3), ("id-s0.3-default", "every node", 0.3), ("id-s2", "every node", 2.0), ("half-s0.5", "every second node", 0.5),
         ("half-s1.5-dense", "every second node", 1.5), ("quarter-s1", "every fourth node", 1.0),
         ("kernel-s0.5", "kernel_stations (block 4)", 0.5)]


def best(cell, kind):
    runs = [json.load(open(p)) for p in glob.glob(O + "tune/%s-%s-*.json" % (cell, kind))]
    return min(runs, key=lambda d: d["rmse"]) if runs else None


print("| operator | σ | local score setting | RMSE | spread/RMSE | CRPS | coverage error | best LETKF RMSE (radius, inflation) | CRPS | coverage error | best ETKF RMSE (inflation) | coverage error |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for cell, op, s in CELLS:
    if not os.path.exists(O + cell + "-focus.json"):
        continue
    f, le, et = json.load(open(O + cell + "-focus.json")), best(cell, "letkf"), best(cell, "etkf")
    assert f["cases"] == le["cases"] == et["cases"] and f["seed"] == le["seed"] == et["seed"]
    cov = lambda d: d["coverage"]["max_abs_error"]
    print("| %s | %g | `%s` | %.4f | %.2f | %.4f | %.3f | %.4f (%g, %g) | %.4f | %.3f | %.4f (%g) | %.3f |" % (
        op, s, json.dumps(f["params"], separators=(",", ":")), f["rmse"], f["spread"] / f["rmse"], f["crps"], cov(f),
        le["rmse"], le["params"]["radius"], le["params"]["inflation"], le["crps"], cov(le), et["rmse"],
        et["params"]["inflation"], cov(et)))
