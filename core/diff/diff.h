/* diff.h: score-based diffusion with the SDA cosine VP schedule, the
 * v-parametrisation, and its samplers (the predictor-corrector of SDA,
 * DPM-Solver++(2M) deterministic and stochastic, EDM's Heun), optionally
 * guided by a linear-Gaussian likelihood (the composed score of Rozet &
 * Louppe).
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

#include "diff/diff_bg.h"
#include "diff/diff_dyn.h"
#include "obs/obs.h"
#include "util/par.h"
#include "util/sb_error.h"

#define DIFF_ETA 1e-3

double diff_mu(double tau);
double diff_sigma(double tau);

/* The cotangent of samples [b0, b1) from their x and v_hat (rows b0..b1-1
 * of the arrays the caller of v_vjp passed); called by v_vjp between the
 * forward and the backward pass of those samples, possibly on several
 * threads at once for disjoint ranges. */
typedef void (*diff_cot_fn)(void *cot_ctx, int b0, int b1);

/* The learned (or exact) denoiser. v() fills v [B][dim] = v_hat(x, tau);
 * v_vjp() also fills g [B][dim] = (d v_hat / d x)^T cot, the vector-Jacobian
 * product with respect to the input (needed only for guidance). When cot_fn
 * is set, v_vjp calls it for each group of samples once their v is known
 * and before their backward pass, so that the cotangent (which depends on
 * v) costs no second forward pass: one forward and one backward per
 * evaluation. Both must be callable for any B up to the batch the sampler
 * uses. */
typedef struct diff_denoiser {
  int dim;
  void *ctx;
  int (*v)(void *ctx, const float *x, double tau, int B, float *v, sb_error *err);
  int (*v_vjp)(void *ctx, const float *x, double tau, int B, float *v, diff_cot_fn cot_fn, void *cot_ctx,
               float *cot, float *g, sb_error *err);
} diff_denoiser;

/* Linear-Gaussian likelihood over the physical state: the sample (dim values)
 * is n_blocks states of op->state_dim values each (e.g. the W states of a
 * window); physical = mean + scale * standardized, componentwise (arrays of
 * dim). y is [n_blocks][op->n_obs] with NaN for missing values; noise_std
 * has op->n_obs entries. A nonlinear operator y = f(A x) + e is linearized
 * at each sample's x_hat (Jacobian f'(A x_hat) A, variance sy^2 + gamma
 * (sigma/mu)^2 f'^2 diag(A S^2 A^T)); the cost stays one forward and one VJP. */
typedef struct diff_guidance {
  const obs_op *op;
  int n_blocks;
  const double *y;
  const double *noise_std;
  const double *mean;   /* [dim] or NULL for 0 */
  const double *scale;  /* [dim] or NULL for 1 */
  double gamma;         /* Tweedie covariance factor, ~1e-2 */
  /* A Gaussian prior on one block (the first observed state), in
   * physical units (diff_bg.h), or NULL. It enters the cotangent next to
   * the likelihood, so a guided evaluation still costs one forward and one
   * VJP. */
  const diff_background *background;
  /* the block the background is on (0: the first; a request shorter than the
   * model's window puts its rows, and its background, after unobserved ones) */
  int background_block;
  /* 0: SDA's likelihood approximation N(y | A x_hat, R + gamma (sigma/mu)^2 A S^2 A^T);
   * K >= 1: moment matching (diff_mmps.h) with K conjugate-gradient
   * iterations, each one VJP (the first shares the forward pass). diff_sample
   * sets it from the config's guidance and guidance_iters. */
  int mmps_iters;
  /* A weak-constraint dynamics term over the window's consecutive states
   * (diff_dyn.h), or NULL; SDA's guidance only (not with mmps_iters). */
  const diff_dynamics *dyn;
  /* 1: SDA's likelihood without the network's Jacobian (DIFF_GUIDE_FREE:
   * one forward pass per evaluation, no VJP); diff_sample sets it from the
   * config's guidance. */
  int jacobian_free;
} diff_guidance;

/* Samplers:
 *  - DIFF_PC: SDA's predictor-corrector. K = steps predictor (DDIM) steps at
 *    tau_i = 1 - i/K, each but the last followed by C = corrections Langevin
 *    steps of scale tau_l, then x_hat at tau = 0: K + C (K - 1) + 1 network
 *    evaluations.
 *  - DIFF_DPM2M: DPM-Solver++(2M) (Lu et al. 2022), the deterministic
 *    second-order multistep exponential integrator of the probability-flow
 *    ODE in the data prediction x_hat: K = steps evaluations, one per step
 *    from tau = 1 to tau = 0 on the schedule's grid (the first step is first
 *    order, DDIM).
 *  - DIFF_DPM2M_SDE: its stochastic variant (DPM-Solver++(2M) SDE, midpoint
 *    form): x_i = (s_i/s_{i-1}) e^{-h} x + mu_i (1 - e^{-2h}) D
 *    + s_i sqrt(1 - e^{-2h}) z, same D and K evaluations.
 *  - DIFF_HEUN: EDM's second-order Heun (Karras et al. 2022) on the
 *    probability-flow ODE of this VP schedule in z = x/mu, s = sigma/mu:
 *    dz/ds = (z - x_hat)/s. K = steps evaluations: ceil(K/2) intervals, each
 *    one Euler evaluation plus one Heun correction, except the last interval
 *    when K is odd (Euler only, as EDM's last step).
 * The grids of the new samplers (schedule): DIFF_SCHED_LAMBDA uniform in
 * lambda = log(mu/sigma) between the start (tau = 1, or sigma/mu =
 * sigma_max) and tau = 0; DIFF_SCHED_EDM uniform
 * in (sigma/mu)^(1/rho) (EDM's rho schedule); DIFF_SCHED_TAU uniform in tau.
 * Guidance enters them through the guided x_hat (diff_predict). */
