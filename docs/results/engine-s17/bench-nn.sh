#!/bin/sh
# interleaved old (HEAD e19db30) vs new (021eac5) engine timings, one thread each
cd /work/main
M=/work/main/models
for r in 1 2 3; do
  for b in sbida sbida-new; do
    B=/work/s17/bin/$b
    echo "== $b rep $r $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    $B bench nn --arch resnet1d --no-torch --threads 1 --reps 1 2>&1 | grep -v "^$" | tail -4
    $B bench sample --estimator $M/l96-sakov-w10-composed-score.safetensors --operator '{"type":"subsample","stride":2}' --noise-std 1.5 --samples 64 --reps 1 --threads 1 2>&1 | tail -1
    $B bench sample --estimator $M/l96-sakov-n32-k3-local-score.safetensors --N 40 --window 10 --operator '{"type":"identity"}' --noise-std 1 --samples 64 --reps 1 --threads 1 --params '{"steps":16}' 2>&1 | tail -1
    $B bench sample --estimator $M/l96-sakov-w10-posterior-score.safetensors --samples 64 --reps 1 --threads 1 2>&1 | tail -1
  done
done
