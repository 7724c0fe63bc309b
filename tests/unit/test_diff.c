/* The diffusion sampler on a problem with an analytic answer: a Gaussian prior
 * N(m, diag c) in model (standardized) space whose exact v-denoiser and its
 * Jacobian replace the network, observed in physical units x = M + S z
 * through a dense operator with Gaussian noise. The exact posterior is
 * Gaussian; the composed (guided) sampler must reproduce its mean and std.
 * Tolerances: unconditional (plain DDIM, 256 steps) moments within 4 standard
 * errors plus 3% of the variance for discretisation; guided (128 steps, one
 * Langevin corrector, tau_L = 0.25) posterior mean within 0.15 posterior std
 * and std within 20%. The guided sampler is not exact: SDA's likelihood
 * approximation N(y | A x_hat, R + gamma (sigma/mu)^2) and the corrector's
 * O(tau_L) step bias (for a Gaussian target it inflates the variance by about
 * 1/(1 - tau_L/2)) move it; measured worst case here: std +15% (component 5),
 * mean 0.07 std. Without the corrector the guided ODE collapses (std -> 0), so
 * the corrector is required for posterior sampling. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "diff/diff.h"
#include "obs/obs.h"

#define D 6
static const double prior_m[D] = {0.5, -1.0, 0.0, 2.0, 0.3, -0.7};
static const double prior_c[D] = {1.0, 0.5, 2.0, 0.8, 1.5, 0.3};

static void exact_terms(double tau, int j, double xt, double *v, double *jv) {
  double mu = diff_mu(tau), sg = diff_sigma(tau);
  double k = mu * prior_c[j] / (mu * mu * prior_c[j] + sg * sg);
  double xh = prior_m[j] + k * (xt - mu * prior_m[j]);
  double eh = (xt - mu * xh) / sg;
  *v = mu * eh - sg * xh;
  *jv = mu * (1 - mu * k) / sg - sg * k;
}

static int exact_v(void *ctx, const float *x, double tau, int B, float *v, sb_error *err) {
  (void)ctx; (void)err;
  for (int b = 0; b < B; b++)
    for (int j = 0; j < D; j++) {
      double vv, jv;
      exact_terms(tau, j, x[b * D + j], &vv, &jv);
      v[b * D + j] = (float)vv;
    }
  return 0;
}

static int exact_vjp(void *ctx, const float *x, double tau, int B, float *v, diff_cot_fn cot_fn, void *cot_ctx,
                     float *cot, float *g, sb_error *err) {
  exact_v(ctx, x, tau, B, v, err);
  if (cot_fn) cot_fn(cot_ctx, 0, B);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < D; j++) {
      double vv, jv;
      exact_terms(tau, j, x[b * D + j], &vv, &jv);
      g[b * D + j] = (float)(jv * cot[b * D + j]);
    }
  return 0;
}

static const diff_denoiser denoiser = {D, NULL, exact_v, exact_vjp};

static void test_schedule(void **state) {
  (void)state;
  assert_true(fabs(diff_mu(0) - 1) < 1e-15);
  assert_true(fabs(diff_mu(1) - DIFF_ETA) < 1e-12);
  assert_true(fabs(diff_sigma(0) - DIFF_ETA) < 1e-12);
  assert_true(fabs(diff_sigma(1) - 1) < 1e-5);
  for (double t = 0; t < 1; t += 0.01) assert_true(diff_mu(t + 0.01) < diff_mu(t));
}

static void test_unconditional_moments(void **state) {
  (void)state;
  const int B = 4000;
  float *x = malloc(sizeof(float) * B * D);
  diff_sampler_config c;
  diff_sampler_defaults(&c);
  c.steps = 256, c.corrections = 0, c.tau_l = 0.0; /* plain DDIM: exact score, small discretisation error */
  sb_error err;
  assert_int_equal(diff_sample(&denoiser, NULL, &c, B, 1, 0, x, NULL, NULL, NULL, &err), 0);
  for (int j = 0; j < D; j++) {
    double s1 = 0, s2 = 0;
    for (int b = 0; b < B; b++) s1 += x[b * D + j], s2 += (double)x[b * D + j] * x[b * D + j];
    double mean = s1 / B, var = s2 / B - mean * mean;
    double se_m = sqrt(prior_c[j] / B), se_v = prior_c[j] * sqrt(2.0 / B);
    print_message("dim %d: mean %.3f (%.3f) var %.3f (%.3f)\n", j, mean, prior_m[j], var, prior_c[j]);
    assert_true(fabs(mean - prior_m[j]) < 4 * se_m);
    assert_true(fabs(var - prior_c[j]) < 4 * se_v + 0.03 * prior_c[j]);
  }
  free(x);
}

