#!/bin/sh
# Evaluates a shipped model and the baselines (etkf, letkf, pf) on the very same test
# cases and writes models/eval/<stem>/<setup>/{<estimator>.json, <estimator>/*.svg} plus
# a markdown comparison (compare.md). Usage: models/evaluate.sh <stem> [cases] [seed]
# (defaults: 200 cases, seed 2026, 64 samples; THREADS=2; ESTIMATORS="letkf" runs only
# those of model, etkf, letkf, pf and rewrites compare.md from every JSON present).
# The LETKF's radius and inflation per setup come from models/tune-letkf.sh (seed 7,
# cases the evaluation never sees; models/eval/letkf-tuning.json).
set -eu
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
cd "$(dirname "$0")/.."
stem=$1
cases=${2:-200}
seed=${3:-2026}
model=models/$stem.safetensors
[ -f "$model" ] || { echo "evaluate: $model not found" >&2; exit 2; }

run_setup() { # name operator noise inflation letkf-params [time-index]
  name=$1 op=$2 noise=$3 infl=$4 lparams=$5 t=${6:-}
  out=models/eval/$stem/$name
  mkdir -p "$out"
  targs=""
  [ -n "$t" ] && targs="--time-index $t"
  for est in ${ESTIMATORS:-"$model" etkf letkf pf}; do
    [ "$est" = model ] && est=$model
    label=$(basename "$est" .safetensors)
    params='{}'
    [ "$est" = etkf ] && params="{\"inflation\": $infl}"
    [ "$est" = letkf ] && params=$lparams
    # shellcheck disable=SC2086
    "$BUILD/sbida" eval --estimator "$est" --preset "$preset" --N "$N" --window 10 --operator "$op" \
      --noise-std "$noise" --cases "$cases" --samples 64 --seed "$seed" --threads "$THREADS" \
      --params "$params" $targs --json "$out/$label.json" --svg-dir "$out/$label" --quiet
  done
  "$BUILD/sbida" compare "$out"/*.json > "$out/compare.md"
  cat "$out/compare.md"
}

# models/tune-letkf.sh's winners (lowest CRPS on seed 7, 40 cases; radius x inflation grid)
LETKF_IDENTITY='{"radius": 12, "inflation": 1.0}'
LETKF_HALF='{"radius": 8, "inflation": 1.0}'
LETKF_T10='{"radius": 8, "inflation": 1.0}'
LETKF_T1000='{"radius": 8, "inflation": 1.0}'

case $stem in
  l96-sakov-*) preset=l96-sakov N=40 ;;
  l96-thesis-n32-*) preset=l96-thesis N=32 ;;
  *) echo "evaluate: unknown model stem $stem" >&2; exit 2 ;;
esac
case $stem in
  l96-sakov-w10-posterior-score|l96-sakov-w10-npe)
    run_setup identity-s1 '{"type":"identity"}' 1.0 1.02 "$LETKF_IDENTITY" ;;
  l96-sakov-w10-composed-score|l96-sakov-w10-composed-score-cycle|l96-sakov-w10-composed-score-w32)
    run_setup identity-s1 '{"type":"identity"}' 1.0 1.02 "$LETKF_IDENTITY"
    run_setup half-s1.5 '{"type":"subsample","stride":2}' 1.5 1.04 "$LETKF_HALF" ;;
  l96-sakov-n32-k3-local-score) # trained at N = 32, served at any N: evaluated at the preset's N = 40
    run_setup n40-identity-s1 '{"type":"identity"}' 1.0 1.02 "$LETKF_IDENTITY"
    run_setup n40-half-s1.5 '{"type":"subsample","stride":2}' 1.5 1.04 "$LETKF_HALF" ;;
  l96-thesis-n32-w10-*)
    run_setup kernel-s0.5-t10 '{"type":"kernel_stations","seed":0}' 0.5 1.02 "$LETKF_T10" 10
    run_setup kernel-s0.5-t1000 '{"type":"kernel_stations","seed":0}' 0.5 1.02 "$LETKF_T1000" 1000 ;;
esac
