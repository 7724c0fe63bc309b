#!/bin/sh
# Pools run.sh's files of one TAG (default pc24-tl1.75) over the seeds present (a seed in parts:
# TAG-SEED-from*.json) and the tuned LETKF
# (radius 16, inflation 1.02) on the same cases (../n256-focus-tl1.5's per-seed files), and prints
# both. Usage: pool.sh [TAG]
set -eu
cd "$(dirname "$0")/../../../.."
O=docs/results/scale-study/n256-cycle-local
L=docs/results/scale-study/n256-focus-tl1.5
T=${1:-pc24-tl1.75}
F=""; LF=""
for S in 2026 2027 2028 2029 2030 2031 2032 2033; do
  if [ -f $O/$T-$S.json ]; then F="$F $O/$T-$S.json"
  elif ls $O/$T-$S-from*.json > /dev/null 2>&1; then F="$F $(ls $O/$T-$S-from*.json | tr '\n' ' ')"
  else continue; fi
  if [ $S -le 2027 ]; then LF="$LF docs/results/scale-study/n256-pc64-48/letkf-$S.json"; else LF="$LF $L/letkf-$S.json"; fi
done
python3 tests/eval/combine_evals.py $F > $O/$T-pooled.json
python3 tests/eval/combine_evals.py $LF > $O/letkf-$T-cases.json
python3 - $O/$T-pooled.json $O/letkf-$T-cases.json <<'PY'
import json, sys
for f in sys.argv[1:]:
    d = json.load(open(f))
    print("%-60s cases %d  RMSE %.4f  spread/RMSE %.3f  CRPS %.4f  coverage error %.3f" % (
        f, d["cases"], d["rmse"], d["spread"] / d["rmse"], d["crps"], d["coverage"]["max_abs_error"]))
    for p in d["parts"]:
        print("   seed %d: %d cases, RMSE %.4f, coverage error %.3f" % (p["seed"], p["cases"], p["rmse"],
                                                                       p["coverage_max_error"]))
    for r in d.get("dynamics_retried", []):
        print("   retried: seed %d case %d at dynamics_gamma %g" % (r["seed"], r["case"], r["dynamics_gamma"]))
PY
