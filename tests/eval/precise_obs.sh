#!/bin/sh
# Guided L96 models with observations much more precise than the prior
# (docs/samplers.md, "Precise observations: the gamma floor"): sbida eval on the
# first C cases (seed 2026, 64 samples, W = 10) of every node observed with
# sigma 0.1, 0.2, 0.3 and every second node with sigma 0.3 (l96-thesis: its
# kernel stations at t = 10 with sigma 0.1, 0.2, 0.3), each with the model
# file's sampler (gamma_floor 1) and with gamma_floor 0 (SDA's gamma = 0.01 as
# before), plus the ETKF and the LETKF (models/evaluate.sh's identity/half
# tuning, not retuned for these noises). A run that diverges is kept as
# <name>.failed with sbida's message. Writes models/eval/precise/<model>/<setup>/.
# Usage: tests/eval/precise_obs.sh [cases] [models]   (defaults: 8,
#   "l96-sakov-w10-composed-score"; BUILD=build, THREADS=1)
set -eu
BUILD=${BUILD:-build}
THREADS=${THREADS:-1}
cd "$(dirname "$0")/../.."
cases=${1:-8}
models=${2:-l96-sakov-w10-composed-score}

one() { # out estimator geometry op noise params
  [ -f "$1.json" ] || [ -f "$1.failed" ] && return 0
  # shellcheck disable=SC2086
  if "$BUILD/sbida" eval --estimator "$2" $3 --operator "$4" --noise-std "$5" --cases "$cases" --samples 64 \
      --seed 2026 --threads "$THREADS" --params "$6" --json "$1.tmp" --quiet 2> "$1.err"; then
    mv "$1.tmp" "$1.json"; rm -f "$1.err"
  else
    mv "$1.err" "$1.failed"; rm -f "$1.tmp"
  fi
}

for m in $models; do
  case $m in
    l96-sakov-n32-k3-local-score) geom="--N 40" ;;
    l96-sakov-*) geom="--preset l96-sakov --N 40" ;;
    l96-thesis-*) geom="--preset l96-thesis --N 32 --time-index 10" ;;
    *) echo "precise_obs: unknown model $m" >&2; exit 2 ;;
  esac
  setups="identity-s0.1 identity-s0.2 identity-s0.3 half-s0.3"
  case $m in l96-thesis-*) setups="kernel-s0.1 kernel-s0.2 kernel-s0.3" ;; esac
  for setup in $setups; do
    case $setup in
      identity-*) op='{"type":"identity"}' infl=1.02 lp='{"radius": 12, "inflation": 1.0}' ;;
      half-*) op='{"type":"subsample","stride":2}' infl=1.04 lp='{"radius": 8, "inflation": 1.0}' ;;
      kernel-*) op='{"type":"kernel_stations","seed":0}' infl=1.02 lp='{"radius": 8, "inflation": 1.0}' ;;
    esac
    noise=${setup#*-s}
    out=models/eval/precise/$m/$setup
    mkdir -p "$out"
    one "$out/floor" "models/$m.safetensors" "$geom" "$op" "$noise" '{}'
    one "$out/no-floor" "models/$m.safetensors" "$geom" "$op" "$noise" '{"gamma_floor": 0}'
    pre=$(echo "$geom" | sed 's/--time-index [0-9]*//')
    case $m in l96-sakov-n32-k3-local-score) pre="--preset l96-sakov --N 40" ;; esac
    tix=$(echo "$geom" | grep -o -- '--time-index [0-9]*' || true)
    one "$out/etkf" etkf "$pre $tix" "$op" "$noise" "{\"inflation\": $infl}"
    one "$out/letkf" letkf "$pre $tix" "$op" "$noise" "$lp"
  done
done