/* in-place Cholesky inverse of a small SPD matrix */
static void spd_inverse(double *a, int n) {
  double *l = calloc((size_t)n * n, sizeof *l), *inv = calloc((size_t)n * n, sizeof *inv);
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++) {
      double s = a[i * n + j];
      for (int k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = i == j ? sqrt(s) : s / l[j * n + j];
    }
  for (int col = 0; col < n; col++) {
    double *z = calloc((size_t)n, sizeof *z);
    for (int i = 0; i < n; i++) {
      double s = i == col;
      for (int k = 0; k < i; k++) s -= l[i * n + k] * z[k];
      z[i] = s / l[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
      double s = z[i];
      for (int k = i + 1; k < n; k++) s -= l[k * n + i] * inv[k * n + col];
      inv[i * n + col] = s / l[i * n + i];
    }
    free(z);
  }
  memcpy(a, inv, sizeof(double) * n * n);
  free(l);
  free(inv);
}

static void test_guided_matches_exact_posterior(void **state) {
  (void)state;
  /* physical x = M + S z; observe y = A x + noise with a missing entry */
  const double M[D] = {2.3, 2.3, 2.3, 2.3, 2.3, 2.3}, S[D] = {3.6, 3.0, 2.0, 3.6, 1.0, 4.0};
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_string(&op,
      "{\"type\":\"dense\",\"matrix\":[[1,0,0,0,0,0],[0,0.5,0.5,0,0,0],[0,0,0,1,-1,0],[0,0,0,0,0,1]]}", 1, 1, D, &err), 0);
  const int O = 4;
  double noise[4] = {1.0, 0.5, 1.0, 1.0};
  double y[4] = {3.0, 0.5, NAN, -1.0}; /* third observation missing */
  diff_guidance g = {op, 1, y, noise, M, S, 1e-2, NULL, 0, 0, NULL, 0};
  const int B = 3000;
  float *x = malloc(sizeof(float) * B * D);
  diff_sampler_config c;
  diff_sampler_defaults(&c);
  c.steps = 128, c.corrections = 1, c.tau_l = 0.25;
  assert_int_equal(diff_sample(&denoiser, &g, &c, B, 7, 0, x, NULL, NULL, NULL, &err), 0);

  /* exact posterior in physical space: prior N(M + S m, S C S) */
  double P[D * D] = {0}, rhs[D] = {0}, *A = obs_dense(op);
  for (int j = 0; j < D; j++) {
    double pv = S[j] * S[j] * prior_c[j], pm = M[j] + S[j] * prior_m[j];
    P[j * D + j] = 1 / pv;
    rhs[j] = pm / pv;
  }
  for (int i = 0; i < O; i++) {
    if (isnan(y[i])) continue;
    double r = 1 / (noise[i] * noise[i]);
    for (int a = 0; a < D; a++) {
      rhs[a] += A[i * D + a] * r * y[i];
      for (int b = 0; b < D; b++) P[a * D + b] += A[i * D + a] * r * A[i * D + b];
    }
  }
  spd_inverse(P, D);
  for (int j = 0; j < D; j++) {
    double mean = 0, sd = sqrt(P[j * D + j]);
    for (int k = 0; k < D; k++) mean += P[j * D + k] * rhs[k];
    double s1 = 0, s2 = 0;
    for (int b = 0; b < B; b++) {
      double xp = M[j] + S[j] * x[b * D + j];
      s1 += xp;
      s2 += xp * xp;
    }
    double em = s1 / B, es = sqrt(s2 / B - em * em);
    print_message("dim %d: mean %.3f exact %.3f | std %.3f exact %.3f\n", j, em, mean, es, sd);
    assert_true(fabs(em - mean) < 0.15 * sd);
    assert_true(fabs(es / sd - 1) < 0.20);
  }
  free(A);
  free(x);
  obs_free(op);
}

