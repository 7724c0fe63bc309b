#!/bin/sh
# pools the N = 256 cases of the -focus model ({"dynamics_q":0.0001,"tau_l":1.5}) and of the tuned
# LETKF on the same cases and prints RMSE, spread/RMSE, CRPS and coverage error of each.
# Seeds 2026-2031: 24 cases each (n256.sh SEED; 2031 ran with --threads 2, the same cases and samples). Seed 2032: case 6 diverges with this setting
# (diverged-2032-6-dg0.3.json: the same case with dynamics_gamma 0.3), so its other 23 cases are
# two parts (--first-case 0 --cases 6, --first-case 7 --cases 17), and the LETKF's the same parts.
# Seed 2033 (32 cases; letkf-2033.json) stopped at its case 10, which diverges too
# (diverged-2033-10-dg0.3.json); its other cases were not run. Usage: pool.sh
set -eu
cd "$(dirname "$0")/../../../.."
O=docs/results/scale-study/n256-focus-tl1.5
L=""; F=""
for S in 2026 2027 2028 2029 2030 2031; do
  F="$F $O/local5-dq-tl1.5-$S.json"
  if [ $S -le 2027 ]; then L="$L docs/results/scale-study/n256-pc64-48/letkf-$S.json"; else L="$L $O/letkf-$S.json"; fi
done
for P in 0 7; do
  [ -f $O/local5-dq-tl1.5-2032-from$P.json ] && F="$F $O/local5-dq-tl1.5-2032-from$P.json" && L="$L $O/letkf-2032-from$P.json"
done
python3 tests/eval/combine_evals.py $F > $O/local5-dq-tl1.5-pooled.json
python3 tests/eval/combine_evals.py $L > $O/letkf-pooled.json
python3 - "$O" <<'PY'
import json, sys
o = sys.argv[1]
for name in ("local5-dq-tl1.5-pooled", "letkf-pooled"):
    d = json.load(open("%s/%s.json" % (o, name)))
    print("%-24s cases %d  RMSE %.4f  spread/RMSE %.3f  CRPS %.4f  coverage error %.3f" % (
        name, d["cases"], d["rmse"], d["spread"] / d["rmse"], d["crps"], d["coverage"]["max_abs_error"]))
    for p in d["parts"]:
        print("   seed %d from %d: %d cases, RMSE %.4f, coverage error %.3f" % (
            p["seed"], p.get("first_case", 0), p["cases"], p["rmse"], p["coverage_max_error"]))
PY
