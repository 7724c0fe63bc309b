#!/bin/sh
# local score at N = 256, every node sigma 1, W = 10, with the dynamics term; the session-15 cases
set -u
B=/work/s17/bin/sbida-new
M=/work/main/models/l96-sakov-n32-k3-local-score.safetensors
O=/work/s17/n256; mkdir -p $O
cd /work/main
for S in ${SEEDS:-2026}; do
$B eval --estimator $M --preset l96-sakov --N 256 --window 10 --operator '{"type":"identity"}' --noise-std 1 --cases 24 --samples 64 --seed $S --threads 1 --params '{"dynamics_q":0.0001}' --json $O/local-dq-$S.json --quiet
done
