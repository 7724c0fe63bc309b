/* lingauss.h: the linear-Gaussian preset `linear-gauss`, a system whose
 * posterior is known in closed form, for checking the calibration of any
 * estimator (the learned ones included) against the exact answer.
 *
 * State: N values on a periodic 1D grid (default 16, N in 4..1024).
 * Initial distribution: x_0 ~ N(0, Sigma0), drawn as
 *     x_0 = sqrt(1 - nu) C z + sqrt(nu) z',   z, z' ~ N(0, I_N) independent,
 * where C is the circulant smoothing kernel c_d = exp(-d^2 / (2 L^2)) / Z of
 * the periodic node distance d = min(|i - j|, N - |i - j|), normalized so
 * that sum_d c_d^2 = 1. Hence
 *     Sigma0[i][j] = (1 - nu) sum_m c(i - m) c(j - m) + nu [i == j],
 * a circulant (translation invariant) covariance with variance 1 at every
 * node, correlation ~ exp(-d^2 / (4 L^2)) (L = 2 nodes, nu = 0.1: 0.9 x 0.37
 * four nodes apart) and a white "nugget" nu that keeps it well conditioned.
 * Transition: a circular shift by one node per observation interval,
 *     x_{t+1}[i] = x_t[(i - 1) mod N]   (advection to the right),
 * deterministic and orthogonal, and it maps a circulant Sigma0 onto itself,
 * so p(x_t) = N(0, Sigma0) for every t (stationary; the time index does not
 * matter). dt = 1 (one interval).
 *
 * The exact posterior: the window's states are x_k = A^{k-t} x_t (A the
 * shift, A^{-1} = A^T), so observations y_k = H x_k + e_k, e_k ~ N(0, R),
 * k = t-W+1..t, are linear-Gaussian observations of x_t itself:
 *     y = G x_t + e,  G = [H A^{-(W-1)}; ...; H A^{-1}; H]  (oldest first),
 *     p(x_t | y) = N(m, P),  P = Sigma0 - Sigma0 G^T (G Sigma0 G^T + R)^-1 G Sigma0,
 *                            m = Sigma0 G^T (G Sigma0 G^T + R)^-1 y
 * (missing observations: drop their rows of G, y and R). A Kalman filter
 * (e.g. the etkf baseline with a large ensemble and no inflation) gives the
 * same answer: with deterministic linear dynamics its filtered state at the
 * window's last time conditions on the whole window. */
#ifndef SB_LINGAUSS_H
#define SB_LINGAUSS_H

#include "sim/sim.h"

/* Creates the linear-gauss simulator (N <= 0: 16). */
int lingauss_create(sim **out, int N, sb_error *err);

/* The stationary covariance Sigma0 [dim][dim] (row-major) of a linear-gauss
 * simulator; SB_EINVAL for any other preset. */
int lingauss_cov(const sim *s, double *cov, sb_error *err);

#endif
