#!/bin/sh
# 200 cases per ladder cell (issue #13's count): the -focus local score with the N = 256 setting
# ({"dynamics_q":0.0001,"tau_l":1.5}; a divergent case runs again with dynamics_gamma x3, session 21),
# the tuned LETKF (inflation 1.02, radius 3/6/12/16/16/16 for N = 8/16/32/64/128/256, the
# ladder's) and the ETKF on the same cases: l96-sakov, every node sigma 1, W = 10, seed 2026,
# 64 samples, pc 64. Usage: run.sh N [CASES [FIRST]]  (CASES 200 by default; FIRST: cases
# FIRST..FIRST+CASES-1 of the seed's set, files *-N-fromFIRST.json, which table.py pools; env B=
# the sbida binary)
set -u
cd "$(dirname "$0")/../../../.."
B=${B:-build/sbida}
M=models/l96-sakov-n32-k3-local-score-focus.safetensors
O=docs/results/scale-study/ladder-200
N=$1
C=${2:-200}
F=${3:-}
case $N in 8) R=3 ;; 16) R=6 ;; 32) R=12 ;; *) R=16 ;; esac
ev() { # estimator params out
  $B eval --estimator "$1" --preset l96-sakov --N $N --window 10 --operator '{"type":"identity"}' --noise-std 1 --cases $C ${F:+--first-case $F} --samples 64 --seed 2026 --threads 1 --params "$2" --json $O/$3-$N${F:+-from$F}.json --quiet
}
ev letkf "{\"inflation\":1.02,\"radius\":$R}" letkf
ev etkf '{"inflation":1.02}' etkf
ev $M '{"dynamics_q":0.0001,"tau_l":1.5}' focus
