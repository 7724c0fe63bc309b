#include "diff/diff.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diff/diff_mmps.h"
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
  c->method = DIFF_PC;
  c->schedule = DIFF_SCHED_LAMBDA;
  c->rho = 7.0;
  c->sigma_max = 0.0;
  c->guidance = DIFF_GUIDE_SDA;
  c->guidance_iters = 1;
  c->gamma_floor = 0;
  c->start = 1.0;
}

void diff_method_defaults(diff_sampler_config *c, int method) {
  c->method = method;
  c->steps = method == DIFF_PC ? 64 : 16;
  c->schedule = method == DIFF_HEUN ? DIFF_SCHED_EDM : DIFF_SCHED_LAMBDA;
  c->rho = 7.0;
  c->sigma_max = method == DIFF_HEUN ? 80.0 : 0.0;
}

static const char *const method_names[DIFF_N_METHODS] = {"pc", "dpm2m", "dpm2m-sde", "heun"};
static const char *const schedule_names[DIFF_N_SCHEDULES] = {"lambda", "edm", "tau"};
static const char *const guidance_names[DIFF_N_GUIDANCES] = {"sda", "mmps", "free"};

const char *diff_guidance_name(int guidance) {
  return guidance >= 0 && guidance < DIFF_N_GUIDANCES ? guidance_names[guidance] : "?";
}

int diff_guidance_parse(const char *name) {
  for (int i = 0; name && i < DIFF_N_GUIDANCES; i++)
    if (!strcmp(name, guidance_names[i])) return i;
  return -1;
}

const char *diff_method_name(int method) {
  return method >= 0 && method < DIFF_N_METHODS ? method_names[method] : "?";
}

int diff_method_parse(const char *name) {
  for (int i = 0; name && i < DIFF_N_METHODS; i++)
    if (!strcmp(name, method_names[i])) return i;
  return -1;
}

const char *diff_schedule_name(int schedule) {
  return schedule >= 0 && schedule < DIFF_N_SCHEDULES ? schedule_names[schedule] : "?";
}

int diff_schedule_parse(const char *name) {
  for (int i = 0; name && i < DIFF_N_SCHEDULES; i++)
    if (!strcmp(name, schedule_names[i])) return i;
  return -1;
}

int diff_evaluations(const diff_sampler_config *c) {
  if (c->method == DIFF_PC) return c->steps + c->corrections * (c->steps - 1) + 1;
  return c->steps;
}

double diff_lambda(double tau) { return log(diff_mu(tau) / diff_sigma(tau)); }

/* sigma/mu = s  <=>  mu^2 (1 + s^2) = 1 + eta^2 (since mu^2 + sigma^2 = 1 + eta^2) */
double diff_tau_of_ratio(double s) {
  double mu = sqrt((1 + DIFF_ETA * DIFF_ETA) / (1 + s * s));
  double c = sqrt(mu > 1 ? 1 : mu);
  double tau = acos(c) / acos(sqrt(DIFF_ETA));
  return tau < 0 ? 0 : tau > 1 ? 1 : tau;
}

void diff_grid(const diff_sampler_config *c, int n, double *tau) {
  const int schedule = c->schedule;
  const double rho = c->rho;
  tau[0] = c->sigma_max > 0 && c->sigma_max < 1 / DIFF_ETA ? diff_tau_of_ratio(c->sigma_max) : 1.0;
  const double l0 = diff_lambda(tau[0]), l1 = diff_lambda(0.0);
  const double a = pow(exp(-l0), 1 / rho), b = pow(exp(-l1), 1 / rho);
  for (int i = 1; i < n; i++) {
    double f = (double)i / n;
    if (schedule == DIFF_SCHED_TAU) tau[i] = tau[0] * (1.0 - f);
    else if (schedule == DIFF_SCHED_EDM) tau[i] = diff_tau_of_ratio(pow(a + f * (b - a), rho));
    else tau[i] = diff_tau_of_ratio(exp(-(l0 + f * (l1 - l0))));
  }
  tau[n] = 0.0;
}

