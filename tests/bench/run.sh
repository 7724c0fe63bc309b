#!/bin/sh
# Benchmarks (make bench): the C nn engine vs PyTorch on the L96 score network,
# then the daemon (tests/bench/daemon.sh: wrk on /v1/health/live, synchronous
# assimilation end to end vs in-process).
# Prints one JSON object per benchmark. Run from the repository root.
set -eu
BUILD=${BUILD:-build}
"$BUILD"/sbida bench nn --json
BUILD="$BUILD" tests/bench/daemon.sh
