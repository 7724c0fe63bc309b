#!/bin/sh
# Tunes the LETKF baseline (localization radius and inflation) for each setup of
# models/evaluate.sh on cases the evaluation never sees: seed 7 (the evaluations use
# 2026), 40 cases, 64 members. The pair with the lowest CRPS wins (RMSE breaks ties);
# the grid and every result go to models/eval/letkf-tuning.json, and the winners are
# what models/evaluate.sh passes to letkf.
# Usage: models/tune-letkf.sh [setup ...]   (default: every setup; THREADS=2, CASES=40)
set -eu
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
CASES=${CASES:-40}
SEED=7
cd "$(dirname "$0")/.."
out=models/eval/letkf-tuning.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

setup_args() { # setup -> preset N operator noise time-index
  case $1 in
    identity-s1) echo "l96-sakov 40 {\"type\":\"identity\"} 1.0 9" ;;
    half-s1.5) echo "l96-sakov 40 {\"type\":\"subsample\",\"stride\":2} 1.5 9" ;;
    kernel-s0.5-t10) echo "l96-thesis 32 {\"type\":\"kernel_stations\",\"seed\":0} 0.5 10" ;;
    kernel-s0.5-t1000) echo "l96-thesis 32 {\"type\":\"kernel_stations\",\"seed\":0} 0.5 1000" ;;
    *) echo "tune-letkf: unknown setup $1" >&2; exit 2 ;;
  esac
}

setups=${*:-"identity-s1 half-s1.5 kernel-s0.5-t10 kernel-s0.5-t1000"}
for s in $setups; do
  # shellcheck disable=SC2046
  set -- $(setup_args "$s")
  preset=$1 N=$2 op=$3 noise=$4 t=$5
  for r in 2 4 6 8 12; do
    for infl in 1.0 1.02 1.05 1.1; do
      "$BUILD/sbida" eval --estimator letkf --preset "$preset" --N "$N" --window 10 --operator "$op" \
        --noise-std "$noise" --time-index "$t" --cases "$CASES" --samples 64 --seed "$SEED" --threads "$THREADS" \
        --params "{\"radius\": $r, \"inflation\": $infl}" --json "$tmp/$s-r$r-i$infl.json" --quiet
    done
  done
done

/usr/bin/python3 - "$tmp" "$out" "$CASES" "$SEED" $setups <<'EOF'
import glob, json, os, sys
tmp, out, cases, seed, setups = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
rec = json.load(open(out)) if os.path.exists(out) else {}
rec.update({"how": "models/tune-letkf.sh: grid over radius x inflation on seed %d (%d cases, 64 members); "
            "the lowest CRPS wins, RMSE breaks ties; models/evaluate.sh uses the winners on seed 2026" % (seed, cases)})
rec.setdefault("setups", {})
for s in setups:
    rows = []
    for f in sorted(glob.glob(os.path.join(tmp, s + "-r*.json"))):
        j = json.load(open(f))
        rows.append({"radius": j["params"]["radius"], "inflation": j["params"]["inflation"], "rmse": j["rmse"],
                     "crps": j["crps"], "spread": j["spread"],
                     "coverage_max_abs_error": j["coverage"]["max_abs_error"]})
    best = min(rows, key=lambda r: (r["crps"], r["rmse"]))
    rec["setups"][s] = {"seed": seed, "cases": cases, "best": {"radius": best["radius"], "inflation": best["inflation"]},
                        "grid": rows}
    print("%-18s radius %-4g inflation %-5g CRPS %.4f RMSE %.4f" % (s, best["radius"], best["inflation"],
                                                                    best["crps"], best["rmse"]))
json.dump(rec, open(out, "w"), indent=1)
EOF