size_t diff_eps_scratch(const diff_denoiser *d, const diff_guidance *g, int B) {
  size_t n = (size_t)B * d->dim;
  if (!g) return n; /* v */
  return 3 * n; /* v, cot, grad */
}

/* The cotangent of the guidance for a group of samples (diff_cot_fn): per
 * sample, cot = S A^T w with residual weights w = (y - A x_hat_phys) / var,
 * the gradient of log N(y | A x_hat_phys, .) with respect to x_hat. Each
 * sample has its own double scratch, so groups may run on several threads.
 * A nonlinear operator y = f(A x) is linearized at x_hat_phys (J = f' A):
 * w = f' (y - f(A x_hat_phys)) / (sy^2 + f'^2 pvar), pvar the linear
 * variance's Tweedie part; f' = 1 gives the linear case. */
typedef struct cot_job {
  const diff_guidance *g;
  const float *x, *v;
  float *cot;
  const double *var; /* [n_blocks][n_obs] */
  double *dscr;      /* [B][2 ns + 2 no] */
  int D;
  double mu, sg, den;
  const diff_bg_inv *bgi; /* the background's C^{-1} at this tau, or NULL */
  double *bscr;           /* [B][2 ns + n_members] when bgi */
  double ratio2;          /* (sigma/mu)^2 */
  double *yscr;           /* [B][2 nb ns + diff_dyn_scratch] when g->dyn */
} cot_job;

/* The dynamics term of sample b (diff_dyn.h): cot += S d/dx_hat_phys of
 * sum_k log N(x_hat_{k+1} | M(x_hat_k), Q_k) over the whole window. */
static void cot_dynamics(const cot_job *j, int b) {
  const diff_guidance *g = j->g;
  const int D = j->D, nb = g->n_blocks, n = nb * g->op->state_dim; /* n <= D */
  const size_t per = 2 * (size_t)D + diff_dyn_scratch(g->dyn, nb);
  double *xp = j->yscr + (size_t)b * per, *gr = xp + D, *scr = gr + D;
  const float *xb = j->x + (size_t)b * D, *vb = j->v + (size_t)b * D;
  for (int i = 0; i < n; i++) {
    double xh = (j->mu * xb[i] - j->sg * vb[i]) / j->den;
    xp[i] = (g->mean ? g->mean[i] : 0.0) + (g->scale ? g->scale[i] : 1.0) * xh;
    gr[i] = 0.0;
  }
  diff_dyn_grad(g->dyn, nb, xp, g->scale, j->ratio2, gr, scr);
  float *cb = j->cot + (size_t)b * D;
  for (int i = 0; i < n; i++) cb[i] += (float)(gr[i] * (g->scale ? g->scale[i] : 1.0));
}

/* The background term of sample b: cot[0..ns) += S C^{-1} (m_b - x_hat_1),
 * the gradient of log N(m_b | x_hat_1, C) (diff_bg.h) with respect to the
 * standardized x_hat of the first block. */
static void cot_background(const cot_job *j, int b) {
  const diff_guidance *g = j->g;
  const diff_background *bg = g->background;
  const int ns = bg->dim;
  const size_t off = (size_t)g->background_block * ns; /* the block's first component */
  double *r = j->bscr + (size_t)b * (2 * ns + bg->n_members), *out = r + ns, *tmp = out + ns;
  const float *xb = j->x + (size_t)b * j->D + off, *vb = j->v + (size_t)b * j->D + off;
  const double *gm = g->mean ? g->mean + off : NULL, *gs = g->scale ? g->scale + off : NULL;
  for (int i = 0; i < ns; i++) {
    double xh = (j->mu * xb[i] - j->sg * vb[i]) / j->den;
    r[i] = bg->mean[i] - ((gm ? gm[i] : 0.0) + (gs ? gs[i] : 1.0) * xh);
  }
  diff_bg_solve(j->bgi, r, out, tmp);
  float *cb = j->cot + (size_t)b * j->D + off;
  for (int i = 0; i < ns; i++) cb[i] += (float)(out[i] * (gs ? gs[i] : 1.0));
}

