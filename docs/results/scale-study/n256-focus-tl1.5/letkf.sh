#!/bin/sh
# the tuned LETKF (radius 16, inflation 1.02, 64 members) on the N = 256 cases of seeds 2028-2033,
# the same cases as n256.sh's (seeds 2026 and 2027 are in ../n256-pc64-48/letkf-*.json).
# Usage: letkf.sh  (env B= the sbida binary, default build/sbida)
set -u
cd "$(dirname "$0")/../../../.."
B=${B:-build/sbida}
O=docs/results/scale-study/n256-focus-tl1.5
for SC in 2028:24 2029:24 2030:24 2031:24 2032:24 2033:32; do  # 2032 also in two parts, below
  S=${SC%:*}; C=${SC#*:}
  $B eval --estimator letkf --preset l96-sakov --N 256 --window 10 --operator '{"type":"identity"}' --noise-std 1 --cases $C --samples 64 --seed $S --threads 1 --params '{"inflation":1.02,"radius":16}' --json $O/letkf-$S.json --quiet
done
# seed 2032 without its case 6 (which the -focus setting diverges on): the parts pool.sh pools
for R in 0:6 7:17; do
  F=${R%:*}; C=${R#*:}
  $B eval --estimator letkf --preset l96-sakov --N 256 --window 10 --operator '{"type":"identity"}' --noise-std 1 --cases $C --first-case $F --samples 64 --seed 2032 --threads 1 --params '{"inflation":1.02,"radius":16}' --json $O/letkf-2032-from$F.json --quiet
done