/* The guided eps at one (x, tau) against a hand computation: the composed
 * score adds sigma * grad_x log N(y | A (M + S x_hat(x)), R + gamma (sigma/mu)^2
 * diag(A S^2 A^T)) per window block (diff.h; Rozet & Louppe's SDA
 * approximation), i.e. eps_post = eps_hat - sigma * grad. Here the gradient is
 * a central finite difference (step 1e-5, in double) of that log-likelihood
 * through the exact denoiser's x_hat, so nothing of diff_eps's chain rule is
 * reused. Two window blocks observe different values (one missing), and
 * gamma = 0.5 at tau = 0.5 where gamma (sigma/mu)^2 S^2 ~ 1.4 S^2 dominates the
 * noise variance 0.25..1: dropping the gamma term, swapping the blocks'
 * observations or the sign changes eps by O(0.1..10). Tolerance
 * 2e-5 (1 + |eps|): float outputs (measured <= 1e-7 scaled) plus the finite difference
 * error (~1e-8). */
enum { NS = 3, NB = 2 };
static const double gA[2 * NS] = {1.0, 0.5, 0.0, 0.0, -1.0, 2.0};
static const double gM[D] = {2.3, 1.0, -0.5, 2.3, 1.0, -0.5}, gS[D] = {3.6, 2.0, 1.0, 3.6, 2.0, 1.0};
static const double gy[NB * 2] = {1.0, NAN, -0.5, 2.0}, gnoise[2] = {0.5, 1.0};

/* log N(y | A (M + S x_hat), R + gamma (sigma/mu)^2 diag(A S^2 A^T)) over both blocks,
 * as a function of the standardized x_hat itself */
static double xhat_loglik(const double *xh, double tau, const void *ctx) {
  double gamma = *(const double *)ctx, mu = diff_mu(tau), sg = diff_sigma(tau), ll = 0;
  for (int k = 0; k < NB; k++)
    for (int i = 0; i < 2; i++) {
      if (isnan(gy[k * 2 + i])) continue;
      double ax = 0, dd = 0;
      for (int j = 0; j < NS; j++) {
        int idx = k * NS + j;
        ax += gA[i * NS + j] * (gM[idx] + gS[idx] * xh[idx]);
        dd += gA[i * NS + j] * gA[i * NS + j] * gS[idx] * gS[idx];
      }
      double var = gnoise[i] * gnoise[i] + gamma * (sg / mu) * (sg / mu) * dd, r = gy[k * 2 + i] - ax;
      ll += -0.5 * r * r / var;
    }
  return ll;
}

static double guided_loglik(const double *x, double tau, double gamma) {
  double mu = diff_mu(tau), sg = diff_sigma(tau), xh[D];
  for (int idx = 0; idx < D; idx++) { /* E[z | z_tau] of the Gaussian prior */
    double kk = mu * prior_c[idx] / (mu * mu * prior_c[idx] + sg * sg);
    xh[idx] = prior_m[idx] + kk * (x[idx] - mu * prior_m[idx]);
  }
  return xhat_loglik(xh, tau, &gamma);
}

/* d ll / d x_j at xd by a central difference of step 1e-5 (ll with its context) */
typedef double (*loglik_fn)(const double *x, double tau, const void *ctx);
static double fd_grad(loglik_fn ll, const void *ctx, const double *xd, int j, double tau) {
  double h = 1e-5, xp[D], xm[D];
  memcpy(xp, xd, sizeof xp);
  memcpy(xm, xd, sizeof xm);
  xp[j] += h;
  xm[j] -= h;
  return (ll(xp, tau, ctx) - ll(xm, tau, ctx)) / (2 * h);
}

static double guided_loglik_ctx(const double *x, double tau, const void *ctx) {
  return guided_loglik(x, tau, *(const double *)ctx);
}

