#!/bin/sh
# Benchmarks (make bench): the C nn engine vs PyTorch on the L96 score network,
# the Kolmogorov-flow solver vs numpy (same scheme, grid and states; 16 states,
# 10 intervals), then the daemon (tests/bench/daemon.sh: wrk on /v1/health/live, synchronous
# assimilation end to end vs in-process), replicas on PostgreSQL (tests/bench/replicas.py) and
# dynamic batching (tests/bench/batching.py: 1, 4, 16 client loops, batching off vs on).
# Prints one JSON object per benchmark. Run from the repository root.
set -eu
BUILD=${BUILD:-build}
"$BUILD"/sbida bench nn --json
"$BUILD"/sbida bench kolmogorov --trajectories 16 --intervals 10 --json
# one request's sampling cost (64 samples of one window) for every shipped model and the ETKF
for m in models/*.safetensors; do
  [ -e "$m" ] || continue
  "$BUILD"/sbida bench sample --estimator "$m" --samples 64 --threads 1 --json
done
"$BUILD"/sbida bench sample --estimator etkf --samples 64 --threads 1 --json
BUILD="$BUILD" tests/bench/daemon.sh
# jobs per second through 1, 2, 3 replicas on one PostgreSQL (and SQLite for reference)
BUILD="$BUILD" /usr/bin/python3 tests/bench/replicas.py
# dynamic batching: jobs per second of 1, 4, 16 client loops on the posterior score, batching off / on / packed
BUILD="$BUILD" /usr/bin/python3 tests/bench/batching.py
