#!/usr/bin/python3
"""Accuracy of the Kolmogorov-flow Markov chain (the scheme of core/sim/kolmogorov.c, in the numpy
implementation tests/data/kolmogorov_ref.py) against a 256^2 solver run continuously.

  /usr/bin/python3 tests/eval/kolmogorov_accuracy.py     (about 3 minutes on one core)

Reference: two random fields spun up 20 time units on 64^2, interpolated spectrally to 256^2 and
run 2 more time units there (dt 0.005), then 3 intervals of 0.2 apart. From each reference
state w: x = restrict(w) (the 2 x 32 x 32 state); truth = restrict(w after 0.2 on 256^2,
continuous); each chain variant advances x by one interval (prolong, solve, restrict). Prints
the RMS error over all values against the truth and against the 256^2 chain, next to the RMS
state and the RMS change over the interval."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
from kolmogorov_ref import Grid, random_field  # noqa: E402


def resample(wh, n_from, n_to):
    out = np.zeros((wh.shape[0], n_to, n_to // 2 + 1), complex)
    K = min(n_from, n_to) // 2
    out[:, :K, :K] = wh[:, :K, :K]
    out[:, n_to - K + 1:, :K] = wh[:, n_from - K + 1:, :K]
    return out * (n_to * n_to / (n_from * n_from))


def main():
    B = 2
    g64, g256 = Grid(64), Grid(256)
    wh = random_field(g64, B, 7)
    U = V = np.zeros(B)
    for _ in range(1000):
        wh, U, V = g64.step(wh, U, V, 0.02)
    wh = resample(wh, 64, 256) * g256.mask
    for _ in range(400):
        wh, U, V = g256.step(wh, U, V, 0.005)
    variants = [("chain 256^2, 40 steps", Grid(256), 40), ("chain 256^2, phase only", Grid(256, deconvolve=False), 40),
                ("chain 128^2, 20 steps", Grid(128), 20), ("chain 128^2, 40 steps", Grid(128), 40),
                ("chain 64^2, 5 steps", Grid(64), 5), ("chain 64^2, 10 steps", Grid(64), 10),
                ("chain 64^2, 40 steps", Grid(64), 40), ("chain 64^2, phase only", Grid(64, deconvolve=False), 10)]
    res = {name: [] for name, _, _ in variants}
    truths, xs = [], []
    for rep in range(3):
        x = g256.restrict(wh, U, V)
        w1, U1, V1 = wh, U, V
        for _ in range(40):
            w1, U1, V1 = g256.step(w1, U1, V1, 0.005)
        truths.append(g256.restrict(w1, U1, V1))
        xs.append(x)
        for name, g, ns in variants:
            res[name].append(g.advance(x, 1, ns))
        wh, U, V = w1, U1, V1
        for _ in range(40):
            wh, U, V = g256.step(wh, U, V, 0.005)

    def rms(a):
        return np.sqrt((np.asarray(a) ** 2).mean())

    truths, xs = np.array(truths), np.array(xs)
    print("RMS state %.3f, RMS change over one interval %.3f (%d states)" % (rms(xs), rms(truths - xs), 3 * B))
    ref = np.array(res["chain 256^2, 40 steps"])
    for name, _, _ in variants:
        y = np.array(res[name])
        print("%-26s error vs continuous 256^2 %.2e, vs the 256^2 chain %.2e" % (name, rms(y - truths), rms(y - ref)))


if __name__ == "__main__":
    main()
