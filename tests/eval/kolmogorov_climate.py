#!/usr/bin/python3
"""Climate of the 64^2 solver run continuously (no coarse state in between), to compare with the
Markov chain that sbida's presets are (tests/eval/kolmogorov_stats.py on `sbida simulate` output).

  /usr/bin/python3 tests/eval/kolmogorov_climate.py [B] [T]   (default 8 fields, 400 intervals
                                                                after 64 of spin-up; ~4 min)

Same numpy solver, forcing and initial fields as tests/data/kolmogorov_ref.py (10 IF-RK4 steps
per 0.2); E and Z are computed from the 2 x 32 x 32 block means of each state exactly as
kolmogorov_stats.py does, so the two are directly comparable."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
from kolmogorov_ref import Grid, random_field  # noqa: E402


def coarse_EZ(x):
    M = x.shape[-1]
    uh, vh = np.fft.rfft2(x[:, 0]), np.fft.rfft2(x[:, 1])
    ky = np.fft.fftfreq(M, 1.0 / M)[:, None]
    kx = np.arange(M // 2 + 1)[None, :]
    keep = (np.abs(kx) < M / 2) & (np.abs(ky) < M / 2)
    w = np.fft.irfft2(np.where(keep, 1j * kx * vh - 1j * ky * uh, 0), (M, M))
    return 0.5 * (x ** 2).sum(axis=1).mean(axis=(1, 2)), 0.5 * (w ** 2).mean(axis=(1, 2))


def main():
    B = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    T = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    g = Grid(64)
    wh = random_field(g, B, 11)
    U = V = np.zeros(B)
    Es, Zs = [], []
    for t in range(64 + T):
        for _ in range(10):
            wh, U, V = g.step(wh, U, V, 0.02)
        if t >= 64:
            E, Z = coarse_EZ(g.restrict(wh, U, V))
            Es.append(E)
            Zs.append(Z)
    Es, Zs = np.array(Es), np.array(Zs)
    print("continuous 64^2, %d fields x %d states after 64 intervals: E %.4f (std %.4f), Z %.3f (std %.3f) "
          "[per field E: %s]" % (B, T, Es.mean(), Es.std(), Zs.mean(), Zs.std(),
                                 " ".join("%.3f" % v for v in Es.mean(axis=0))))


if __name__ == "__main__":
    main()
