"""numpy side of `sbida bench kolmogorov`: advances the states in IN (.npy [B, 2, 32, 32])
by T intervals with the numpy solver of tests/data/kolmogorov_ref.py (64^2 grid, 10 IF-RK4
steps per interval, the scheme of core/sim/kolmogorov.c), writes them to OUT and prints one
JSON line {"numpy_s": seconds, "numpy_version": ...}.
Usage: /usr/bin/python3 tests/bench/kolmogorov_numpy.py IN OUT T"""
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
from kolmogorov_ref import Grid  # noqa: E402


def main():
    x = np.load(sys.argv[1])
    T = int(sys.argv[3])
    g = Grid(64)
    g.advance(x[:1], 1, 1)  # warm-up
    t0 = time.perf_counter()
    y = g.advance(x, T, 10)
    dt = time.perf_counter() - t0
    np.save(sys.argv[2], y)
    print(json.dumps({"numpy_s": dt, "numpy_version": np.__version__}))


if __name__ == "__main__":
    main()
