#!/bin/sh
# The width-32 window prior (models/l96-sakov-w10-composed-score-w32) on the composed score's 200
# windowed cases (models/evaluate.sh's flags: seed 2026, 64 samples, l96-sakov N = 40, W = 10), at the
# sampler settings given, one thread per evaluation; files SETUP-TAG.json in this folder.
# Usage: run.sh SETUP TAG PARAMS   (SETUP half: every second node sigma 1.5; full: every node sigma 1;
# env B= the sbida binary)
#        OLD=DIR run.sh bench   (the cost against today's default: DIR a checkout of 9c5c888, the build
#        before the samplers landed, built with make; its sbida with the composed model file as shipped
#        then, interleaved with this build's width-32 model at pc 48, 56 and 64, 3 rounds, 2 threads,
#        every second node sigma 1.5; prints the lines of bench.txt)
set -eu
cd "$(dirname "$0")/../../.."
B=${B:-build/sbida}
O=docs/results/composed-w32
M=models/l96-sakov-w10-composed-score-w32.safetensors
if [ "$1" = bench ]; then
  git -C "$OLD" show HEAD:models/l96-sakov-w10-composed-score.safetensors > "$OLD/today.safetensors"
  for r in 1 2 3; do
    "$OLD/build/sbida" bench sample --estimator "$OLD/today.safetensors" --operator '{"type":"subsample","stride":2}' \
      --noise-std 1.5 --samples 64 --threads 2 --reps 1 | tail -1 | sed 's/^/old build, the composed model as shipped then, its defaults: /'
    for P in '{"steps":48}' '{"steps":56}' '{"steps":64}'; do
      $B bench sample --estimator $M --operator '{"type":"subsample","stride":2}' --noise-std 1.5 --samples 64 \
        --threads 2 --reps 1 --params "$P" | tail -1 | sed 's/^/this build, width 32: /'
    done
  done
  exit
fi
if [ "$1" = half ]; then OP='{"type":"subsample","stride":2}'; S=1.5; else OP='{"type":"identity"}'; S=1; fi
$B eval --estimator $M --preset l96-sakov --N 40 --window 10 --operator "$OP" --noise-std $S --cases 200 --samples 64 \
  --seed 2026 --threads 1 --params "$3" --json $O/$1-$2.json --quiet
