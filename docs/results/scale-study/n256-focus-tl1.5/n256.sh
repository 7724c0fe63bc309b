#!/bin/sh
# the -focus model at N = 256, every node sigma 1, W = 10, dynamics term and a longer Langevin step
# (tau_l 1.5, session 19); the session-15 cases (seeds 2026 and 2027, 24 each), and in session 20
# seeds 2028-2032 (24 each) and 2033 (32 cases: n256.sh 2033 32), 200 cases in all.
# Usage: n256.sh SEED [CASES]  (CASES 24 by default)
set -u
cd "$(dirname "$0")/../../../.."
B=${B:-build/sbida}
M=${M:-models/l96-sakov-n32-k3-local-score-focus.safetensors}
O=docs/results/scale-study/n256-focus-tl1.5; mkdir -p $O
S=$1
C=${2:-24}
$B eval --estimator $M --preset l96-sakov --N 256 --window 10 --operator '{"type":"identity"}' --noise-std 1 --cases $C --samples 64 --seed $S --threads 1 --params '{"dynamics_q":0.0001,"tau_l":1.5}' --json $O/local5-dq-tl1.5-$S.json --quiet
