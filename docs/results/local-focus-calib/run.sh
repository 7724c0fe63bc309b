#!/bin/sh
# Calibration of the -focus local score across operators and noise levels (session 22): l96-sakov
# N = 40, W = 10, seed 2026, 24 cases, 64 samples, one thread; each cell with the setting
# docs/local-score.md recommends for it (dense: {"dynamics_q":0.0001,"tau_l":1.5}; sparse: the
# file's defaults {}), and next to it the LETKF and ETKF tuned on the same cases (radius 8/12/16/24 x
# inflation 1.02/1.04/1.08; the best RMSE; this favours them). Usage: run.sh CELL... (names below;
# env B= the sbida binary). Table: python3 docs/results/local-focus-calib/table.py
set -u
cd "$(dirname "$0")/../../.."
B=${B:-build/sbida}
M=models/l96-sakov-n32-k3-local-score-focus.safetensors
O=docs/results/local-focus-calib
DENSE='{"dynamics_q":0.0001,"tau_l":1.5}'
for CELL in "$@"; do
  case $CELL in
    id-s0.3) OP='{"type":"identity"}'; S=0.3; P=$DENSE ;;
    id-s0.3-default) OP='{"type":"identity"}'; S=0.3; P='{}' ;;
    id-s2) OP='{"type":"identity"}'; S=2; P=$DENSE ;;
    half-s0.5) OP='{"type":"subsample","stride":2}'; S=0.5; P='{}' ;;
    quarter-s1) OP='{"type":"subsample","stride":4}'; S=1; P='{}' ;;
    kernel-s0.5) OP='{"type":"kernel_stations"}'; S=0.5; P='{}' ;;
    half-s1.5-dense) OP='{"type":"subsample","stride":2}'; S=1.5; P=$DENSE ;;
    *) echo "unknown cell $CELL" >&2; exit 2 ;;
  esac
  ev() { # estimator params out
    $B eval --estimator "$1" --preset l96-sakov --N 40 --window 10 --operator "$OP" --noise-std $S --cases 24 --samples 64 --seed 2026 --threads 1 --params "$2" --json "$3" --quiet
  }
  for R in 8 12 16 24; do for I in 1.02 1.04 1.08; do
    ev letkf "{\"inflation\":$I,\"radius\":$R}" $O/tune/$CELL-letkf-r$R-i$I.json
  done; done
  for I in 1.02 1.04 1.08; do ev etkf "{\"inflation\":$I}" $O/tune/$CELL-etkf-i$I.json; done
  ev $M "$P" $O/$CELL-focus.json
done
# (a cell whose baselines were already run for another setting of the same operator and noise, e.g.
# id-s0.3-default after id-s0.3, runs them again: they are cheap and the same cases)
