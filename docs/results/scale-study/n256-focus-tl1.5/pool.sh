#!/bin/sh
# pools the N = 256 cases of the -focus model ({"dynamics_q":0.0001,"tau_l":1.5}) and of the tuned
# LETKF on the same cases and prints RMSE, spread/RMSE, CRPS and coverage error of each.
# Seeds 2026-2031: 24 cases each (n256.sh SEED; 2031 ran with --threads 2, the same cases and samples).
# Seed 2032 (24 cases) in three parts: cases 0-5 and 7-23 (session 20), and case 6 (session 21),
# which diverges at dynamics_gamma 0.1 and, since session 21, runs again by itself at 0.3
# (--first-case 6 --cases 1). Seed 2033 (32 cases; session 21): cases 0-9, 10 (retried the same
# way) and 11-31. The LETKF ran each seed in one piece (letkf.sh; the same cases).
# With "all" as the argument only the 200 cases (seeds 2026-2033) are pooled, and parts that are
# missing stop it; without, the parts present are pooled. Usage: pool.sh [all]
set -eu
cd "$(dirname "$0")/../../../.."
O=docs/results/scale-study/n256-focus-tl1.5
L=""; F=""
for S in 2026 2027 2028 2029 2030 2031; do
  F="$F $O/local5-dq-tl1.5-$S.json"
  if [ $S -le 2027 ]; then L="$L docs/results/scale-study/n256-pc64-48/letkf-$S.json"; else L="$L $O/letkf-$S.json"; fi
done
for S in 2032:0,6,7 2033:0,10,11; do
  seed=${S%:*}; n=0; parts=""
  for P in $(echo ${S#*:} | tr , ' '); do
    f=$O/local5-dq-tl1.5-$seed-from$P.json
    if [ -f $f ]; then parts="$parts $f"; n=$((n + 1)); elif [ "${1:-}" = all ]; then echo "pool.sh: $f missing" >&2; exit 1; fi
  done
  if [ $n -eq 3 ]; then F="$F$parts"; L="$L $O/letkf-$seed.json"
  elif [ $seed = 2032 ] && [ -f $O/local5-dq-tl1.5-2032-from0.json ] && [ -f $O/local5-dq-tl1.5-2032-from7.json ]; then
    # session 20's pool: seed 2032 without its case 6
    F="$F $O/local5-dq-tl1.5-2032-from0.json $O/local5-dq-tl1.5-2032-from7.json"
    L="$L $O/letkf-2032-from0.json $O/letkf-2032-from7.json"
  fi
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
    for r in d.get("dynamics_retried", []):
        print("   retried: seed %d case %d at dynamics_gamma %g" % (r["seed"], r["case"], r["dynamics_gamma"]))
PY
