#!/bin/sh
# The every-second-node cells of the 200-case ladder (issue #13's second setup): the -focus local
# score with the file's defaults (pc 64, tau_L 1, no dynamics term: the setting docs/local-score.md
# recommends where half the nodes are unobserved), the tuned LETKF (inflation 1.04, radius
# 3/6/12/12/24/16/12 for N = 8/16/32/40/64/128/256, the scale study's) and the ETKF on the same cases:
# l96-sakov, every second node sigma 1.5, W = 10, seed 2026, 64 samples.
# Usage: run-half.sh N [CASES [FIRST]]  (files half-*-N[-fromFIRST].json; env B= the sbida binary)
set -u
cd "$(dirname "$0")/../../../.."
B=${B:-build/sbida}
M=models/l96-sakov-n32-k3-local-score-focus.safetensors
O=docs/results/scale-study/ladder-200
N=$1
C=${2:-200}
F=${3:-}
case $N in 8) R=3 ;; 16) R=6 ;; 32|40|256) R=12 ;; 64) R=24 ;; *) R=16 ;; esac
ev() { # estimator params out
  $B eval --estimator "$1" --preset l96-sakov --N $N --window 10 --operator '{"type":"subsample","stride":2}' --noise-std 1.5 --cases $C ${F:+--first-case $F} --samples 64 --seed 2026 --threads 1 --params "$2" --json $O/half-$3-$N${F:+-from$F}.json --quiet
}
ev letkf "{\"inflation\":1.04,\"radius\":$R}" letkf
ev etkf '{"inflation":1.04}' etkf
ev $M '{}' focus
