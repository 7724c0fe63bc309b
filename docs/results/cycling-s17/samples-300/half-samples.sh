#!/bin/sh
# every second node: does the ensemble size (32 vs 64 samples) matter for the -cycle model's cycle? 300 counted cycles
set -u
B=/work/s17/bin/sbida-new
M=/work/main/models/l96-sakov-w10-composed-score-cycle.safetensors
O=/work/s17/halfS; mkdir -p $O
cd /work/main
for S in ${SAMPLES:-64 32}; do
$B cycle --estimator $M --operator '{"type":"subsample","stride":2}' --noise-std 1.5 --samples $S --cycles 330 --spinup 30 --seed 1 --params '{"gamma":0.1,"warm_start":0.4,"steps":32}' --jsonl $O/s$S.jsonl --json $O/s$S.json > $O/s$S.log 2>&1
done
