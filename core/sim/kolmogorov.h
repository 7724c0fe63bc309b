/* kolmogorov.h: 2D Kolmogorov flow, pseudo-spectral, double precision, batched (FFTW).
 *
 * Equations (vorticity form, periodic square [0, 2 pi)^2, x along the width, y along the
 * height):
 *   d(omega)/dt + u . grad(omega) = nu lap(omega) - alpha omega - A kf cos(kf y)
 * i.e. the curl of du/dt + (u . grad)u = -grad p + nu lap(u) - alpha u + (A sin(kf y), 0),
 * div u = 0. Defaults (kf_config_default): nu = 1/Re = 1e-3, drag alpha = 0.1, A = 1,
 * kf = 4: the setup of SDA (Rozet & Louppe 2023) and of jax-cfd's Kolmogorov flow.
 * u = (U0, V0) + (d psi/dy, -d psi/dx), -lap(psi) = omega; the mean velocity (U0, V0)
 * (zero for every state the presets draw) decays as exp(-alpha t).
 *
 * Scheme. Spectral vorticity on an n x n solver grid (rows y, columns x; FFTW r2c layout
 * n x (n/2 + 1), unnormalized forward transform like numpy.fft.rfft2), 2/3 dealiasing
 * (modes with |kx| or |ky| >= n/3 are zero; the truncated system conserves energy and
 * enstrophy exactly in the nonlinear term), advection u . grad(omega) in physical space
 * (4 inverse + 1 forward transform per evaluation). Time: Lawson integrating-factor RK4
 * (IF-RK4): viscosity and drag are integrated exactly by exp(-(nu k^2 + alpha) t), the
 * advection and the forcing by classical RK4, so an unforced single Fourier mode or
 * Taylor-Green vortex decays at exactly exp(-(nu k^2 + alpha) t) and the scheme is 4th
 * order in the step (tests/unit/test_kolmogorov.c measures both).
 *
 * The state (what sim.h passes between advance() calls) is the velocity (u, v) on an
 * m x m grid, channel-first [2][m][m], each value the mean of an f x f block of the
 * solver grid (f = n / m; block (i, j) covers solver rows f i .. f i + f - 1). Nothing
 * else survives between calls, so every interval starts by rebuilding the solver's
 * vorticity from the coarse velocity (prolongation): the coarse velocity's DFT, each mode
 * |kx|, |ky| < m/2 divided by the block-mean transfer function G(kx) G(ky),
 * G(k) = (1/f) sum_q exp(i k q 2 pi / n) (the box filter and the half-block shift),
 * placed into the solver spectrum (zero padding; the coarse Nyquist modes are dropped),
 * then curl; the mean velocity is carried separately. Restriction(prolongation(x)) = x
 * for x without Nyquist content, and a band-limited field such as a Taylor-Green vortex
 * survives the round trip exactly. advance(x, n) is therefore the Markov chain on coarse
 * states that users see: advancing 2 intervals at once equals advancing 1 twice, bit for
 * bit. Dividing out G instead of only the half-block phase cut the one-interval error
 * against a 256^2 reference from 2.8e-2 to 2.2e-2 (tests/data/kolmogorov_ref.py, see
 * docs/kolmogorov.md).
 *
 * Grid and step (preset `kolmogorov`: n = 64 for m = 32, 8..n IF-RK4 steps per 0.2).
 * Measured against a 256^2 solver run continuously (dt = 0.005) from attractor states,
 * one interval of 0.2, RMS over the 2 x 32 x 32 state (state RMS 0.98, RMS change over
 * the interval 0.27): the chain at n = 256 is off by 1.6e-2 (the information the 32^2
 * state cannot carry: sub-block vorticity is rebuilt from the coarse field each interval;
 * this part no solver grid removes), at n = 128 by 1.66e-2 and at n = 64 by 2.16e-2
 * (n = 64 differs from the n = 256 chain by 1.5e-2, n = 128 by 0.5e-2). The time step
 * is not the limit: 5, 10, 20 and 40 steps per interval agree to 3 digits at n = 64.
 * n = 64 costs a quarter of n = 128 for +0.5e-2, so the preset uses 64; kf_config.n
 * takes 128 or 256 for a finer chain. The number of steps per interval is set per
 * trajectory and interval from the coarse state's speed, for stability:
 * nsub = max(nsub_min, ceil(0.2 kmax (max|u| + max|v|) / cfl)), kmax = the largest kept
 * wavenumber (21 at n = 64), nsub_min = 10, cfl = 3. Measured at n = 64 with a fixed
 * step: 5 steps per interval (dt 0.04) blew up within 35 intervals on a state with
 * max|u| + max|v| near 8 (0.04 * 21 * 8 = 6.7), 6 steps ran 16 trajectories for 200
 * intervals; on the attractor max|u| + max|v| ranged over 4..8.3 (2400 states), so
 * cfl = 3 keeps a factor of 2 and only the few states above 7.1 take more than 10
 * steps. Every trajectory's result depends only on its own state.
 *
 * Batching: trajectories are processed in chunks of `chunk` (4) with FFTW plans for many
 * transforms (fftw_plan_many_dft_c2r/r2c over all fields of the chunk), created once per
 * solver under a lock (FFTW's planner is not thread-safe) with FFTW_ESTIMATE (the plan,
 * and so every result, is reproducible run to run); a chunk that does not fill up, and a
 * trajectory needing more steps than nsub_min, run through plans for one trajectory.
 * On this machine (2 cores, 512 KiB L2 each, shared) chunks of 1, 2, 4 and 8 cost the
 * same within the noise (5.2..6.3 ms per interval and trajectory): a 64^2 transform is
 * already efficient alone and a chunk's working set (430 KiB per trajectory) leaves L2.
 * Execution uses the new-array functions on per-call buffers, so kf_advance may run
 * concurrently on one solver from many threads. Results are bitwise independent of the
 * batch size (tested). Across machines FFTW may pick different SIMD codelets, so
 * chaotic trajectories agree to round-off at first and then diverge.
 *
 * Initial fields (kf_init_random): white noise on the m x m grid from the stream
 * (seed, stream0 + b), filtered to a streamfunction with energy spectrum
 * E(k) ~ (k/k0)^4 exp(-2 (k/k0)^2) (peak k0 = 4, modes |kx|, |ky| < m/2), placed on the
 * solver grid, scaled so the largest speed on the solver grid is umax = 3, restricted. */
