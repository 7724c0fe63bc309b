#!/bin/sh
# Benchmarks (make bench): the C nn engine vs PyTorch on the L96 score network.
# Prints one JSON object per benchmark. Run from the repository root.
set -eu
BUILD=${BUILD:-build}
"$BUILD"/sbida bench nn --json
