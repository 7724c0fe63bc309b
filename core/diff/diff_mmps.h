/* diff_mmps.h: moment-matching guidance of the diffusion samplers (MMPS;
 * Rozet et al. 2024, "Learning diffusion priors from observations by
 * expectation maximization"). Used by diff.c when g->mmps_iters >= 1.
 *
 * The guided x_hat is the Gaussian update of p(x | x_tau) ~ N(x_hat, V) by
 * the observations y = f(A x) + e, e ~ N(0, R), with Tweedie's covariance
 * V = (sigma^2/mu) d x_hat/d x_tau, which the network gives through its
 * vector-Jacobian product (never formed):
 *
 *   x_hat_post = x_hat + (sigma^2/mu) J^T A~^T u,
 *   (R + A~ V A~^T) u = y - f(A x_hat),   A~ = f'(A x_hat) A S
 *
 * (S the standardization scale; a nonlinear f linearized at x_hat). u is
 * found by mmps_iters preconditioned conjugate-gradient iterations from
 * u = 0, each one VJP; the first shares the evaluation's forward pass, so
 * with mmps_iters = 1 an evaluation costs what SDA's guidance costs (one
 * forward, one backward). The preconditioner is SDA's diagonal
 * (R + v A~ A~^T)^-1 with v = (sigma/mu)^2 / (1 + (sigma/mu)^2), the
 * Tweedie variance of a unit-variance prior in standardized units, and one
 * iteration is SDA's direction with the step length the network's own
 * covariance gives: no gamma to tune. A background (diff_bg.h) is one more
 * observation of its block, with R its covariance U^T U + diag(d) and the
 * preconditioner (U^T U + diag(d) + v S^2)^-1 (Woodbury). With as many
 * iterations as observations, a Gaussian prior's exact denoiser gives the
 * exact posterior (tests/unit/test_samplers.c). */
#ifndef SB_DIFF_MMPS_H
#define SB_DIFF_MMPS_H

#include "diff/diff.h"

/* eps_post, the prior's x_hat and the guided x_hat (each may be NULL) of B
 * samples at tau; scratch as diff_eps_scratch(d, g, B). */
int diff_mmps_denoise(const diff_denoiser *d, const diff_guidance *g, const float *x, double tau, int B, float *eps,
                      float *x_hat, float *x_post, float *scratch, sb_error *err);

#endif