#ifndef SB_KOLMOGOROV_H
#define SB_KOLMOGOROV_H

#include <stddef.h>
#include <stdint.h>

#include "util/sb_error.h"

typedef struct kf_config {
  int n;            /* solver grid n x n: even, a multiple of m, n >= m */
  int m;            /* state grid m x m: even, >= 4 */
  double nu;        /* viscosity, 1/Re */
  double alpha;     /* linear drag */
  double amp;       /* forcing amplitude A */
  int kf;           /* forcing wavenumber */
  double interval;  /* model time between two states */
  int nsub_min;     /* IF-RK4 steps per interval at least */
  double cfl;       /* > 0: more steps for fast states (see above); 0: always nsub_min */
  int chunk;        /* trajectories per batched FFT call */
  double init_umax; /* largest speed of an initial field */
  double init_k0;   /* peak wavenumber of an initial field */
} kf_config;

/* The preset's values: n 64, m 32, nu 1e-3, alpha 0.1, amp 1, kf 4, interval 0.2,
 * nsub_min 10, cfl 3.0, chunk 4, init_umax 3, init_k0 4. */
void kf_config_default(kf_config *c);

typedef struct kf_solver kf_solver;

int kf_create(kf_solver **out, const kf_config *c, sb_error *err);
void kf_free(kf_solver *s);
const kf_config *kf_get_config(const kf_solver *s);

/* The Markov chain: advances B coarse states x [B][2][m][m] in place by n intervals.
 * Fails with SB_ENUMERIC (naming the trajectory) if a state is not finite or blows up,
 * SB_ERANGE if a state is too fast to integrate (more than 4096 steps per interval). */
int kf_advance(const kf_solver *s, double *x, size_t B, long n, sb_error *err);

/* B random smooth initial states (before any spin-up) into x [B][2][m][m]. */
int kf_init_random(const kf_solver *s, double *x, size_t B, uint64_t seed, uint64_t stream0, sb_error *err);

/* ---- The solver level, one trajectory at a time (tests, diagnostics) ----
 * A fine state is the spectral vorticity w: kf_spec_size() complex values stored as
 * interleaved (re, im) doubles in FFTW's r2c layout [n][n/2 + 1], numpy.fft.rfft2
 * scaling, plus the mean velocity uv[2]. */
size_t kf_spec_size(const kf_solver *s);
/* coarse x [2][m][m] -> fine (w, uv) */
int kf_prolong(const kf_solver *s, const double *x, double *w, double uv[2], sb_error *err);
/* fine (w, uv) -> coarse block means x [2][m][m] */
int kf_restrict(const kf_solver *s, const double *w, const double uv[2], double *x, sb_error *err);
/* nsteps IF-RK4 steps of size dt on (w, uv), in place. */
int kf_steps(const kf_solver *s, double *w, double uv[2], double dt, long nsteps, sb_error *err);
/* velocity on the solver grid, u and v [n][n] */
int kf_velocity(const kf_solver *s, const double *w, const double uv[2], double *u, double *v, sb_error *err);
/* random smooth initial field on the solver grid (as kf_init_random before restriction) */
int kf_random_fine(const kf_solver *s, double *w, double uv[2], uint64_t seed, uint64_t stream, sb_error *err);

typedef struct kf_stats {
  double energy;      /* E = <|u|^2> / 2 (mean over the domain, mean flow included) */
  double enstrophy;   /* Z = <omega^2> / 2 */
  double forcing;     /* P = <u . f> = A <u sin(kf y)> */
  double dissipation; /* D = nu <|grad u|^2> = 2 nu Z */
  double drag;        /* 2 alpha E */
} kf_stats;
/* Energy budget of a fine state: dE/dt = forcing - dissipation - drag exactly for the
 * dealiased equations (up to the time discretization). */
void kf_fine_stats(const kf_solver *s, const double *w, const double uv[2], kf_stats *st);

/* Isotropic energy spectrum of coarse states (shells |k| in [j - 0.5, j + 0.5), j = 0..m/2),
 * summed over the B states into spec[m/2 + 1] (not cleared): sum_k E(k) is the energy
 * <|u|^2>/2 of the modes with |k| < m/2 + 0.5 (the corners of the square spectrum beyond
 * are left out). */
int kf_coarse_spectrum(const kf_solver *s, const double *x, size_t B, double *spec, sb_error *err);

#endif
