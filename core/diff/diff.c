#include "diff/diff.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/rng.h"

double diff_mu(double tau) {
  double omega = acos(sqrt(DIFF_ETA));
  double c = cos(omega * tau);
  return c * c;
}

double diff_sigma(double tau) {
  double mu = diff_mu(tau);
  return sqrt(1.0 - mu * mu + DIFF_ETA * DIFF_ETA);
}

void diff_sampler_defaults(diff_sampler_config *c) {
  c->steps = 64;
  c->corrections = 1;
  c->tau_l = 0.25;
}

size_t diff_eps_scratch(const diff_denoiser *d, const diff_guidance *g, int B) {
  size_t n = (size_t)B * d->dim;
  if (!g) return n; /* v */
  return 3 * n + (size_t)B * g->n_blocks * g->op->n_obs; /* v, cot, grad, residuals */
}

int diff_eps(const diff_denoiser *d, const diff_guidance *g, const float *x, double tau, int B, float *eps,
             float *x_hat, float *scratch, sb_error *err) {
  const size_t n = (size_t)B * d->dim;
  const double mu = diff_mu(tau), sg = diff_sigma(tau), den = mu * mu + sg * sg;
  float *v = scratch;
  int rc;
  if (!g) {
    if ((rc = d->v(d->ctx, x, tau, B, v, err))) return rc;
    for (size_t i = 0; i < n; i++) {
      eps[i] = (float)((sg * x[i] + mu * v[i]) / den);
      if (x_hat) x_hat[i] = (float)((mu * x[i] - sg * v[i]) / den);
    }
    return SB_OK;
  }
  /* guided: need x_hat first (forward), then the VJP of v at x with cot */
  const obs_op *op = g->op;
  const int D = d->dim, ns = op->state_dim, no = op->n_obs, nb = g->n_blocks;
  float *cot = scratch + n, *grad = scratch + 2 * n, *res = scratch + 3 * n;
  if ((rc = d->v(d->ctx, x, tau, B, v, err))) return rc;
  /* residual weights w = (y - A x_hat_phys) / (sy^2 + gamma (sigma/mu)^2 diag(A S^2 A^T)),
   * then cot = S A^T w = gradient of log N(y | A x_hat_phys, .) w.r.t. x_hat */
  const double ratio2 = (sg / mu) * (sg / mu);
  double *xp = malloc(sizeof(double) * (size_t)ns), *yp = malloc(sizeof(double) * (size_t)no),
         *gp = malloc(sizeof(double) * (size_t)ns), *var = malloc(sizeof(double) * (size_t)nb * no);
  if (!xp || !yp || !gp || !var) {
    free(xp); free(yp); free(gp); free(var);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  for (int k = 0; k < nb; k++)
    for (int i = 0; i < no; i++) {
      double dd = 0;
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) {
        double s = g->scale ? g->scale[k * ns + op->col[e]] : 1.0;
        dd += op->val[e] * op->val[e] * s * s;
      }
      var[k * no + i] = g->noise_std[i] * g->noise_std[i] + g->gamma * ratio2 * dd;
    }
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * D, *vb = v + (size_t)b * D;
    float *cb = cot + (size_t)b * D;
    for (int k = 0; k < nb; k++) {
      for (int j = 0; j < ns; j++) {
        int idx = k * ns + j;
        double xh = (mu * xb[idx] - sg * vb[idx]) / den;
        xp[j] = (g->mean ? g->mean[idx] : 0.0) + (g->scale ? g->scale[idx] : 1.0) * xh;
      }
      obs_apply(op, xp, yp, 1);
      const double *yk = g->y + (size_t)k * no;
      for (int i = 0; i < no; i++) yp[i] = isnan(yk[i]) ? 0.0 : (yk[i] - yp[i]) / var[k * no + i];
      memset(gp, 0, sizeof(double) * (size_t)ns);
      obs_apply_adjoint(op, yp, gp, 1);
      for (int j = 0; j < ns; j++) cb[k * ns + j] = (float)(gp[j] * (g->scale ? g->scale[k * ns + j] : 1.0));
      for (int i = 0; i < no; i++) res[((size_t)b * nb + k) * no + i] = (float)yp[i];
    }
  }
  free(xp); free(yp); free(gp); free(var);
  /* grad log p wrt x_tau = (d x_hat/d x_tau)^T cot = (mu cot - sigma J_v^T cot) / den */
  if ((rc = d->v_vjp(d->ctx, x, tau, B, v, cot, grad, err))) return rc;
  for (size_t i = 0; i < n; i++) {
    double score_y = (mu * cot[i] - sg * grad[i]) / den;
    double e = (sg * x[i] + mu * v[i]) / den;
    eps[i] = (float)(e - sg * score_y);
    if (x_hat) x_hat[i] = (float)((mu * x[i] - sg * v[i]) / den);
  }
  return SB_OK;
}

