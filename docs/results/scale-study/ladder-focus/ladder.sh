#!/bin/sh
# the focus model on the scale study's ladder cells (every node sigma 1, W = 10, seed 2026, pc 64)
set -u
cd "$(dirname "$0")/../../../.."
B=build/sbida
M=models/l96-sakov-n32-k3-local-score-focus.safetensors
O=docs/results/scale-study/ladder-focus; mkdir -p $O
for nc in 8:16 16:16 32:8 64:16 128:4; do n=${nc%:*}; c=${nc#*:}
$B eval --estimator $M --preset l96-sakov --N $n --window 10 --operator '{"type":"identity"}' --noise-std 1 --cases $c --samples 64 --seed 2026 --threads 1 --params '{}' --json $O/full-$n.json --quiet
done
