"""Independent numpy implementation of sbida's Kolmogorov-flow scheme (float64).

Written from the equations, not from the C code, to check core/sim/kolmogorov.c:

  d(omega)/dt + u . grad(omega) = nu lap(omega) - alpha omega - A kf cos(kf y)

on [0, 2 pi)^2, u = (u, v) = (U0, V0) + (d psi/dy, -d psi/dx), -lap(psi) = omega, where the
mean velocity (U0, V0) decays as exp(-alpha t). Pseudo-spectral on an N x N grid (rows y,
columns x), 2/3 dealiasing (|kx|, |ky| < N/3), Lawson integrating-factor RK4.

The state exchanged between intervals is the 2 x M x M velocity of block means (factor f = N/M).
prolong(): coarse velocity -> fine vorticity (spectral, dividing out the block-mean transfer
function G(kx) G(ky), Nyquist modes of the coarse grid dropped). restrict(): fine vorticity ->
coarse block-mean velocity.
"""
import numpy as np

NU = 1e-3
ALPHA = 0.1
KF = 4
AMP = 1.0


class Grid:
    def __init__(self, N, M=32, nu=NU, alpha=ALPHA, amp=AMP, kf=KF, deconvolve=True):
        self.N, self.M, self.f = N, M, N // M
        self.deconvolve = deconvolve
        self.nu, self.alpha, self.amp, self.kf = nu, alpha, amp, kf
        ky = np.fft.fftfreq(N, 1.0 / N)
        kx = np.arange(N // 2 + 1, dtype=float)
        self.KX, self.KY = np.meshgrid(kx, ky)
        self.K2 = self.KX ** 2 + self.KY ** 2
        self.K2inv = np.where(self.K2 > 0, 1.0 / np.where(self.K2 > 0, self.K2, 1.0), 0.0)
        self.mask = (np.abs(self.KX) < N / 3.0) & (np.abs(self.KY) < N / 3.0)
        self.L = -nu * self.K2 - alpha
        F = np.zeros((N, N // 2 + 1), dtype=complex)
        # curl of (amp sin(kf y), 0) = -amp kf cos(kf y); rfft2 of cos(kf y) is N^2/2 at ky = +-kf
        F[kf, 0] = -amp * kf * N * N / 2
        F[N - kf, 0] = -amp * kf * N * N / 2
        self.F = F

    # velocity (with mean) of a spectral vorticity
    def velocity_hat(self, wh):
        psi = wh * self.K2inv
        return 1j * self.KY * psi, -1j * self.KX * psi

    def rhs(self, wh, U, V):
        uh, vh = self.velocity_hat(wh)
        s = (self.N, self.N)
        u = np.fft.irfft2(uh, s) + U[:, None, None]
        v = np.fft.irfft2(vh, s) + V[:, None, None]
        wx = np.fft.irfft2(1j * self.KX * wh, s)
        wy = np.fft.irfft2(1j * self.KY * wh, s)
        nl = np.fft.rfft2(u * wx + v * wy)
        return (-nl + self.F) * self.mask

    def step(self, wh, U, V, dt):
        """One IF-RK4 (Lawson) step of dt; U, V: mean velocity at the start."""
        E = np.exp(self.L * dt / 2)
        E2 = E * E
        h = np.exp(-self.alpha * dt / 2)
        a = dt * self.rhs(wh, U, V)
        b = dt * self.rhs(E * (wh + a / 2), U * h, V * h)
        c = dt * self.rhs(E * wh + b / 2, U * h, V * h)
        d = dt * self.rhs(E2 * wh + E * c, U * h * h, V * h * h)
        return E2 * wh + (E2 * a + 2 * E * (b + c) + d) / 6, U * h * h, V * h * h

    def G(self, k):
        """Block-mean transfer function of f fine points: (1/f) sum_m exp(i k m h)."""
        h = 2 * np.pi / self.N
        return np.mean([np.exp(1j * k * m * h) for m in range(self.f)], axis=0)

    def prolong(self, x):
        """x [B, 2, M, M] coarse velocity -> (omega_hat [B, N, N/2+1], U, V)."""
        M, N = self.M, self.N
        uc = np.fft.rfft2(x[:, 0])
        vc = np.fft.rfft2(x[:, 1])
        kyc = np.fft.fftfreq(M, 1.0 / M)
        kxc = np.arange(M // 2 + 1, dtype=float)
        KXc, KYc = np.meshgrid(kxc, kyc)
        keep = (np.abs(KXc) < M / 2) & (np.abs(KYc) < M / 2)
        g = self.G(KXc) * self.G(KYc)
        if not self.deconvolve:  # only undo the half-block shift
            g = g / np.abs(g)
        scale = (N * N) / (M * M)
        ucd = np.where(keep, uc / g, 0) * scale
        vcd = np.where(keep, vc / g, 0) * scale
        wh = np.zeros((x.shape[0], N, N // 2 + 1), dtype=complex)
        iy = np.where(KYc >= 0, KYc, KYc + N).astype(int)
        ix = KXc.astype(int)
        wh[:, iy, ix] = 1j * KXc * vcd - 1j * KYc * ucd
        U = x[:, 0].mean(axis=(1, 2))
        V = x[:, 1].mean(axis=(1, 2))
        return wh * self.mask, U, V

    def fine_velocity(self, wh, U, V):
        uh, vh = self.velocity_hat(wh)
        s = (self.N, self.N)
        return np.fft.irfft2(uh, s) + U[:, None, None], np.fft.irfft2(vh, s) + V[:, None, None]

    def restrict(self, wh, U, V):
        u, v = self.fine_velocity(wh, U, V)
        B, M, f = wh.shape[0], self.M, self.f
        uc = u.reshape(B, M, f, M, f).mean(axis=(2, 4))
        vc = v.reshape(B, M, f, M, f).mean(axis=(2, 4))
        return np.stack([uc, vc], axis=1)

    def advance(self, x, n, nsub):
        """The Markov chain on coarse states: n intervals of 0.2, nsub IF-RK4 steps each."""
        for _ in range(n):
            wh, U, V = self.prolong(x)
            for _ in range(nsub):
                wh, U, V = self.step(wh, U, V, 0.2 / nsub)
            x = self.restrict(wh, U, V)
        return x


def random_field(g, B, seed, umax=3.0, k0=4.0):
    """Smooth random vorticity on the solver grid (numpy's own RNG): streamfunction with energy
    spectrum (k/k0)^4 exp(-2 (k/k0)^2) on modes |kx|, |ky| < M/2, scaled to a largest speed umax."""
    rs = np.random.default_rng(seed)
    M, N = g.M, g.N
    wh = np.fft.rfft2(rs.standard_normal((B, M, M)))
    kyc = np.fft.fftfreq(M, 1.0 / M)
    kxc = np.arange(M // 2 + 1, dtype=float)
    KXc, KYc = np.meshgrid(kxc, kyc)
    k = np.sqrt(KXc ** 2 + KYc ** 2)
    keep = (np.abs(KXc) < M / 2) & (np.abs(KYc) < M / 2) & (k > 0)
    ks = np.where(keep, k, 1.0)
    amp = np.where(keep, np.sqrt((ks / k0) ** 4 * np.exp(-2 * (ks / k0) ** 2) / ks ** 3), 0)
    om = np.zeros((B, N, N // 2 + 1), complex)
    iy = np.where(KYc >= 0, KYc, KYc + N).astype(int)
    ix = KXc.astype(int)
    om[:, iy, ix] = k ** 2 * wh * amp * (N * N / (M * M))
    om *= g.mask
    u, v = g.fine_velocity(om, np.zeros(B), np.zeros(B))
    s = np.sqrt(u ** 2 + v ** 2).max(axis=(1, 2))
    return om * (umax / s)[:, None, None]
