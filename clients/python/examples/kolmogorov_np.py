"""The Kolmogorov flow of sbida's `kolmogorov` presets in numpy, for the twin
experiment of cycle.py (the daemon never sees this truth, only its noisy
observations).

The same scheme as sbida's C solver (docs/kolmogorov.md; an independent numpy
copy is tests/data/kolmogorov_ref.py, which this file condenses): vorticity form
on [0, 2 pi)^2, nu = 1e-3, drag 0.1, forcing sin(4 y) in the x-momentum equation,
64^2 pseudo-spectral grid, 2/3 dealiasing, Lawson IF-RK4; the state is the block-
mean velocity [2, 32, 32] (u, v), 0.2 time units apart. Its random initial fields
come from numpy's generator, not sbida's Philox streams, so trajectories differ
from `sbida simulate` but follow the same dynamics and climate.
"""
import numpy as np

NU, ALPHA, KF, AMP, N, M = 1e-3, 0.1, 4, 1.0, 64, 32


class Flow:
    def __init__(self):
        ky = np.fft.fftfreq(N, 1.0 / N)
        kx = np.arange(N // 2 + 1, dtype=float)
        self.KX, self.KY = np.meshgrid(kx, ky)
        K2 = self.KX ** 2 + self.KY ** 2
        self.K2inv = np.where(K2 > 0, 1.0 / np.where(K2 > 0, K2, 1.0), 0.0)
        self.mask = (np.abs(self.KX) < N / 3.0) & (np.abs(self.KY) < N / 3.0)
        self.L = -NU * K2 - ALPHA
        self.F = np.zeros((N, N // 2 + 1), dtype=complex)
        self.F[KF, 0] = self.F[N - KF, 0] = -AMP * KF * N * N / 2  # curl of (A sin(kf y), 0)
        kyc = np.fft.fftfreq(M, 1.0 / M)
        kxc = np.arange(M // 2 + 1, dtype=float)
        self.KXc, self.KYc = np.meshgrid(kxc, kyc)
        f, h = N // M, 2 * np.pi / N
        G = lambda k: np.mean([np.exp(1j * k * m * h) for m in range(f)], axis=0)  # noqa: E731
        self.g = G(self.KXc) * G(self.KYc)  # block-mean transfer function
        self.keep = (np.abs(self.KXc) < M / 2) & (np.abs(self.KYc) < M / 2)
        self.iy = np.where(self.KYc >= 0, self.KYc, self.KYc + N).astype(int)
        self.ix = self.KXc.astype(int)

    def velocity(self, wh, U, V):
        psi = wh * self.K2inv
        s = (N, N)
        return np.fft.irfft2(1j * self.KY * psi, s) + U, np.fft.irfft2(-1j * self.KX * psi, s) + V

    def rhs(self, wh, U, V):
        u, v = self.velocity(wh, U, V)
        s = (N, N)
        wx, wy = np.fft.irfft2(1j * self.KX * wh, s), np.fft.irfft2(1j * self.KY * wh, s)
        return (-np.fft.rfft2(u * wx + v * wy) + self.F) * self.mask

    def prolong(self, x):
        """[2, M, M] block-mean velocity -> spectral vorticity on N^2, mean velocity."""
        sc = (N * N) / (M * M)
        uc = np.where(self.keep, np.fft.rfft2(x[0]) / self.g, 0) * sc
        vc = np.where(self.keep, np.fft.rfft2(x[1]) / self.g, 0) * sc
        wh = np.zeros((N, N // 2 + 1), dtype=complex)
        wh[self.iy, self.ix] = 1j * self.KXc * vc - 1j * self.KYc * uc
        return wh * self.mask, x[0].mean(), x[1].mean()

    def restrict(self, wh, U, V):
        u, v = self.velocity(wh, U, V)
        f = N // M
        return np.stack([u.reshape(M, f, M, f).mean(axis=(1, 3)), v.reshape(M, f, M, f).mean(axis=(1, 3))])

    def advance(self, x):
        """One interval of 0.2: IF-RK4 with the C solver's step rule."""
        wh, U, V = self.prolong(x)
        u, v = self.velocity(wh, U, V)
        n = max(10, int(np.ceil(0.2 * 21 * (np.abs(u).max() + np.abs(v).max()) / 3)))
        dt = 0.2 / n
        E = np.exp(self.L * dt / 2)
        E2, h = E * E, np.exp(-ALPHA * dt / 2)
        for _ in range(n):
            a = dt * self.rhs(wh, U, V)
            b = dt * self.rhs(E * (wh + a / 2), U * h, V * h)
            c = dt * self.rhs(E * wh + b / 2, U * h, V * h)
            d = dt * self.rhs(E2 * wh + E * c, U * h * h, V * h * h)
            wh, U, V = E2 * wh + (E2 * a + 2 * E * (b + c) + d) / 6, U * h * h, V * h * h
        return self.restrict(wh, U, V)

    def random_state(self, rng, umax=3.0, k0=4.0):
        """A smooth random field (peak wavenumber 4, largest speed 3) as a [2, M, M] state."""
        wh = np.fft.rfft2(rng.standard_normal((M, M)))
        k = np.sqrt(self.KXc ** 2 + self.KYc ** 2)
        keep = self.keep & (k > 0)
        ks = np.where(keep, k, 1.0)
        amp = np.where(keep, np.sqrt((ks / k0) ** 4 * np.exp(-2 * (ks / k0) ** 2) / ks ** 3), 0)
        om = np.zeros((N, N // 2 + 1), complex)
        om[self.iy, self.ix] = k ** 2 * wh * amp * (N * N / (M * M))
        om *= self.mask
        u, v = self.velocity(om, 0.0, 0.0)
        return self.restrict(om * umax / np.sqrt(u ** 2 + v ** 2).max(), 0.0, 0.0)


def truth_run(preset, steps, seed, spinup=64):
    """[steps, 2, M, M]: `kolmogorov` starts after 64 intervals of spin-up, `kolmogorov-t` at t = 0."""
    fl = Flow()
    x = fl.random_state(np.random.default_rng(seed))
    if preset == "kolmogorov":
        for _ in range(spinup):
            x = fl.advance(x)
    out = np.empty((steps, 2, M, M))
    for k in range(steps):
        out[k] = x
        x = fl.advance(x)
    return out


def vorticity(x):
    """Spectral curl dv/dx - du/dy of [..., 2, H, W] states on [0, 2 pi)^2 (Nyquist derivative 0),
    the `vorticity` operator of sbida."""
    H, W = x.shape[-2:]
    kx = np.fft.fftfreq(W, 1.0 / W)
    ky = np.fft.fftfreq(H, 1.0 / H)
    kx[W // 2] = 0
    ky[H // 2] = 0
    dvdx = np.fft.ifft(1j * kx * np.fft.fft(x[..., 1, :, :], axis=-1), axis=-1).real
    dudy = np.fft.ifft(1j * ky[:, None] * np.fft.fft(x[..., 0, :, :], axis=-2), axis=-2).real
    return dvdx - dudy