/* The background's C^{-1} at a noise level with (sigma/mu)^2 = ratio2: the
 * Tweedie covariance gamma ratio2 S^2 of the background's block is added to its
 * diagonal. Also allocates the per-sample scratch of cot_background. */
static int background_prepare(const diff_guidance *g, double ratio2, int B, diff_bg_inv *inv, double **bscr,
                              sb_error *err) {
  const diff_background *bg = g->background;
  const int ns = bg->dim;
  double *extra = malloc(sizeof(double) * (size_t)ns);
  *bscr = malloc(sizeof(double) * (size_t)B * (2 * (size_t)ns + (size_t)bg->n_members));
  if (!extra || !*bscr) {
    free(extra);
    free(*bscr);
    *bscr = NULL;
    return sb_fail(err, SB_ENOMEM, "out of memory for the background of %d samples", B);
  }
  const double gamma = bg->gamma > 0 ? bg->gamma : g->gamma;
  const size_t off = (size_t)g->background_block * ns;
  for (int i = 0; i < ns; i++) {
    double s = g->scale ? g->scale[off + i] : 1.0;
    extra[i] = gamma * ratio2 * s * s;
  }
  int rc = diff_bg_inv_init(inv, bg, extra, err);
  free(extra);
  if (rc) {
    free(*bscr);
    *bscr = NULL;
  }
  return rc;
}

/* w = f' (y - f) / (sy^2 + f'^2 (var - sy^2)) in place of f (yp), with
 * dp = f' and var the linear variance sy^2 + pvar; 0 where y is missing. */
static void nonlinear_weights(double *yp, const double *dp, const double *yk, const double *sy, const double *var,
                              int no) {
  for (int i = 0; i < no; i++) {
    double s2 = sy[i] * sy[i], d = dp[i];
    yp[i] = isnan(yk[i]) ? 0.0 : d * (yk[i] - yp[i]) / (s2 + d * d * (var[i] - s2));
  }
}

static void cot_rows(void *ctx, int b0, int b1) {
  const cot_job *j = ctx;
  const diff_guidance *g = j->g;
  const obs_op *op = g->op;
  const int D = j->D, ns = op->state_dim, no = op->n_obs, nb = g->n_blocks;
  const double mu = j->mu, sg = j->sg, den = j->den;
  for (int b = b0; b < b1; b++) {
    double *xp = j->dscr + (size_t)b * (2 * ns + 2 * no), *gp = xp + ns, *yp = gp + ns, *dp = yp + no;
    const float *xb = j->x + (size_t)b * D, *vb = j->v + (size_t)b * D;
    float *cb = j->cot + (size_t)b * D;
    for (int k = 0; k < nb; k++) {
      for (int i = 0; i < ns; i++) {
        int idx = k * ns + i;
        double xh = (mu * xb[idx] - sg * vb[idx]) / den;
        xp[i] = (g->mean ? g->mean[idx] : 0.0) + (g->scale ? g->scale[idx] : 1.0) * xh;
      }
      const double *yk = g->y + (size_t)k * no;
      if (obs_is_linear(op)) {
        obs_apply(op, xp, yp, 1);
        for (int i = 0; i < no; i++) yp[i] = isnan(yk[i]) ? 0.0 : (yk[i] - yp[i]) / j->var[k * no + i];
      } else {
        obs_apply_deriv(op, xp, yp, dp, 1);
        nonlinear_weights(yp, dp, yk, g->noise_std, j->var + (size_t)k * no, no);
      }
      memset(gp, 0, sizeof(double) * (size_t)ns);
      obs_apply_adjoint(op, yp, gp, 1);
      for (int i = 0; i < ns; i++) cb[k * ns + i] = (float)(gp[i] * (g->scale ? g->scale[k * ns + i] : 1.0));
    }
    if (j->bgi) cot_background(j, b);
    if (j->yscr) cot_dynamics(j, b);
  }
}

/* The prior variance of observation i of block k in physical units,
 * sum_j A_ij^2 S_j^2 (diag(A S^2 A^T)): the Tweedie term's scale in SDA's
 * likelihood and the denominator of diff_gamma_floor's rho. */
