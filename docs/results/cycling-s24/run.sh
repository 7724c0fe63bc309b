#!/bin/sh
# Session 24: the pc corrector count (and the sample count) in the learned cycle, against the
# cycled ETKF/LETKF on the same truth times (seed 1). Usage: docs/results/cycling-s24/run.sh OUT
#   40 tuning cycles (t = 39..78):   tune-<tag>.json/.jsonl  (every node, 32 samples)
#   300 counted cycles (t = 39..338): L-<setup>-<tag>.json/.jsonl, and the classical rows
#   E-<setup>-<members>-<inflation>, LE-<setup>-<radius>-<inflation> (W = 1, the same truth times)
# then: python3 docs/results/cycling-s24/pair.py BASE.jsonl[.gz] OTHER.jsonl[.gz] ... (paired differences; the jsonl files here are gzipped)
set -eu
S=${SBIDA:-build/sbida}
M=models/l96-sakov-w10-composed-score-cycle.safetensors
O=${1:?output directory}; mkdir -p "$O"
ID='{"type":"identity"}' HALF='{"type":"subsample","stride":2}' AT='{"type":"arctan","of":{"type":"identity"}}'
FULLP='"dynamics_q":0.0001,"warm_start":0.4,"steps":32'
learned() { # tag op noise samples cycles params
  [ -f "$O/$1.json" ] || $S cycle --estimator $M --operator "$2" --noise-std "$3" --samples "$4" \
    --cycles "$5" --spinup 30 --seed 1 --threads 1 --params "$6" --window-stats --jsonl "$O/$1.jsonl" --json "$O/$1.json" > "$O/$1.out" 2>&1
}
classical() { # tag op noise members params [estimator args]
  tag=$1 op=$2 noise=$3 m=$4 p=$5; shift 5
  $S cycle "$@" --window 1 --samples "$m" --cycles 339 --spinup 39 --seed 1 --operator "$op" \
    --noise-std "$noise" --params "$p" --jsonl "$O/$tag.jsonl" --json "$O/$tag.json" > /dev/null 2>&1
}
# 40 tuning cycles, every node
learned tune-base "$ID" 1 32 70 "{$FULLP}"
learned tune-corr2 "$ID" 1 32 70 "{$FULLP,\"corrections\":2}"
learned tune-corr3 "$ID" 1 32 70 "{$FULLP,\"corrections\":3}"
learned tune-s16c2 "$ID" 1 32 70 '{"dynamics_q":0.0001,"warm_start":0.4,"steps":16,"corrections":2}'
learned tune-s16c4 "$ID" 1 32 70 '{"dynamics_q":0.0001,"warm_start":0.4,"steps":16,"corrections":4}'
learned tune-corr2w05 "$ID" 1 32 70 '{"dynamics_q":0.0001,"warm_start":0.5,"steps":32,"corrections":2}'
learned tune-taul05 "$ID" 1 32 70 "{$FULLP,\"tau_l\":0.5}"
learned tune-taul2 "$ID" 1 32 70 "{$FULLP,\"tau_l\":2}"
# 300 counted cycles
learned L-full-corr2 "$ID" 1 32 330 "{$FULLP,\"corrections\":2}"
learned L-at-base "$AT" 0.5 32 330 "{$FULLP}"
learned L-at-corr2 "$AT" 0.5 32 330 "{$FULLP,\"corrections\":2}"
learned L-at-64c2 "$AT" 0.5 64 330 "{$FULLP,\"corrections\":2}"
learned L-half-64c2 "$HALF" 1.5 64 330 '{"gamma":0.1,"warm_start":0.4,"steps":32,"corrections":2}'
for i in 1.01 1.02 1.03; do
  classical "E-full-40-$i" "$ID" 1 40 "{\"inflation\":$i}" --estimator l96-sakov-etkf
  classical "E-at-40-$i" "$AT" 0.5 40 "{\"inflation\":$i}" --estimator l96-sakov-etkf
  classical "E-at-64-$i" "$AT" 0.5 64 "{\"inflation\":$i}" --estimator l96-sakov-etkf
  classical "E-half-40-$i" "$HALF" 1.5 40 "{\"inflation\":$i}" --estimator l96-sakov-etkf
  classical "E-half-64-$i" "$HALF" 1.5 64 "{\"inflation\":$i}" --estimator l96-sakov-etkf
done
for r in 20 40; do
  classical "LE-full-$r-1.01" "$ID" 1 40 "{\"radius\":$r,\"inflation\":1.01}" --estimator letkf --preset l96-sakov
  classical "LE-at-$r-1.01" "$AT" 0.5 40 "{\"radius\":$r,\"inflation\":1.01}" --estimator letkf --preset l96-sakov
  classical "LE-half-$r-1.02" "$HALF" 1.5 40 "{\"radius\":$r,\"inflation\":1.02}" --estimator letkf --preset l96-sakov
done
