#!/bin/sh
# 200 cases per ladder cell (issue #13's count), l96-sakov, W = 10, seed 2026, 64 samples, the
# -focus local score next to the tuned LETKF and the ETKF on the same cases. Two setups (env SETUP):
#  full (default): every node sigma 1; the model with the N = 256 setting
#    ({"dynamics_q":0.0001,"tau_l":1.5}; a divergent case runs again with dynamics_gamma x3,
#    session 21); LETKF inflation 1.02, radius 3/6/12/16/16/16 for N = 8/16/32/64/128/256 (the
#    ladder's); ETKF inflation 1.02; files letkf-N.json, etkf-N.json, focus-N.json.
#  half: every second node sigma 1.5; the model with the file's defaults (pc 64, tau_L 1, no
#    dynamics term: docs/local-score.md's setting where half the nodes are unobserved); LETKF
#    inflation 1.04, radius 3/6/12/12/24/16/12 for N = 8/16/32/40/64/128/256 (the scale study's);
#    ETKF inflation 1.04; files half-*-N.json.
# MODEL=cycle: the -cycle composed prior as a local score (models/l96-sakov-w10-local-score-cycle,
#    one network run per evaluation, session 22) with the fast N = 256 setting
#    {"dynamics_q":0.0001,"tau_l":1.75,"steps":22,"dynamics_retries":4} in both setups; files
#    [half-]cycle-N.json. The baselines run only where their file is missing (the same cases).
# Usage: [SETUP=half] [MODEL=cycle] run.sh N [CASES [FIRST]]  (CASES 200 by default; FIRST: cases
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
if [ "${SETUP:-full}" = half ]; then
  OP='{"type":"subsample","stride":2}'; S=1.5; I=1.04; P='{}'; PRE=half-
  case $N in 8) R=3 ;; 16) R=6 ;; 32|40|256) R=12 ;; 64) R=24 ;; *) R=16 ;; esac
else
  OP='{"type":"identity"}'; S=1; I=1.02; P='{"dynamics_q":0.0001,"tau_l":1.5}'; PRE=
  case $N in 8) R=3 ;; 16) R=6 ;; 32) R=12 ;; *) R=16 ;; esac
fi
ev() { # estimator params out
  $B eval --estimator "$1" --preset l96-sakov --N $N --window 10 --operator "$OP" --noise-std $S --cases $C ${F:+--first-case $F} --samples 64 --seed 2026 --threads 1 --params "$2" --json $O/$PRE$3-$N${F:+-from$F}.json --quiet
}
ME=focus
if [ "${MODEL:-focus}" = cycle ]; then
  M=models/l96-sakov-w10-local-score-cycle.safetensors; ME=cycle
  P='{"dynamics_q":0.0001,"tau_l":1.75,"steps":22,"dynamics_retries":4}'
fi
have() { [ -e $O/$PRE$1-$N${F:+-from$F}.json ]; }
have letkf || ev letkf "{\"inflation\":$I,\"radius\":$R}" letkf
have etkf || ev etkf "{\"inflation\":$I}" etkf
ev $M "$P" $ME