static double obs_prior_var(const diff_guidance *g, int k, int i) {
  const obs_op *op = g->op;
  double dd = 0;
  for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) {
    double s = g->scale ? g->scale[k * op->state_dim + op->col[e]] : 1.0;
    dd += op->val[e] * op->val[e] * s * s;
  }
  return dd;
}

/* eps_post, the prior's x_hat and the guided x_hat (each may be NULL) */
static int denoise(const diff_denoiser *d, const diff_guidance *g, const float *x, double tau, int B, float *eps,
                   float *x_hat, float *x_post, float *scratch, sb_error *err) {
  const size_t n = (size_t)B * d->dim;
  const double mu = diff_mu(tau), sg = diff_sigma(tau), den = mu * mu + sg * sg;
  float *v = scratch;
  int rc;
  if (!g) {
    if ((rc = d->v(d->ctx, x, tau, B, v, err))) return rc;
    for (size_t i = 0; i < n; i++) {
      if (eps) eps[i] = (float)((sg * x[i] + mu * v[i]) / den);
      float xh = (float)((mu * x[i] - sg * v[i]) / den);
      if (x_hat) x_hat[i] = xh;
      if (x_post) x_post[i] = xh;
    }
    return SB_OK;
  }
  if (g->mmps_iters > 0) return diff_mmps_denoise(d, g, x, tau, B, eps, x_hat, x_post, scratch, err);
  /* guided: the VJP's forward gives v, from which the cotangent (it needs
   * x_hat) is formed before the backward pass of the same samples */
  const obs_op *op = g->op;
  const int ns = op->state_dim, no = op->n_obs, nb = g->n_blocks;
  float *cot = scratch + n, *grad = scratch + 2 * n;
  /* var = sy^2 + gamma (sigma/mu)^2 diag(A S^2 A^T) per block and observation */
  const double ratio2 = (sg / mu) * (sg / mu);
  double *var = malloc(sizeof(double) * ((size_t)nb * no + (size_t)B * (2 * ns + 2 * no)));
  if (!var) return sb_fail(err, SB_ENOMEM, "out of memory");
  for (int k = 0; k < nb; k++)
    for (int i = 0; i < no; i++)
      var[k * no + i] = g->noise_std[i] * g->noise_std[i] + g->gamma * ratio2 * obs_prior_var(g, k, i);
  cot_job job = {g, x, v, cot, var, var + (size_t)nb * no, d->dim, mu, sg, den, NULL, NULL, ratio2, NULL};
  diff_bg_inv bgi = {0};
  if (g->background) {
    if ((rc = background_prepare(g, ratio2, B, &bgi, &job.bscr, err))) {
      free(var);
      return rc;
    }
    job.bgi = &bgi;
  }
  if (g->dyn && nb > 1) {
    job.yscr = malloc(sizeof(double) * (size_t)B * (2 * (size_t)d->dim + diff_dyn_scratch(g->dyn, nb)));
    if (!job.yscr) {
      free(var);
      free(job.bscr);
      diff_bg_inv_free(&bgi);
      return sb_fail(err, SB_ENOMEM, "out of memory for the dynamics term of %d samples", B);
    }
  }
  if (g->jacobian_free) { /* one forward pass; the cotangent alone is the gradient (d v_hat/d x_tau = 0) */
    if ((rc = d->v(d->ctx, x, tau, B, v, err)) == SB_OK) cot_rows(&job, 0, B);
  } else {
    rc = d->v_vjp(d->ctx, x, tau, B, v, cot_rows, &job, cot, grad, err);
  }
  free(var);
  free(job.bscr);
  free(job.yscr);
  diff_bg_inv_free(&bgi);
  if (rc) return rc;
  /* grad log p wrt x_tau = (d x_hat/d x_tau)^T cot = (mu cot - sigma J_v^T cot) / den;
   * eps_post = eps_hat - sigma grad, x_hat_post = x_hat + (sigma^2/mu) grad */
  for (size_t i = 0; i < n; i++) {
    double score_y = (mu * cot[i] - (g->jacobian_free ? 0.0 : sg * grad[i])) / den;
    double e = (sg * x[i] + mu * v[i]) / den;
    double xh = (mu * x[i] - sg * v[i]) / den;
    if (x_hat) x_hat[i] = (float)xh;
    if (x_post) x_post[i] = (float)(xh + sg * sg / mu * score_y);
    if (!eps) continue;
    eps[i] = (float)(e - sg * score_y);
  }
  return SB_OK;
}

