#!/bin/sh
# Quality against cost of the diffusion samplers (docs/samplers.md): for a
# shipped score model, `sbida eval` at 8, 12, 16, 24, 32, 64 network
# evaluations for each sampler (pc with one corrector: steps = evaluations/2,
# dpm2m, dpm2m-sde, heun: steps = evaluations), plus today's default
# (pc, 64 steps, 128 evaluations; the Kolmogorov model's pc 32 steps, 64),
# all on the same seeded cases as models/evaluate.sh (seed 2026, 64 samples,
# W = 10; the Kolmogorov model W = 5, as models/eval-kolmogorov.sh). Writes
# models/eval/samplers/<stem>/<setup>/<sampler>-<evals>.json; then
# tests/eval/sampler_table.py makes the table and the SVG plots.
# Usage: tests/eval/sampler_sweep.sh <stem> [cases] [samplers] [evals]
#   (defaults: 200 cases, "pc dpm2m dpm2m-sde heun", "8 12 16 24 32 64"; THREADS=2, SETUPS to pick setups,
#   TAG appended to each setup's folder, e.g. TAG=-200cases for the 200-case runs)
set -eu
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
cd "$(dirname "$0")/../.."
stem=$1
cases=${2:-200}
samplers=${3:-pc dpm2m dpm2m-sde heun}
evals=${4:-8 12 16 24 32 64}
model=models/$stem.safetensors
[ -f "$model" ] || { echo "sampler_sweep: $model not found" >&2; exit 2; }

one() { # out params
  [ -f "$1" ] && return 0   # finished before: keep (delete to redo)
  # a cell whose sampler diverges (sbida eval fails: "the sampler diverged") is kept
  # as <cell>.failed with the message, and the sweep goes on
  # shellcheck disable=SC2086
  if "$BUILD/sbida" eval --estimator "$model" --preset "$preset" $geom --operator "$op" \
    --noise-std "$noise" --cases "$cases" --samples 64 --seed 2026 --threads "$THREADS" \
    --params "$2" $targs --json "$1.tmp" --quiet 2> "$1.err"; then
    mv "$1.tmp" "$1"
    rm -f "$1.err" "${1%.json}.failed"
  else
    mv "$1.err" "${1%.json}.failed"
    rm -f "$1.tmp"
    echo "sampler_sweep: ${1%.json} failed: $(tail -n 1 "${1%.json}.failed")" >&2
  fi
}

run_setup() { # name operator noise [time-index]
  name=$1 op=$2 noise=$3 t=${4:-}
  case " ${SETUPS:-$name} " in *" $name "*) ;; *) return 0 ;; esac
  out=models/eval/samplers/$stem/$name${TAG:-}
  mkdir -p "$out"
  targs=""
  [ -n "$t" ] && targs="--time-index $t"
  one "$out/default-$((2 * default_steps)).json" "{\"sampler\":\"pc\",\"steps\":$default_steps}"
  for s in $samplers; do
    for e in $evals; do
      if [ "$s" = pc ]; then p="{\"sampler\":\"pc\",\"steps\":$((e / 2)),\"corrections\":1}"
      else p="{\"sampler\":\"$s\",\"steps\":$e}"; fi
      one "$out/$s-$e.json" "$p"
    done
  done
  # composed score: the deterministic dpm2m also with gamma 0.1 (test_samplers.c: with
  # the SDA likelihood approximation the guided ODE needs a larger gamma than pc);
  # the local score's guidance is the same
  case $stem in *composed*|*local-score*)
    for e in $evals; do
      if [ "$e" -le 32 ]; then one "$out/dpm2m_g0.1-$e.json" "{\"sampler\":\"dpm2m\",\"steps\":$e,\"gamma\":0.1}"; fi
    done ;;
  esac
}

case $stem in
  l96-sakov-*) preset=l96-sakov geom="--N 40 --window 10" default_steps=64 ;;   # the local score (any N) at N = 40, as models/evaluate.sh
  l96-thesis-n32-*) preset=l96-thesis geom="--N 32 --window 10" default_steps=64 ;;
  kolmogorov-w5-*) preset=kolmogorov geom="--window 5" default_steps=32 ;;   # its default: pc 32
  *) echo "sampler_sweep: unknown model stem $stem" >&2; exit 2 ;;
esac
case $stem in
  l96-sakov-w10-posterior-score)
    run_setup identity-s1 '{"type":"identity"}' 1.0 ;;
  l96-sakov-w10-composed-score|l96-sakov-w10-composed-score-*)   # also -cycle, -w32
    run_setup half-s1.5 '{"type":"subsample","stride":2}' 1.5
    run_setup identity-s1 '{"type":"identity"}' 1.0 ;;
  l96-sakov-n32-k3-local-score|l96-sakov-n32-k3-local-score-*|l96-sakov-w10-local-score-*)   # at N = 40
    run_setup identity-s1 '{"type":"identity"}' 1.0
    run_setup half-s1.5 '{"type":"subsample","stride":2}' 1.5 ;;
  kolmogorov-w5-composed-score)
    run_setup coarsen4-s0.1 '{"type":"coarsen","factor":4}' 0.1 ;;
  l96-thesis-n32-w10-*)
    run_setup kernel-s0.5-t10 '{"type":"kernel_stations","seed":0}' 0.5 10
    run_setup kernel-s0.5-t1000 '{"type":"kernel_stations","seed":0}' 0.5 1000 ;;
esac