static void test_guided_eps_by_hand(void **state) {
  (void)state;
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"dense\",\"matrix\":[[1,0.5,0],[0,-1,2]]}", 1, 1, NS, &err), 0);
  const double gammas[2] = {0.5, 0.0};
  const double taus[2] = {0.5, 0.2};
  for (int gi = 0; gi < 2; gi++)
    for (int ti = 0; ti < 2; ti++) {
      double gamma = gammas[gi], tau = taus[ti];
      diff_guidance g = {op, NB, gy, gnoise, gM, gS, gamma, NULL, 0, 0, NULL, 0};
      float x[2 * D], eps[2 * D], xh[2 * D], *scratch = malloc(sizeof(float) * diff_eps_scratch(&denoiser, &g, 2));
      for (int b = 0; b < 2; b++)
        for (int j = 0; j < D; j++) x[b * D + j] = (float)(0.4 * j - 1.0 + 0.7 * b);
      assert_int_equal(diff_eps(&denoiser, &g, x, tau, 2, eps, xh, scratch, &err), 0);
      double mu = diff_mu(tau), sg = diff_sigma(tau), worst = 0, shift = 0;
      for (int b = 0; b < 2; b++) {
        double xd[D];
        for (int j = 0; j < D; j++) xd[j] = x[b * D + j];
        for (int j = 0; j < D; j++) {
          double grad = fd_grad(guided_loglik_ctx, &gamma, xd, j, tau);
          double v, jv;
          exact_terms(tau, j, xd[j], &v, &jv);
          double e_hat = (sg * xd[j] + mu * v) / (mu * mu + sg * sg), want = e_hat - sg * grad;
          double k = mu * prior_c[j] / (mu * mu * prior_c[j] + sg * sg);
          double xh_want = prior_m[j] + k * (xd[j] - mu * prior_m[j]);
          double e = fabs(eps[b * D + j] - want) / (1 + fabs(want));
          if (!(e <= worst)) worst = e;
          assert_true(fabs(xh[b * D + j] - xh_want) < 1e-5 * (1 + fabs(xh_want)));
          shift = fmax(shift, fabs(sg * grad));
        }
      }
      print_message("guided eps (gamma %.1f, tau %.1f): max scaled error %.2g; guidance moves eps by up to %.2f\n", gamma,
                    tau, worst, shift);
      assert_true(worst < 2e-5);
      assert_true(shift > 0.05); /* the observations matter at this tau */
      free(scratch);
    }
  obs_free(op);
}

/* SDA's likelihood without the Jacobian (jacobian_free, guidance "free") at
 * one (x, tau): eps_post = eps_hat - sigma mu / (mu^2 + sigma^2) dll/dx_hat,
 * the gradient of the same log-likelihood taken with respect to x_hat (a
 * central difference with x_hat moved directly, not through the denoiser),
 * i.e. the chain rule with d x_hat/d x_tau = mu / (mu^2 + sigma^2), the
 * standard normal prior's. The test prior is not standard normal, so this
 * differs from SDA's guided eps (asserted: by more than 1e-3 at tau 0.5),
 * and both blocks, the gamma term and the scaling by mu/(mu^2 + sigma^2)
 * enter the expected value. Tolerance as test_guided_eps_by_hand. */
static void test_free_eps_by_hand(void **state) {
  (void)state;
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"dense\",\"matrix\":[[1,0.5,0],[0,-1,2]]}", 1, 1, NS, &err), 0);
  const double gammas[2] = {0.5, 0.0}, taus[2] = {0.5, 0.2};
  for (int gi = 0; gi < 2; gi++)
    for (int ti = 0; ti < 2; ti++) {
      double gamma = gammas[gi], tau = taus[ti];
      diff_guidance g = {op, NB, gy, gnoise, gM, gS, gamma, NULL, 0, 0, NULL, 1};
      float x[2 * D], eps[2 * D], eps_sda[2 * D], xh[2 * D];
      float *scratch = malloc(sizeof(float) * diff_eps_scratch(&denoiser, &g, 2));
      for (int b = 0; b < 2; b++)
        for (int j = 0; j < D; j++) x[b * D + j] = (float)(0.4 * j - 1.0 + 0.7 * b);
      assert_int_equal(diff_eps(&denoiser, &g, x, tau, 2, eps, xh, scratch, &err), 0);
      g.jacobian_free = 0;
      assert_int_equal(diff_eps(&denoiser, &g, x, tau, 2, eps_sda, NULL, scratch, &err), 0);
      double mu = diff_mu(tau), sg = diff_sigma(tau), den = mu * mu + sg * sg, worst = 0, apart = 0;
      for (int b = 0; b < 2; b++) {
        double xd[D];
        for (int j = 0; j < D; j++) {
          double v, jv;
          exact_terms(tau, j, x[b * D + j], &v, &jv);
          xd[j] = (mu * x[b * D + j] - sg * v) / den; /* the denoiser's x_hat */
        }
        for (int j = 0; j < D; j++) {
          double grad = fd_grad(xhat_loglik, &gamma, xd, j, tau), v, jv;
          exact_terms(tau, j, x[b * D + j], &v, &jv);
          double want = (sg * x[b * D + j] + mu * v) / den - sg * mu / den * grad;
          double e = fabs(eps[b * D + j] - want) / (1 + fabs(want));
          if (!(e <= worst)) worst = e;
          apart = fmax(apart, fabs(eps[b * D + j] - eps_sda[b * D + j]));
        }
      }
      print_message("free eps (gamma %.1f, tau %.1f): max scaled error %.2g; differs from sda's by up to %.3f\n", gamma,
                    tau, worst, apart);
      assert_true(worst < 2e-5);
      if (ti == 0) assert_true(apart > 1e-3);
      free(scratch);
    }
  obs_free(op);
}