enum { DIFF_PC = 0, DIFF_DPM2M, DIFF_DPM2M_SDE, DIFF_HEUN, DIFF_N_METHODS };
enum { DIFF_SCHED_LAMBDA = 0, DIFF_SCHED_EDM, DIFF_SCHED_TAU, DIFF_N_SCHEDULES };
/* How the likelihood guides the samplers: SDA's approximate likelihood
 * (gamma), or moment matching with the network's own Tweedie covariance
 * (diff_mmps.h; guidance_iters conjugate-gradient iterations), or SDA's
 * likelihood without the network's Jacobian ("free"): d x_hat / d x_tau is
 * taken as mu / (mu^2 + sigma^2) I, i.e. d v_hat / d x_tau = 0, which is
 * exact for a standard normal prior in the model's standardized space (its
 * v_hat is 0). A guided evaluation is then one forward pass and no VJP; the
 * observations reach unobserved components only through the network's next
 * evaluations. */
enum { DIFF_GUIDE_SDA = 0, DIFF_GUIDE_MMPS, DIFF_GUIDE_FREE, DIFF_N_GUIDANCES };

typedef struct diff_sampler_config {
  int steps;        /* K >= 1: predictor steps (pc) or network evaluations (the others) */
  int corrections;  /* pc: Langevin corrector steps per predictor step, C >= 0 */
  double tau_l;     /* pc: corrector step scale (0.25..0.5) */
  int method;       /* DIFF_PC, ... */
  int schedule;     /* the others: DIFF_SCHED_* */
  double rho;       /* DIFF_SCHED_EDM: rho (> 0, EDM uses 7) */
  double sigma_max; /* the others: start at sigma/mu = sigma_max (EDM's sigma; 0: tau = 1, i.e. 1/eta) */
  int guidance;       /* DIFF_GUIDE_SDA (default), DIFF_GUIDE_MMPS or DIFF_GUIDE_FREE */
  int guidance_iters; /* DIFF_GUIDE_MMPS: conjugate-gradient iterations per evaluation, >= 1 (each one VJP) */
  int gamma_floor;    /* pc with SDA: 1 raises gamma to diff_gamma_floor for precise observations; 0 (default) keeps it */
  /* pc: where the sampler starts, tau in (0, 1]. 1 (default): from noise,
   * x = sigma(1) z. Below 1 (a warm start, e.g. from a forecast ensemble):
   * x holds on entry the data-space samples to start from, the sampler
   * noises them to x = mu(start) x + sigma(start) z (the same draws z) and
   * runs its steps predictor steps from tau = start to 0. */
  double start;
} diff_sampler_config;

/* pc with 64 steps, 1 correction, tau_l 0.25, from noise (start 1; and,
 * for a later switch, the lambda grid with rho 7 and sigma_max 0). */
void diff_sampler_defaults(diff_sampler_config *c);
/* Switches c to method with that method's defaults for steps and grid
 * (measured on tests/unit/test_samplers.c's exact Gaussian flow): pc 64
 * steps (corrections and tau_l kept); dpm2m and dpm2m-sde 16 evaluations
 * uniform in lambda from tau = 1; heun 16 evaluations on EDM's grid (rho 7)
 * from sigma_max = 80. */
void diff_method_defaults(diff_sampler_config *c, int method);

/* Names as in params and files: "pc", "dpm2m", "dpm2m-sde", "heun";
 * "lambda", "edm", "tau". parse: the index or -1. */
const char *diff_method_name(int method);
int diff_method_parse(const char *name);
const char *diff_schedule_name(int schedule);
int diff_schedule_parse(const char *name);
/* "sda", "mmps" */
const char *diff_guidance_name(int guidance);
int diff_guidance_parse(const char *name);
#define DIFF_GUIDANCE_NAMES "sda, mmps, free"
#define DIFF_METHOD_NAMES "pc, dpm2m, dpm2m-sde, heun"
#define DIFF_SCHEDULE_NAMES "lambda, edm, tau"

/* Network evaluations of one diff_sample call with config c (a guided
 * evaluation with moment matching costs guidance_iters VJPs). */
int diff_evaluations(const diff_sampler_config *c);