int diff_eps(const diff_denoiser *d, const diff_guidance *g, const float *x, double tau, int B, float *eps,
             float *x_hat, float *scratch, sb_error *err) {
  return denoise(d, g, x, tau, B, eps, x_hat, NULL, scratch, err);
}

int diff_predict(const diff_denoiser *d, const diff_guidance *g, const float *x, double tau, int B, float *x_hat,
                 float *eps, float *scratch, sb_error *err) {
  return denoise(d, g, x, tau, B, eps, NULL, x_hat, scratch, err);
}

double diff_dpm2m_step(float *x, const float *xh, const float *xh_prev, double h_prev, double tau0, double tau1,
                       size_t n) {
  const double h = diff_lambda(tau1) - diff_lambda(tau0);
  const double a = diff_sigma(tau1) / diff_sigma(tau0), b = -diff_mu(tau1) * expm1(-h);
  if (!xh_prev || !(h_prev > 0)) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(a * x[i] + b * xh[i]);
  } else {
    const double r = h_prev / h, c1 = 1 + 1 / (2 * r), c2 = 1 / (2 * r);
    for (size_t i = 0; i < n; i++) x[i] = (float)(a * x[i] + b * (c1 * xh[i] - c2 * xh_prev[i]));
  }
  return h;
}

/* What every sampler of one diff_sample call shares. */
typedef struct run {
  const diff_denoiser *d;
  const diff_guidance *g;
  const diff_sampler_config *c;
  int B, D;
  size_t n;
  float *x, *scratch;
  rng *streams;
  const sb_cancel *cancel;
  void (*progress)(void *ctx, double frac);
  void *progress_ctx;
  int evals, done; /* network evaluations planned and made (progress) */
} run;

static int tick(run *r, sb_error *err) {
  r->done++;
  if (r->progress) r->progress(r->progress_ctx, (double)r->done / r->evals);
  return sb_cancelled(r->cancel) ? sb_fail(err, SB_ECANCEL, "cancelled") : SB_OK;
}

/* SDA's predictor-corrector: K DDIM predictor steps uniform in tau, C
 * Langevin corrector steps after each but the last, x_hat at tau = 0. */
static int sample_pc(run *q, sb_error *err) {
  const diff_denoiser *d = q->d;
  const diff_guidance *g = q->g;
  const size_t n = q->n;
  const int D = q->D, B = q->B;
  float *x = q->x, *scratch = q->scratch;
  float *eps = malloc(sizeof(float) * n);
  if (!eps) return sb_fail(err, SB_ENOMEM, "sampler: out of memory for %d samples", B);
  int rc = SB_OK;
  const diff_sampler_config *c = q->c;
  const int K = c->steps;
  for (int i = 0; i < K; i++) {
    if (sb_cancelled(q->cancel)) {
      rc = sb_fail(err, SB_ECANCEL, "cancelled");
      goto done;
    }
    double t0 = c->start * (1.0 - (double)i / K), t1 = c->start * (1.0 - (double)(i + 1) / K);
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
          for (int j = 0; j < D; j++) xb[j] = (float)(xb[j] - (delta * eb[j] + sq * rng_normal(&q->streams[b])) * s1);
        }
      }
    }
    if (q->progress) q->progress(q->progress_ctx, (double)(i + 1) / K);
  }
  /* return the denoised estimate x_hat at tau = 0 */
  rc = diff_eps(d, g, x, 0.0, B, eps, x, scratch, err);
done:
  free(eps);
  return rc;
}

/* DPM-Solver++(2M), deterministic or SDE: K steps on the grid, one guided
 * x_hat each; ends at tau = 0 (sigma = eta), returning x there. */