/* Moment-matching guidance (diff_mmps.h) at one (x, tau) against finite
 * differences. With a Gaussian prior the likelihood of the noisy state is
 * exactly log N(y | A (M + S x_hat(x)), R + A S V S A^T) with V the
 * constant variance of z given z_tau (c sigma^2 / (mu^2 c + sigma^2) per
 * component), and a background of block k is three more rows (operator S,
 * covariance U^T U + diag(d)). With enough conjugate-gradient iterations
 * (6 unknowns at most here; 8, for the float VJPs) diff_eps and
 * diff_predict must give eps_hat - sigma grad and x_hat + (sigma^2/mu) grad
 * of that log-likelihood, computed here by central differences with the
 * covariance formed densely. Checks the scale S, the mean M, the missing
 * value, the two blocks and the background on either; one iteration must
 * differ (it is not the exact solve when the covariance is not a multiple
 * of the preconditioner). */
/* rows of block k: its observed values, then (k == blk) the background's NS
 * values with covariance U^T U + diag(d); the covariance R + A S V S A^T
 * formed densely and solved by elimination */
static double mmps_loglik(const double *x, double tau, const diff_background *b, int blk) {
  double mu = diff_mu(tau), sg = diff_sigma(tau), ll = 0;
  for (int k = 0; k < NB; k++) {
    double coef[8][NS], off[8], tgt[8], C[8][8], r[8];
    int n = 0, nobs;
    memset(C, 0, sizeof C);
    memset(coef, 0, sizeof coef);
    for (int i = 0; i < 2; i++) {
      if (isnan(gy[k * 2 + i])) continue;
      off[n] = 0;
      for (int j = 0; j < NS; j++) {
        coef[n][j] = gA[i * NS + j] * gS[k * NS + j];
        off[n] += gA[i * NS + j] * gM[k * NS + j];
      }
      tgt[n] = gy[k * 2 + i];
      C[n][n] = gnoise[i] * gnoise[i];
      n++;
    }
    nobs = n;
    if (b && k == blk) {
      for (int j = 0; j < NS; j++, n++) {
        coef[n][j] = gS[k * NS + j];
        off[n] = gM[k * NS + j];
        tgt[n] = b->mean[j];
      }
      for (int a = 0; a < NS; a++)
        for (int c = 0; c < NS; c++) {
          double v = a == c ? b->diag[a] : 0.0;
          for (int m = 0; m < b->n_members; m++) v += b->anom[m * NS + a] * b->anom[m * NS + c];
          C[nobs + a][nobs + c] = v;
        }
    }
    for (int a = 0; a < n; a++) {
      double pred = off[a];
      for (int j = 0; j < NS; j++) {
        int idx = k * NS + j;
        double kk = mu * prior_c[idx] / (mu * mu * prior_c[idx] + sg * sg);
        pred += coef[a][j] * (prior_m[idx] + kk * (x[idx] - mu * prior_m[idx]));
      }
      r[a] = tgt[a] - pred;
      for (int c = 0; c < n; c++)
        for (int j = 0; j < NS; j++) {
          int idx = k * NS + j;
          double v = prior_c[idx] * sg * sg / (mu * mu * prior_c[idx] + sg * sg);
          C[a][c] += coef[a][j] * coef[c][j] * v;
        }
    }
    double z[8];
    memcpy(z, r, sizeof z);
    for (int p = 0; p < n; p++) /* Gauss-Jordan on the symmetric positive C */
      for (int a = 0; a < n; a++) {
        if (a == p) continue;
        double f = C[a][p] / C[p][p];
        for (int c = 0; c < n; c++) C[a][c] -= f * C[p][c];
        z[a] -= f * z[p];
      }
    for (int a = 0; a < n; a++) ll += -0.5 * r[a] * z[a] / C[a][a];
  }
  return ll;
}