/* The grid of the new samplers: tau[0] > tau[1] > ... > tau[n] = 0 for n
 * intervals, tau[0] = 1 or where sigma/mu = sigma_max (c's schedule, rho,
 * sigma_max). Their start is x = sigma(tau[0]) z, z ~ N(0, I). */
void diff_grid(const diff_sampler_config *c, int n, double *tau);
/* lambda(tau) = log(mu/sigma), and tau from sigma/mu */
double diff_lambda(double tau);
double diff_tau_of_ratio(double s);

/* One DPM-Solver++(2M) step (deterministic) from tau0 to tau1 for n values:
 * x <- (sigma1/sigma0) x - mu1 (e^{-h} - 1) D with h = lambda1 - lambda0,
 * D = (1 + 1/(2r)) xh - 1/(2r) xh_prev, r = h_prev/h (h_prev <= 0 or
 * xh_prev == NULL: D = xh, first order). Returns h. Exposed for tests. */
double diff_dpm2m_step(float *x, const float *xh, const float *xh_prev, double h_prev, double tau0, double tau1,
                       size_t n);

/* The smallest gamma with which SDA's guidance stays stable on pc's grid
 * (0 when c is not pc with SDA's likelihood, sda or free, or c->gamma_floor is 0; the
 * other samplers' grids were measured with their own gamma, docs/samplers.md):
 *   min(1, r_1 / (DIFF_GAMMA_FLOOR_C2 rho_min)),
 * rho_min the smallest ratio over g's blocks and observations of the noise
 * variance sy^2 to the prior variance of the observed value, sum_j A_ij^2
 * S_j^2, and r_1 = (sigma/mu)^2 at the grid's last noise level above 0 (pc:
 * tau = 1/steps). Why: near tau = 0 the guided prediction moves x_hat by
 * about r / (rho + gamma r) times its residual (standardized units), and
 * an explicit step from r_i to r_{i-1} behaves only while that gain times
 * the step's log(r_i / r_{i-1}) stays below about c; on pc's grid (r_i ~ r_1
 * i^2) the worst step gives gamma >= r_1 / (c^2 rho). With a warm start
 * the last level is tau = start/steps. c^2 = 1.6 is fitted
 * on l96-sakov (sy 0.1..0.5: the gamma that calibrated it, docs/samplers.md). With
 * observations much more precise than the prior (sy = 0.1 on Lorenz96,
 * rho ~ 1e-3) SDA's gamma = 1e-2 diverged (RMSE 1e9, docs/samplers.md).
 * The floor is at most 1: there SDA's term is the Tweedie variance of a
 * Gaussian prior at low noise. diff_sample uses max(g->gamma, floor). */
#define DIFF_GAMMA_FLOOR_C2 1.6
double diff_gamma_floor(const diff_guidance *g, const diff_sampler_config *c);

/* |x| beyond this (in the model's standardized space, where the prior has
 * unit variance) is a sampler that diverged: diff_sample fails with
 * SB_ENUMERIC instead of returning it. No posterior sample is 10^4 prior
 * standard deviations from the prior mean; the blow-ups seen were 10^8
 * (docs/samplers.md), while the tests' tiny untrained networks reach 10^2. */
#define DIFF_DIVERGED 1e4

/* Draws B samples into x [B][dim]. Sample b uses RNG stream (seed, stream0 + b).
 * With c->start < 1, x holds on entry the samples to start from (pc only).
 * With g != NULL the score is guided by the likelihood (composed score).
 * cancel (may be NULL) is polled once per step; progress (may be NULL) gets
 * the fraction done. Scratch (diff_eps_scratch floats) is allocated inside.
 * A non-finite sample, or one beyond DIFF_DIVERGED: SB_ENUMERIC. */
int diff_sample(const diff_denoiser *d, const diff_guidance *g, const diff_sampler_config *c, int B,
                uint64_t seed, uint64_t stream0, float *x, const sb_cancel *cancel,
                void (*progress)(void *ctx, double frac), void *progress_ctx, sb_error *err);

/* eps_post for B samples at tau: eps_hat, or eps_hat - sigma * grad log p(y | x_tau)
 * when g != NULL; x_hat optionally returned ([B][dim] or NULL): the prior's
 * (unguided) Tweedie estimate (mu x - sigma v_hat)/(mu^2 + sigma^2), as the
 * pc sampler returns at tau = 0. Exposed for tests. */
int diff_eps(const diff_denoiser *d, const diff_guidance *g, const float *x, double tau, int B, float *eps,
             float *x_hat, float *scratch, sb_error *err);
/* The guided data prediction x_hat_post = x_hat + (sigma^2/mu) grad log p(y | x_tau)
 * (Tweedie's formula with the posterior score; = x_hat when g == NULL), the
 * one consistent with eps_post: x = mu x_hat_post + sigma eps_post. eps may
 * be NULL. Same scratch as diff_eps. */
int diff_predict(const diff_denoiser *d, const diff_guidance *g, const float *x, double tau, int B, float *x_hat,
                 float *eps, float *scratch, sb_error *err);
/* floats of scratch diff_eps needs */
size_t diff_eps_scratch(const diff_denoiser *d, const diff_guidance *g, int B);

#endif