static int sample_dpm(run *q, int sde, sb_error *err) {
  const int K = q->c->steps, D = q->D, B = q->B;
  const size_t n = q->n;
  float *x = q->x;
  double *tau = malloc(sizeof(double) * (size_t)(K + 1));
  float *xh = malloc(sizeof(float) * n), *xh_prev = malloc(sizeof(float) * n);
  int rc = SB_OK;
  if (!tau || !xh || !xh_prev) {
    rc = sb_fail(err, SB_ENOMEM, "sampler: out of memory for %d samples", B);
    goto done;
  }
  diff_grid(q->c, K, tau);
  for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] * diff_sigma(tau[0]));
  double h_prev = 0;
  for (int i = 0; i < K; i++) {
    if ((rc = diff_predict(q->d, q->g, x, tau[i], B, xh, NULL, q->scratch, err))) goto done;
    if (!sde) {
      h_prev = diff_dpm2m_step(x, xh, i ? xh_prev : NULL, h_prev, tau[i], tau[i + 1], n);
    } else {
      /* x <- (s1/s0) e^{-h} x + mu1 (1 - e^{-2h}) D + s1 sqrt(1 - e^{-2h}) z */
      const double h = diff_lambda(tau[i + 1]) - diff_lambda(tau[i]);
      const double s0 = diff_sigma(tau[i]), s1 = diff_sigma(tau[i + 1]), mu1 = diff_mu(tau[i + 1]);
      const double a = s1 / s0 * exp(-h), b = -mu1 * expm1(-2 * h), sn = s1 * sqrt(-expm1(-2 * h));
      const double c2 = i ? 1 / (2 * (h_prev / h)) : 0, c1 = 1 + c2;
      for (int bb = 0; bb < B; bb++)
        for (int j = 0; j < D; j++) {
          size_t k = (size_t)bb * D + j;
          double dk = i ? c1 * xh[k] - c2 * xh_prev[k] : xh[k];
          x[k] = (float)(a * x[k] + b * dk + sn * rng_normal(&q->streams[bb]));
        }
      h_prev = h;
    }
    float *t = xh_prev;
    xh_prev = xh, xh = t;
    if ((rc = tick(q, err))) goto done;
  }
done:
  free(tau);
  free(xh);
  free(xh_prev);
  return rc;
}

/* EDM's Heun on dz/ds = (z - x_hat)/s, z = x/mu, s = sigma/mu, over M
 * intervals of the grid: an Euler step and its trapezoidal correction on
 * each, except the last interval (EDM's Euler step to the end: a
 * correction there would evaluate the network at tau = 0, where its v_hat
 * is least accurate and is divided by sigma/mu = eta) and, when K is even,
 * the first (at sigma_max, where x_hat is nearly constant). M = (K + 1)/2
 * for odd K, K/2 + 1 for even K: K evaluations. */
static int sample_heun(run *q, sb_error *err) {
  const int K = q->c->steps, M = K % 2 ? (K + 1) / 2 : K / 2 + 1, B = q->B;
  const size_t n = q->n;
  float *x = q->x;
  double *tau = malloc(sizeof(double) * (size_t)(M + 1));
  double *z = malloc(sizeof(double) * n), *dz = malloc(sizeof(double) * n);
  float *xh = malloc(sizeof(float) * n);
  int rc = SB_OK;
  if (!tau || !z || !dz || !xh) {
    rc = sb_fail(err, SB_ENOMEM, "sampler: out of memory for %d samples", B);
    goto done;
  }
  diff_grid(q->c, M, tau);
  const double mu0 = diff_mu(tau[0]), sg0 = diff_sigma(tau[0]);
  for (size_t k = 0; k < n; k++) {
    z[k] = (double)x[k] * sg0 / mu0;
    x[k] = (float)(mu0 * z[k]);
  }
  for (int i = 0; i < M; i++) {
    const double t0 = tau[i], t1 = tau[i + 1];
    const double m0 = diff_mu(t0), m1 = diff_mu(t1), s0 = diff_sigma(t0) / m0, s1 = diff_sigma(t1) / m1;
    const int euler_only = i == M - 1 || (i == 0 && K % 2 == 0);
    /* Euler: z1 = z + (s1 - s0) d0, d0 = (z - x_hat)/s0; x holds mu0 z */
    if ((rc = diff_predict(q->d, q->g, x, t0, B, xh, NULL, q->scratch, err))) goto done;
    for (size_t k = 0; k < n; k++) {
      dz[k] = (z[k] - xh[k]) / s0;
      x[k] = (float)(m1 * (z[k] + (s1 - s0) * dz[k]));
    }
    if ((rc = tick(q, err))) goto done;
    if (euler_only) {
      for (size_t k = 0; k < n; k++) z[k] += (s1 - s0) * dz[k];
      continue;
    }
    /* Heun: z1 = z + (s1 - s0) (d0 + d1)/2, d1 = (z1_euler - x_hat(z1_euler))/s1 */
    if ((rc = diff_predict(q->d, q->g, x, t1, B, xh, NULL, q->scratch, err))) goto done;
    for (size_t k = 0; k < n; k++) {
      double d1 = (z[k] + (s1 - s0) * dz[k] - xh[k]) / s1;
      z[k] += (s1 - s0) * 0.5 * (dz[k] + d1);
      x[k] = (float)(m1 * z[k]);
    }
    if ((rc = tick(q, err))) goto done;
  }
  for (size_t k = 0; k < n; k++) x[k] = (float)(diff_mu(0.0) * z[k]);
done:
  free(tau);
  free(z);
  free(dz);
  free(xh);
  return rc;
}

