#!/bin/sh
# W = 50, every second node sigma = 1.5, N = 40: the -cycle composed prior as a local score
# (models/l96-sakov-w10-local-score-cycle) answering the window in chunks of 10, with the streams'
# every-second-node params, on the 200 cases of the composed score's rows (seeds 2026 and 2027,
# 100 cases each), so the tuned LETKF and windowed ETKF files of those seeds (w50-letkf12-s*-100,
# w50-etkf-s*-100) are its baselines; then pools the seeds with tests/eval/combine_evals.py.
# Usage: run-local-cycle.sh [SEED]  (one seed; without, both one after the other, then the pool;
# env B= the sbida binary)
set -eu
cd "$(dirname "$0")/../../.."
B=${B:-build/sbida}
O=docs/results/chunked
one() {
  $B eval --estimator models/l96-sakov-w10-local-score-cycle.safetensors --preset l96-sakov --N 40 --window 50 \
    --operator '{"type":"subsample","stride":2}' --noise-std 1.5 --samples 64 --threads 1 --seed $1 --cases 100 \
    --params '{"chunk":10,"gamma":0.1,"warm_start":0.4,"steps":32}' --json $O/w50-localcycle-c10-s$1-100.json --quiet
}
if [ $# -ge 1 ]; then one $1; exit; fi
one 2026
one 2027
python3 tests/eval/combine_evals.py $O/w50-localcycle-c10-s2026-100.json $O/w50-localcycle-c10-s2027-100.json > $O/w50-localcycle-200.json
