#!/usr/bin/python3
"""Writes tests/data/reference/kolmogorov_numpy.npy with the independent numpy solver in
tests/data/kolmogorov_ref.py: float64 [3 cases][3 times][2][32][32], the coarse state at
0, 1 and 3 intervals of 0.2 (n = 64 solver grid, 10 IF-RK4 steps per interval, no CFL
adaption, nu 1e-3, drag 0.1, forcing sin(4y)). Cases: a random smooth field (not spun up);
a state after 30 intervals of spin-up; the same with a mean velocity (0.3, -0.2) added.
Used by tests/unit/test_kolmogorov.c. Run: /usr/bin/python3 tests/data/make_kolmogorov_fixture.py"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kolmogorov_ref import Grid, random_field  # noqa: E402

NSUB = 10
g = Grid(64)
wh = random_field(g, 2, seed=2026)
x = g.restrict(wh, np.zeros(2), np.zeros(2))
spun = g.advance(x[1:2], 30, NSUB)[0]
x0 = np.stack([x[0], spun, spun + np.array([0.3, -0.2])[:, None, None]])
x1 = g.advance(x0, 1, NSUB)
x3 = g.advance(x1, 2, NSUB)
out = np.stack([x0, x1, x3], axis=1)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "kolmogorov_numpy.npy")
np.save(path, out)
print("wrote", path, out.shape, "state rms %.3f" % np.sqrt((out ** 2).mean()))
