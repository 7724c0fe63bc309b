/* diff.h: score-based diffusion with the SDA cosine VP schedule, the
 * v-parametrisation, and the predictor-corrector sampler, optionally guided
 * by a linear-Gaussian likelihood (the composed score of Rozet & Louppe).
 *
 *   mu(tau) = cos(omega tau)^2, omega = arccos(sqrt(eta)), eta = 1e-3
 *   sigma(tau) = sqrt(1 - mu^2 + eta^2),  x_tau = mu x + sigma eps
 *   v = mu eps - sigma x
 *   eps_hat = (sigma x_tau + mu v_hat) / (mu^2 + sigma^2)
 *   x_hat   = (mu x_tau - sigma v_hat) / (mu^2 + sigma^2)
 *
 * Samples live in the model's (standardized) space as float [B][dim]. */
#ifndef SB_DIFF_H
#define SB_DIFF_H

#include <stddef.h>
#include <stdint.h>

#include "obs/obs.h"
#include "util/par.h"
#include "util/sb_error.h"

#define DIFF_ETA 1e-3

double diff_mu(double tau);
double diff_sigma(double tau);

/* The learned (or exact) denoiser. v() fills v [B][dim] = v_hat(x, tau);
 * v_vjp() also fills g [B][dim] = (d v_hat / d x)^T cot, the vector-Jacobian
 * product with respect to the input (needed only for guidance). Both must be
 * callable for any B up to the batch the sampler uses. */
typedef struct diff_denoiser {
  int dim;
  void *ctx;
  int (*v)(void *ctx, const float *x, double tau, int B, float *v, sb_error *err);
  int (*v_vjp)(void *ctx, const float *x, double tau, int B, float *v, const float *cot, float *g,
               sb_error *err);
} diff_denoiser;

/* Linear-Gaussian likelihood over the physical state: the sample (dim values)
 * is n_blocks states of op->state_dim values each (e.g. the W states of a
 * window); physical = mean + scale * standardized, componentwise (arrays of
 * dim). y is [n_blocks][op->n_obs] with NaN for missing values; noise_std
 * has op->n_obs entries. */
typedef struct diff_guidance {
  const obs_op *op;
  int n_blocks;
  const double *y;
  const double *noise_std;
  const double *mean;   /* [dim] or NULL for 0 */
  const double *scale;  /* [dim] or NULL for 1 */
  double gamma;         /* Tweedie covariance factor, ~1e-2 */
} diff_guidance;

typedef struct diff_sampler_config {
  int steps;        /* K >= 1 */
  int corrections;  /* Langevin corrector steps per predictor step, C >= 0 */
  double tau_l;     /* corrector step scale (0.25..0.5) */
} diff_sampler_config;

void diff_sampler_defaults(diff_sampler_config *c);

/* Draws B samples into x [B][dim]. Sample b uses RNG stream (seed, stream0 + b).
 * With g != NULL the score is guided by the likelihood (composed score).
 * cancel (may be NULL) is polled once per step; progress (may be NULL) gets
 * the fraction done. Scratch (diff_eps_scratch floats) is allocated inside. */
int diff_sample(const diff_denoiser *d, const diff_guidance *g, const diff_sampler_config *c, int B,
                uint64_t seed, uint64_t stream0, float *x, const sb_cancel *cancel,
                void (*progress)(void *ctx, double frac), void *progress_ctx, sb_error *err);

/* eps_post for B samples at tau: eps_hat, or eps_hat - sigma * grad log p(y | x_tau)
 * when g != NULL; x_hat optionally returned ([B][dim] or NULL). Exposed for tests. */
int diff_eps(const diff_denoiser *d, const diff_guidance *g, const float *x, double tau, int B, float *eps,
             float *x_hat, float *scratch, sb_error *err);
/* floats of scratch diff_eps needs */
size_t diff_eps_scratch(const diff_denoiser *d, const diff_guidance *g, int B);

#endif
