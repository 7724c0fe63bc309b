#!/usr/bin/python3
"""Statistics of Kolmogorov-flow trajectories written by `sbida simulate` (.npy [B, T, 2, 32, 32]).

  /usr/bin/python3 tests/eval/kolmogorov_stats.py FILE.npy [--from T0] [--block K]

Prints, per block of K time indices, the ensemble means of the energy E = <u^2 + v^2>/2 and of
the enstrophy Z = <omega^2>/2 of the 32 x 32 state (omega by spectral differentiation of the
coarse velocity, Nyquist modes dropped), then for t >= T0: the mean and spread of E and Z, and
the isotropic energy spectrum E(k) of the state with a least-squares slope of log E against
log k over 4 <= k <= 12, both as stored (block means of the 64^2 solver field, a box filter)
and with the box filter divided out (|G(kx) G(ky)|^2, G the 2-point block-mean transfer)."""
import argparse

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--from", dest="t0", type=int, default=0)
    ap.add_argument("--block", type=int, default=8)
    a = ap.parse_args()
    x = np.load(a.file).astype(np.float64)
    B, T, C, M, _ = x.shape
    assert C == 2
    uh = np.fft.rfft2(x[:, :, 0])
    vh = np.fft.rfft2(x[:, :, 1])
    ky = np.fft.fftfreq(M, 1.0 / M)[:, None]
    kx = np.arange(M // 2 + 1)[None, :]
    keep = (np.abs(kx) < M / 2) & (np.abs(ky) < M / 2)
    wh = np.where(keep, 1j * kx * vh - 1j * ky * uh, 0)
    w = np.fft.irfft2(wh, (M, M))
    E = 0.5 * (x ** 2).sum(axis=2).mean(axis=(2, 3))  # [B, T]
    Z = 0.5 * (w ** 2).mean(axis=(2, 3))
    print("%d trajectories x %d states" % (B, T))
    print("   t        E (mean +- s.e.)      Z (mean +- s.e.)")
    for t in range(0, T, a.block):
        e, z = E[:, t:t + a.block].mean(axis=1), Z[:, t:t + a.block].mean(axis=1)
        print("%4d..%-4d %.4f +- %.4f   %.3f +- %.3f" % (t, min(t + a.block, T) - 1, e.mean(), e.std() / np.sqrt(B),
                                                       z.mean(), z.std() / np.sqrt(B)))
    s = slice(a.t0, T)
    e, z = E[:, s], Z[:, s]
    h = (T - a.t0) // 2
    print("t >= %d: E %.4f (std over states %.4f; first half %.4f, second half %.4f)" %
          (a.t0, e.mean(), e.std(), e[:, :h].mean(), e[:, h:].mean()))
    print("t >= %d: Z %.3f (std over states %.3f; first half %.3f, second half %.3f)" %
          (a.t0, z.mean(), z.std(), z[:, :h].mean(), z[:, h:].mean()))
    # spectrum over t >= t0
    wt = np.where((kx == 0) | (kx == M // 2), 1.0, 2.0)
    dens = 0.5 * wt * (np.abs(uh[:, s]) ** 2 + np.abs(vh[:, s]) ** 2).mean(axis=(0, 1)) / M ** 4
    kk = np.sqrt(kx ** 2 + ky ** 2) * np.ones_like(dens)
    shell = np.rint(kk).astype(int)
    f = 2
    h2 = 2 * np.pi / (f * M)

    def G(k):
        return np.abs(np.mean([np.exp(1j * k * q * h2) for q in range(f)], axis=0))

    filt = (G(kx) * G(ky)) ** 2 * np.ones_like(dens)
    spec = np.bincount(shell.ravel(), (dens * keep).ravel(), M // 2 + 2)[:M // 2 + 1]
    spec_d = np.bincount(shell.ravel(), (dens * keep / filt).ravel(), M // 2 + 2)[:M // 2 + 1]
    ks = np.arange(4, 13)
    slope = np.polyfit(np.log(ks), np.log(spec[ks]), 1)[0]
    slope_d = np.polyfit(np.log(ks), np.log(spec_d[ks]), 1)[0]
    print("spectrum E(k), k = 0..16 (as stored):", " ".join("%.3g" % v for v in spec))
    print("spectrum E(k), box filter divided out:", " ".join("%.3g" % v for v in spec_d))
    print("slope over 4 <= k <= 12: %.2f as stored, %.2f with the box filter divided out" % (slope, slope_d))


if __name__ == "__main__":
    main()