double diff_gamma_floor(const diff_guidance *g, const diff_sampler_config *c) {
  if (!g || !c->gamma_floor || c->guidance == DIFF_GUIDE_MMPS || c->method != DIFF_PC || c->steps < 1) return 0.0;
  double rho = INFINITY;
  for (int k = 0; k < g->n_blocks; k++)
    for (int i = 0; i < g->op->n_obs; i++) {
      const double dd = obs_prior_var(g, k, i), r = g->noise_std[i] * g->noise_std[i] / dd;
      if (dd > 0 && r < rho) rho = r;
    }
  if (!(rho < INFINITY)) return 0.0;
  const double tau1 = c->start / c->steps;
  const double r1 = (diff_sigma(tau1) / diff_mu(tau1)) * (diff_sigma(tau1) / diff_mu(tau1));
  const double f = r1 / (DIFF_GAMMA_FLOOR_C2 * rho);
  return f < 1.0 ? f : 1.0;
}

int diff_sample(const diff_denoiser *d, const diff_guidance *g, const diff_sampler_config *c, int B,
                uint64_t seed, uint64_t stream0, float *x, const sb_cancel *cancel,
                void (*progress)(void *ctx, double frac), void *progress_ctx, sb_error *err) {
  if (c->steps < 1 || c->steps > 100000 || c->corrections < 0 || c->corrections > 100 || !(c->tau_l >= 0))
    return sb_fail(err, SB_EINVAL, "sampler: steps must be 1..100000, corrections 0..100, tau_l >= 0");
  if (c->method < 0 || c->method >= DIFF_N_METHODS || c->schedule < 0 || c->schedule >= DIFF_N_SCHEDULES ||
      !(c->rho > 0 && c->rho <= 100) || !(c->sigma_max >= 0))
    return sb_fail(err, SB_EINVAL, "sampler: method must be one of " DIFF_METHOD_NAMES ", schedule one of "
                   DIFF_SCHEDULE_NAMES ", rho in (0, 100], sigma_max >= 0");
  if (g && ((!d->v_vjp && c->guidance != DIFF_GUIDE_FREE) || g->n_blocks * g->op->state_dim != d->dim))
    return sb_fail(err, SB_EINVAL, "sampler: guidance needs a denoiser %sover %d values",
                   c->guidance != DIFF_GUIDE_FREE ? "with a VJP " : "", g->n_blocks * g->op->state_dim);
  if (g && g->background && (g->background_block < 0 || g->background_block >= g->n_blocks))
    return sb_fail(err, SB_EINVAL, "sampler: background on block %d of a window of %d", g->background_block,
                   g->n_blocks);
  if (g && g->background && (g->background->dim != g->op->state_dim || g->background->n_members < 0))
    return sb_fail(err, SB_EINVAL, "sampler: a background of %d values for states of %d", g->background->dim,
                   g->op->state_dim);
  if (!(c->start > 0 && c->start <= 1) || (c->start < 1 && c->method != DIFF_PC))
    return sb_fail(err, SB_EINVAL, "sampler: start must be in (0, 1], and below 1 (a warm start) with pc only");
  if (c->guidance < 0 || c->guidance >= DIFF_N_GUIDANCES || c->guidance_iters < 1 || c->guidance_iters > 64)
    return sb_fail(err, SB_EINVAL, "sampler: guidance must be one of " DIFF_GUIDANCE_NAMES ", guidance_iters 1..64");
  if (g && g->dyn && (!g->dyn->s || !g->dyn->s->step_vjp || g->dyn->s->dim != g->op->state_dim ||
                     !(g->dyn->q > 0) || !(g->dyn->gamma >= 0)))
    return sb_fail(err, SB_EINVAL, "sampler: a dynamics term needs a simulator with an adjoint over states of %d values, "
                   "q > 0 and gamma >= 0", g->op->state_dim);
  if (g && g->dyn && c->guidance == DIFF_GUIDE_MMPS)
    return sb_fail(err, SB_EINVAL, "sampler: the dynamics term works with SDA's likelihood (guidance sda or free), not %s",
                   diff_guidance_name(c->guidance));
  diff_guidance gl;
  if (g) { /* the config says how the likelihood guides */
    gl = *g;
    gl.mmps_iters = c->guidance == DIFF_GUIDE_MMPS ? c->guidance_iters : 0;
    gl.jacobian_free = c->guidance == DIFF_GUIDE_FREE;
    const double floor = diff_gamma_floor(g, c);
    if (floor > gl.gamma) gl.gamma = floor;
    g = &gl;
  }
  run q = {d, g, c, B, d->dim, (size_t)B * d->dim, x, NULL, NULL, cancel, progress, progress_ctx,
           diff_evaluations(c), 0};
  const int D = d->dim;
  q.scratch = malloc(sizeof(float) * diff_eps_scratch(d, g, B));
  q.streams = malloc(sizeof(rng) * (size_t)B);
  int rc = SB_OK;
  if (!q.scratch || !q.streams) {
    rc = sb_fail(err, SB_ENOMEM, "sampler: out of memory for %d samples", B);
    goto done;
  }
  const double mu0 = c->start < 1 ? diff_mu(c->start) : 0.0, s0 = diff_sigma(c->start);
  for (int b = 0; b < B; b++) {
    rng_init(&q.streams[b], seed, stream0 + (uint64_t)b);
    float *xb = x + (size_t)b * D;
    for (int j = 0; j < D; j++) xb[j] = (float)((c->start < 1 ? mu0 * xb[j] : 0.0) + s0 * rng_normal(&q.streams[b]));
  }
  if (c->method == DIFF_PC) rc = sample_pc(&q, err);
  else if (c->method == DIFF_HEUN) rc = sample_heun(&q, err);
  else rc = sample_dpm(&q, c->method == DIFF_DPM2M_SDE, err);
  /* what to change when the guided sampler blows up: its gammas */
  const char *hint = !g || g->mmps_iters ? ""
                     : g->dyn ? " (a tight dynamics term or precise observations need a larger gamma: params "
                                "dynamics_gamma, gamma, or gamma_floor 1 with pc; docs/samplers.md)"
                              : " (observations much more precise than the prior need a larger gamma: "
                                "params gamma, or gamma_floor 1 with pc; docs/samplers.md)";
  for (size_t k = 0; !rc && k < q.n; k++) {
    if (!isfinite(x[k])) rc = sb_fail(err, SB_ENUMERIC, "sampler produced a non-finite value%s", hint);
    else if (fabs(x[k]) > DIFF_DIVERGED)
      rc = sb_fail(err, SB_ENUMERIC,
                   "the sampler diverged: a sample is %.3g prior standard deviations from the prior mean%s", fabs(x[k]),
                   hint);
  }
done:
  free(q.scratch);
  free(q.streams);
  return rc;
}
