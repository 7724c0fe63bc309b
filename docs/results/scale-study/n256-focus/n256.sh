#!/bin/sh
# local score stage 5 at N = 256, every node sigma 1, W = 10, with the dynamics term; the session-15 cases
set -u
cd "$(dirname "$0")/../../../.."
B=build/sbida
M=${M:-models/l96-sakov-n32-k3-local-score-focus.safetensors}
O=docs/results/scale-study/n256-focus; mkdir -p $O
S=$1
$B eval --estimator $M --preset l96-sakov --N 256 --window 10 --operator '{"type":"identity"}' --noise-std 1 --cases 24 --samples 64 --seed $S --threads 1 --params '{"dynamics_q":0.0001}' --json $O/local5-dq-$S.json --quiet
