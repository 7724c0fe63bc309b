#!/bin/sh
# Evaluates the shipped 2D composed-score model (kolmogorov, W = 5, U-Net) next to the
# LETKF (its 2D defaults: radius 8, inflation 1.1, docs/kolmogorov.md) and the global
# ETKF on the same seeded cases, filtered (the window's last state), 64 samples:
#   coarsen4-s0.1   coarsen 4 (128 block means of u and v), sigma = 0.1
#   random5-s0.1    5% random stations (102 obs), sigma = 0.1
#   coarsen8-s0.1   coarsen 8 (32 block means), sigma = 0.1: sparser
#   coarsen4-s0.5   coarsen 4, sigma = 0.5: noisier
# Writes models/eval/<stem>/<setup>/{<estimator>.json, compare.md} and, for the model,
# vorticity pictures of the first PLOT_CASES cases (truth, mean, std, error) into PLOTS_DIR.
# Usage: models/eval-kolmogorov.sh [cases] [seed]   (defaults: 200 cases, the issue's, seed
# 2026; THREADS=2; SETUPS="coarsen4-s0.1 random5-s0.1"; PARTS="baselines model";
# MODEL_PARAMS='{"steps": 16}' overrides the model's sampler; SBIDA_POOL_DIR caches the
# baselines' climatology pool). Case c depends only on the problem flags, the seed and c.
set -eu
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
cd "$(dirname "$0")/.."
stem=kolmogorov-w5-composed-score
cases=${1:-200}
seed=${2:-2026}
SETUPS=${SETUPS:-"coarsen4-s0.1"}
PARTS=${PARTS:-"baselines model"}
MODEL_PARAMS=${MODEL_PARAMS:-'{}'}
PLOTS_DIR=${PLOTS_DIR:-docs/img/kolmogorov-composed}
PLOT_CASES=${PLOT_CASES:-2}
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
model=models/$stem.safetensors
! has model || [ -f "$model" ] || { echo "eval-kolmogorov: $model not found" >&2; exit 2; }

for setup in $SETUPS; do
  case $setup in
    coarsen4-s0.1) op='{"type":"coarsen","factor":4}' noise=0.1 ;;
    random5-s0.1) op='{"type":"random_stations","fraction":0.05,"seed":0}' noise=0.1 ;;
    coarsen8-s0.1) op='{"type":"coarsen","factor":8}' noise=0.1 ;;
    coarsen4-s0.5) op='{"type":"coarsen","factor":4}' noise=0.5 ;;
    *) echo "eval-kolmogorov: unknown setup $setup" >&2; exit 2 ;;
  esac
  out=models/eval/$stem/$setup
  mkdir -p "$out"
  common="--preset kolmogorov --window 5 --noise-std $noise --cases $cases --samples 64 --seed $seed --threads $THREADS --quiet"
  if has baselines; then
    for est in letkf etkf; do
      # shellcheck disable=SC2086
      "$BUILD/sbida" eval --estimator $est --operator "$op" $common --json "$out/$est.json"
    done
  fi
  if has model; then
    plots=""
    [ "$setup" = coarsen4-s0.1 ] && plots="--plots-dir $PLOTS_DIR --plot-cases $PLOT_CASES"
    # shellcheck disable=SC2086
    "$BUILD/sbida" eval --estimator "$model" --operator "$op" $common --params "$MODEL_PARAMS" $plots \
      --json "$out/$stem.json"
  fi
  "$BUILD/sbida" compare "$out"/*.json > "$out/compare.md"
  cat "$out/compare.md"
done
