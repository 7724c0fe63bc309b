#!/bin/sh
# Reproduces tests/data/reference/windowed_etkf_l96.json with `sbida eval`:
# windowed ETKF, l96-sakov (N = 40), 100 members, 300 windows, W = 5, 10, 20,
# full_s1 (identity, sigma 1, inflation 1.02) and half_s1.5 (every second node,
# sigma 1.5, inflation 1.04). Prints a markdown table; exits 1 if any RMSE is
# more than 7% away from the reference.  Usage: tests/eval/windowed_etkf_table.sh [threads]
set -eu
BUILD=${BUILD:-build}
T=${1:-2}
REF=tests/data/reference/windowed_etkf_l96.json
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| setup | W | RMSE (sbida) | RMSE (reference) | diff | spread (sbida) | spread (reference) | seconds |"
echo "|---|---|---|---|---|---|---|---|"
fail=0
for setup in full_s1 half_s1.5; do
  if [ "$setup" = full_s1 ]; then
    op='{"type":"identity"}'; sd=1.0; infl=1.02
  else
    op='{"type":"subsample","stride":2,"offset":0}'; sd=1.5; infl=1.04
  fi
  for W in 5 10 20; do
    f="$out/$setup-$W.json"
    "$BUILD/sbida" eval --estimator etkf --preset l96-sakov --window "$W" --operator "$op" \
      --noise-std "$sd" --cases 300 --samples 100 --seed 1 --threads "$T" \
      --params "{\"inflation\":$infl}" --json "$f" --quiet > /dev/null
    line=$(python3 - "$f" "$REF" "$setup" "$W" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); ref = json.load(open(sys.argv[2]))["table"][sys.argv[3]][sys.argv[4]]
d = r["rmse"] / ref["rmse"] - 1
print(f'| {sys.argv[3]} | {sys.argv[4]} | {r["rmse"]:.3f} | {ref["rmse"]:.3f} | {100*d:+.1f}% | '
      f'{r["spread"]:.3f} | {ref["spread"]:.3f} | {r["seconds"]:.1f} |{" FAIL" if abs(d) > 0.07 else ""}')
PY
)
    echo "$line"
    case "$line" in *FAIL*) fail=1 ;; esac
  done
done
exit $fail