typedef struct mmps_ctx {
  const diff_background *b;
  int blk;
} mmps_ctx;
static double mmps_loglik_ctx(const double *x, double tau, const void *ctx) {
  const mmps_ctx *c = ctx;
  return mmps_loglik(x, tau, c->b, c->blk);
}

static void test_mmps_eps_by_hand(void **state) {
  (void)state;
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"dense\",\"matrix\":[[1,0.5,0],[0,-1,2]]}", 1, 1, NS, &err), 0);
  /* a background of 2 members (anomalies already / sqrt(S - 1)) on block 0 or 1 */
  static const double bm[NS] = {2.0, 0.5, -1.0}, bU[2 * NS] = {0.8, -0.3, 0.5, 0.2, 0.6, -0.4}, bd[NS] = {0.3, 0.2, 0.5};
  const diff_background bg = {NS, 2, bm, bU, bd, 0};
  const double taus[3] = {0.7, 0.5, 0.2};
  for (int form = 0; form < 3; form++) /* no background, on block 0, on block 1 */
    for (int ti = 0; ti < 3; ti++)
      for (int iters = 1; iters <= 8; iters += 7) {
        double tau = taus[ti];
        const diff_background *b = form ? &bg : NULL;
        int blk = form == 2 ? 1 : 0;
        diff_guidance g = {op, NB, gy, gnoise, gM, gS, 0.01, b, blk, iters, NULL, 0};
        float x[2 * D], eps[2 * D], xh[2 * D], xp[2 * D],
            *scratch = malloc(sizeof(float) * diff_eps_scratch(&denoiser, &g, 2));
        for (int bb = 0; bb < 2; bb++)
          for (int j = 0; j < D; j++) x[bb * D + j] = (float)(0.4 * j - 1.0 + 0.7 * bb);
        assert_int_equal(diff_eps(&denoiser, &g, x, tau, 2, eps, xh, scratch, &err), 0);
        assert_int_equal(diff_predict(&denoiser, &g, x, tau, 2, xp, NULL, scratch, &err), 0);
        double mu = diff_mu(tau), sg = diff_sigma(tau), worst = 0, shift = 0;
        for (int bb = 0; bb < 2; bb++) {
          double xd[D];
          for (int j = 0; j < D; j++) xd[j] = x[bb * D + j];
          for (int j = 0; j < D; j++) {
            mmps_ctx mc = {b, blk};
            double grad = fd_grad(mmps_loglik_ctx, &mc, xd, j, tau);
            double v, jv;
            exact_terms(tau, j, xd[j], &v, &jv);
            double den = mu * mu + sg * sg, want = (sg * xd[j] + mu * v) / den - sg * grad;
            double want_x = (mu * xd[j] - sg * v) / den + sg * sg / mu * grad;
            double e = fmax(fabs(eps[bb * D + j] - want) / (1 + fabs(want)),
                            fabs(xp[bb * D + j] - want_x) / (1 + fabs(want_x)));
            if (!(e <= worst)) worst = e;
            shift = fmax(shift, fabs(sg * grad));
          }
        }
        print_message("mmps %d iterations, tau %.1f, background %s: max scaled error against the exact Gaussian "
                      "likelihood %.2g; guidance moves eps by up to %.2f\n",
                      iters, tau, form ? (blk ? "on block 1" : "on block 0") : "none", worst, shift);
        assert_true(shift > 0.05);
        /* 3 observations and 3 background values: 6 iterations solve exactly */
        if (iters == 8) assert_true(worst < 2e-5); /* 6 unknowns: solved (float VJPs: 8 iterations) */
        else assert_true(worst > 1e-3);
        free(scratch);
      }
  obs_free(op);
}

/* Nonlinear guidance, y = f(A x) + e, at one (x, tau) against finite
 * differences: the composed score linearizes f at x_hat (diff.h), i.e. its
 * gradient is that of log N(y | f(A x_phys(x_hat(x))), R + gamma
 * (sigma/mu)^2 f'(A x_phys0)^2 diag(A S^2 A^T)) with the variance frozen at
 * the evaluation point x0 (f' evaluated there), a central difference of
 * which is computed here through the exact denoiser's x_hat; f and f' are
 * written out here, not taken from obs.c. Replacing f' by 1 (in the gradient
 * or the variance) changes eps by far more than the 2e-5 tolerance, checked
 * by the mutants nonlinear-guidance-fprime-one and -var-fprime-one. */
