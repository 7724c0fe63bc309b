#!/bin/sh
# the -focus model with the N = 256 setting ({"dynamics_q":0.0001,"tau_l":1.5}) on the scale study's
# ladder cells and the two N = 40 cells (seed 2026, pc 64, 64 samples, the cases of ladder-focus/ and
# models/eval/l96-sakov-n32-k3-local-score-focus/). Usage: ladder.sh QUEUE  (a or b: two halves
# of about equal cost, one per core)
set -u
cd "$(dirname "$0")/../../../.."
B=${B:-build/sbida}
M=models/l96-sakov-n32-k3-local-score-focus.safetensors
P='{"dynamics_q":0.0001,"tau_l":1.5}'
O=docs/results/scale-study/ladder-focus-tl1.5; mkdir -p $O
ev() { # out N cases operator noise
  $B eval --estimator $M --preset l96-sakov --N $2 --window 10 --operator "$4" --noise-std $5 --cases $3 --samples 64 --seed 2026 --threads 1 --params "$P" --json $O/$1.json --quiet
}
ID='{"type":"identity"}'
case $1 in
a) ev n40-identity-s1 40 24 "$ID" 1; ev full-8 8 16 "$ID" 1; ev full-16 16 16 "$ID" 1; ev full-32 32 8 "$ID" 1; ev full-128 128 4 "$ID" 1 ;;
b) ev n40-half-s1.5 40 24 '{"type":"subsample","stride":2}' 1.5; ev full-64 64 16 "$ID" 1 ;;
esac
