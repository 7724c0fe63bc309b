#!/bin/sh
# The -cycle composed prior as a local score (models/l96-sakov-w10-local-score-cycle.safetensors, one
# network run per evaluation at W = 10) at N = 256, every node sigma 1, W = 10, 64 samples, on the
# 200 cases of ../n256-focus-tl1.5 (seeds 2026-2032: 24 cases each, 2033: 32), with params P
# (default {"dynamics_q":0.0001,"tau_l":1.75,"steps":24}, session 22's). Usage: run.sh SEED [CASES [P
# [TAG]]] (files TAG-SEED.json, TAG default pc24-tl1.75); pool.sh TAG pools them with the LETKF on
# the same cases. Session 22 ran seeds 2026-2032 this way; seed 2033's case 1 failed after the two
# default retries, so 2033 ran with "dynamics_retries":4 added (the same samples for every case
# that needs at most two retries), in two parts of 16 cases (--first-case 0 and 16, files
# TAG-2033-from0.json and TAG-2033-from16.json). Then pc 22 on all 200 with the retries from the
# start: run.sh SEED CASES '{"dynamics_q":0.0001,"tau_l":1.75,"steps":22,"dynamics_retries":4}' pc22-tl1.75
set -u
cd "$(dirname "$0")/../../../.."
B=${B:-build/sbida}
O=docs/results/scale-study/n256-cycle-local
S=$1
C=${2:-24}
P=${3:-'{"dynamics_q":0.0001,"tau_l":1.75,"steps":24}'}
T=${4:-pc24-tl1.75}
$B eval --estimator models/l96-sakov-w10-local-score-cycle.safetensors --preset l96-sakov --N 256 --window 10 --operator '{"type":"identity"}' --noise-std 1 --cases $C --samples 64 --seed $S --threads 1 --params "$P" --json $O/$T-$S.json --quiet