static double fn_val(int f, double s) { return f == 0 ? atan(s) : s * s; }
static double fn_der(int f, double s) { return f == 0 ? 1 / (1 + s * s) : 2 * s; }

static double nl_loglik(const double *x, const double *x0, double tau, double gamma, int f) {
  double mu = diff_mu(tau), sg = diff_sigma(tau), ll = 0;
  for (int k = 0; k < NB; k++)
    for (int i = 0; i < 2; i++) {
      if (isnan(gy[k * 2 + i])) continue;
      double ax = 0, ax0 = 0, dd = 0;
      for (int j = 0; j < NS; j++) {
        int idx = k * NS + j;
        double kk = mu * prior_c[idx] / (mu * mu * prior_c[idx] + sg * sg);
        double xh = prior_m[idx] + kk * (x[idx] - mu * prior_m[idx]);
        double xh0 = prior_m[idx] + kk * (x0[idx] - mu * prior_m[idx]);
        ax += gA[i * NS + j] * (gM[idx] + gS[idx] * xh);
        ax0 += gA[i * NS + j] * (gM[idx] + gS[idx] * xh0);
        dd += gA[i * NS + j] * gA[i * NS + j] * gS[idx] * gS[idx];
      }
      double d0 = fn_der(f, ax0);
      double var = gnoise[i] * gnoise[i] + gamma * (sg / mu) * (sg / mu) * d0 * d0 * dd, r = gy[k * 2 + i] - fn_val(f, ax);
      ll += -0.5 * r * r / var;
    }
  return ll;
}

static void test_guided_eps_nonlinear(void **state) {
  (void)state;
  const char *ops[2] = {"{\"type\":\"arctan\",\"of\":{\"type\":\"dense\",\"matrix\":[[1,0.5,0],[0,-1,2]]}}",
                        "{\"type\":\"square\",\"of\":{\"type\":\"dense\",\"matrix\":[[1,0.5,0],[0,-1,2]]}}"};
  for (int f = 0; f < 2; f++) {
    obs_op *op;
    sb_error err;
    assert_int_equal(obs_from_string(&op, ops[f], 1, 1, NS, &err), 0);
    for (int ti = 0; ti < 2; ti++) {
      double gamma = 0.5, tau = ti ? 0.2 : 0.5;
      diff_guidance g = {op, NB, gy, gnoise, gM, gS, gamma, NULL, 0, 0, NULL, 0};
      float x[2 * D], eps[2 * D], *scratch = malloc(sizeof(float) * diff_eps_scratch(&denoiser, &g, 2));
      for (int b = 0; b < 2; b++)
        for (int j = 0; j < D; j++) x[b * D + j] = (float)(0.3 * j - 0.8 + 0.5 * b);
      assert_int_equal(diff_eps(&denoiser, &g, x, tau, 2, eps, NULL, scratch, &err), 0);
      double mu = diff_mu(tau), sg = diff_sigma(tau), worst = 0, shift = 0;
      for (int b = 0; b < 2; b++) {
        double xd[D];
        for (int j = 0; j < D; j++) xd[j] = x[b * D + j];
        for (int j = 0; j < D; j++) {
          double h = 1e-5, xp[D], xm[D];
          memcpy(xp, xd, sizeof xp);
          memcpy(xm, xd, sizeof xm);
          xp[j] += h;
          xm[j] -= h;
          double grad = (nl_loglik(xp, xd, tau, gamma, f) - nl_loglik(xm, xd, tau, gamma, f)) / (2 * h);
          double v, jv;
          exact_terms(tau, j, xd[j], &v, &jv);
          double want = (sg * xd[j] + mu * v) / (mu * mu + sg * sg) - sg * grad;
          double e = fabs(eps[b * D + j] - want) / (1 + fabs(want));
          if (!(e <= worst)) worst = e;
          shift = fmax(shift, fabs(sg * grad));
        }
      }
      print_message("%s guided eps (tau %.1f): max scaled error %.2g; guidance moves eps by up to %.2f\n",
                    f ? "square" : "arctan", tau, worst, shift);
      assert_true(worst < 2e-5);
      assert_true(shift > 0.05);
      free(scratch);
    }
    obs_free(op);
  }
}