int diff_sample(const diff_denoiser *d, const diff_guidance *g, const diff_sampler_config *c, int B,
                uint64_t seed, uint64_t stream0, float *x, const sb_cancel *cancel,
                void (*progress)(void *ctx, double frac), void *progress_ctx, sb_error *err) {
  if (c->steps < 1 || c->steps > 100000 || c->corrections < 0 || c->corrections > 100 || !(c->tau_l >= 0))
    return sb_fail(err, SB_EINVAL, "sampler: steps must be 1..100000, corrections 0..100, tau_l >= 0");
  if (g && (!d->v_vjp || g->n_blocks * g->op->state_dim != d->dim))
    return sb_fail(err, SB_EINVAL, "sampler: guidance needs a denoiser with a VJP over %d values",
                   g->n_blocks * g->op->state_dim);
  const size_t n = (size_t)B * d->dim;
  const int D = d->dim;
  float *eps = malloc(sizeof(float) * n), *scratch = malloc(sizeof(float) * diff_eps_scratch(d, g, B));
  rng *streams = malloc(sizeof(rng) * (size_t)B);
  int rc = SB_OK;
  if (!eps || !scratch || !streams) {
    rc = sb_fail(err, SB_ENOMEM, "sampler: out of memory for %d samples", B);
    goto done;
  }
  for (int b = 0; b < B; b++) {
    rng_init(&streams[b], seed, stream0 + (uint64_t)b);
    for (int j = 0; j < D; j++) x[(size_t)b * D + j] = (float)(diff_sigma(1.0) * rng_normal(&streams[b]));
  }
  const int K = c->steps;
  for (int i = 0; i < K; i++) {
    if (sb_cancelled(cancel)) {
      rc = sb_fail(err, SB_ECANCEL, "cancelled");
      goto done;
    }
    double t0 = 1.0 - (double)i / K, t1 = 1.0 - (double)(i + 1) / K;
    /* predictor (DDIM): x <- r x + (sigma1 - r sigma0) eps */
    if ((rc = diff_eps(d, g, x, t0, B, eps, NULL, scratch, err))) goto done;
    double r = diff_mu(t1) / diff_mu(t0), s0 = diff_sigma(t0), s1 = diff_sigma(t1);
    for (size_t k = 0; k < n; k++) x[k] = (float)(r * x[k] + (s1 - r * s0) * eps[k]);
    /* corrector (Langevin) at t1, skipped at the last step (x_hat is returned) */
    if (i + 1 < K) {
      for (int cc = 0; cc < c->corrections; cc++) {
        if ((rc = diff_eps(d, g, x, t1, B, eps, NULL, scratch, err))) goto done;
        /* step size from the mean squared eps over the whole batch (SDA uses
         * the per-sample mean, which is noisy for small states and can blow
         * the step up; all samples of a call share the conditioning) */
        double m2 = 0;
        for (size_t k = 0; k < n; k++) m2 += (double)eps[k] * eps[k];
        m2 /= (double)n;
        double delta = c->tau_l / (m2 > 1e-6 ? m2 : 1e-6);
        double sq = sqrt(2 * delta);
        for (int b = 0; b < B; b++) {
          float *xb = x + (size_t)b * D, *eb = eps + (size_t)b * D;
          for (int j = 0; j < D; j++) xb[j] = (float)(xb[j] - (delta * eb[j] + sq * rng_normal(&streams[b])) * s1);
        }
      }
    }
    if (progress) progress(progress_ctx, (double)(i + 1) / K);
  }
  /* return the denoised estimate x_hat at tau = 0 */
  if ((rc = diff_eps(d, g, x, 0.0, B, eps, x, scratch, err))) goto done;
  for (size_t k = 0; k < n; k++)
    if (!isfinite(x[k])) {
      rc = sb_fail(err, SB_ENUMERIC, "sampler produced a non-finite value");
      break;
    }
done:
  free(eps);
  free(scratch);
  free(streams);
  return rc;
}