/* The guided sampler with y = arctan(x) + e against the exact posterior by
 * quadrature: the prior of test_guided_matches_exact_posterior (independent
 * components, physical x = M + S z) observed through arctan of every
 * component with noise 0.05, where arctan is flat (|x| ~ 1.5..5: f' =
 * 0.04..0.3), so a wrong derivative is visible: with f' replaced by 1 the
 * guidance is 3..25 times too strong and the posterior std comes out 2..5
 * times too small. Per component the posterior p(x | y) ~ N(x; pm, pv)
 * N(y; atan x, 0.05^2) is integrated on a grid of 20001 points over +-10
 * prior std. Tolerances (same sampler as the linear test, 3000 samples):
 * mean within 0.25 posterior std, std within 25% (the linearization adds to
 * the linear case's error; measured worst: see the printed lines). */
static void test_guided_arctan_matches_quadrature(void **state) {
  (void)state;
  const double M[D] = {1.5, 3.0, 1.0, 2.0, -1.0, 4.0}, S[D] = {1.0, 1.0, 1.0, 1.5, 1.2, 1.0};
  const double xtrue[D] = {2.5, 1.8, 3.5, 4.5, -2.8, 4.2};
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"arctan\",\"of\":{\"type\":\"identity\"}}", 1, 1, D, &err), 0);
  double noise[D], y[D];
  for (int j = 0; j < D; j++) noise[j] = 0.05, y[j] = atan(xtrue[j]) + 0.03 * (j % 2 ? 1 : -1);
  diff_guidance g = {op, 1, y, noise, M, S, 1e-2, NULL, 0, 0, NULL, 0};
  const int B = 3000;
  float *x = malloc(sizeof(float) * B * D);
  diff_sampler_config c;
  diff_sampler_defaults(&c);
  c.steps = 128, c.corrections = 1, c.tau_l = 0.25;
  assert_int_equal(diff_sample(&denoiser, &g, &c, B, 7, 0, x, NULL, NULL, NULL, &err), 0);
  for (int j = 0; j < D; j++) {
    double pm = M[j] + S[j] * prior_m[j], pv = S[j] * S[j] * prior_c[j], ps = sqrt(pv);
    double w0 = 0, w1 = 0, w2 = 0;
    const int G = 20001;
    for (int k = 0; k < G; k++) {
      double xx = pm + ps * (-10 + 20.0 * k / (G - 1)), r = y[j] - atan(xx);
      double w = exp(-0.5 * (xx - pm) * (xx - pm) / pv - 0.5 * r * r / (noise[j] * noise[j]));
      w0 += w, w1 += w * xx, w2 += w * xx * xx;
    }
    double mean = w1 / w0, sd = sqrt(w2 / w0 - mean * mean);
    double s1 = 0, s2 = 0;
    for (int b = 0; b < B; b++) {
      double xp = M[j] + S[j] * x[b * D + j];
      s1 += xp;
      s2 += xp * xp;
    }
    double em = s1 / B, es = sqrt(s2 / B - em * em);
    print_message("arctan dim %d: mean %.3f exact %.3f | std %.3f exact %.3f (prior std %.2f)\n", j, em, mean, es, sd,
                  ps);
    assert_true(fabs(em - mean) < 0.25 * sd);
    assert_true(fabs(es / sd - 1) < 0.25);
  }
  free(x);
  obs_free(op);
}

static void test_bad_config_and_cancel(void **state) {
  (void)state;
  float x[D];
  sb_error err;
  diff_sampler_config c;
  diff_sampler_defaults(&c);
  c.steps = 0, c.corrections = 1, c.tau_l = 0.25;
  assert_int_equal(diff_sample(&denoiser, NULL, &c, 1, 1, 0, x, NULL, NULL, NULL, &err), SB_EINVAL);
  c.steps = 16;
  sb_cancel cancel = {1};
  assert_int_equal(diff_sample(&denoiser, NULL, &c, 1, 1, 0, x, &cancel, NULL, NULL, &err), SB_ECANCEL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schedule),
      cmocka_unit_test(test_unconditional_moments),
      cmocka_unit_test(test_guided_matches_exact_posterior),
      cmocka_unit_test(test_guided_eps_by_hand),
      cmocka_unit_test(test_guided_eps_nonlinear),
      cmocka_unit_test(test_mmps_eps_by_hand),
      cmocka_unit_test(test_free_eps_by_hand),
      cmocka_unit_test(test_guided_arctan_matches_quadrature),
      cmocka_unit_test(test_bad_config_and_cancel),
  };
  return cmocka_run_group_tests_name("diff", tests, NULL, NULL);
}
