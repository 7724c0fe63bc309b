/* diff_mmps.c: moment-matching guidance (see diff_mmps.h). Vectors in
 * observation space hold, per sample, the n_blocks x n_obs observations
 * (0 where missing) and then the background's dim values. */
#include "diff/diff_mmps.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct mm {
  const diff_guidance *g;
  const float *x, *v;
  float *cot;
  int D, ns, no, nb, ny, nbg, m; /* ny = nb no observations, nbg background values, m = ny + nbg */
  size_t bg_off;                 /* the background block's first component */
  double mu, sg, den, vt, gt;    /* vt: the preconditioner's variance, gt = sigma^2/mu */
  const double *dd;              /* [ny] diag(A S^2 A^T) per block and observation */
  const diff_bg_inv *pre;        /* the background's preconditioner, or NULL */
  double *work;                  /* [B][stride] */
  size_t stride;
} mm;

/* sample b's vectors: r, z, p, q [m], f' [ny], rz, then scratch: xp [ns], yp [no], tmp [ns + members] */
static double *vec_r(const mm *c, int b) { return c->work + (size_t)b * c->stride; }
static double *vec_z(const mm *c, int b) { return vec_r(c, b) + c->m; }
static double *vec_p(const mm *c, int b) { return vec_r(c, b) + 2 * (size_t)c->m; }
static double *vec_q(const mm *c, int b) { return vec_r(c, b) + 3 * (size_t)c->m; }
static double *vec_fp(const mm *c, int b) { return vec_r(c, b) + 4 * (size_t)c->m; }
static double *vec_rz(const mm *c, int b) { return vec_fp(c, b) + c->ny; }
static double *vec_xp(const mm *c, int b) { return vec_rz(c, b) + 1; }

static double gscale(const diff_guidance *g, size_t i) { return g->scale ? g->scale[i] : 1.0; }
static double gmean(const diff_guidance *g, size_t i) { return g->mean ? g->mean[i] : 0.0; }
static int missing(const mm *c, int k) { return isnan(c->g->y[k]); }

/* z = P r: (R + vt A~ A~^T)^-1 diagonally on the observations, Woodbury on the background */
static void apply_p(const mm *c, int b, const double *r, double *z) {
  const double *fp = vec_fp(c, b), *sy = c->g->noise_std;
  for (int k = 0; k < c->ny; k++) {
    double s2 = sy[k % c->no] * sy[k % c->no];
    z[k] = missing(c, k) ? 0.0 : r[k] / (s2 + fp[k] * fp[k] * c->vt * c->dd[k]);
  }
  if (c->nbg) diff_bg_solve(c->pre, r + c->ny, z + c->ny, vec_xp(c, b) + c->ns + c->no);
}

/* out = R p: noise variances, the background's U^T U + diag(d) */
static void apply_r(const mm *c, const double *p, double *out) {
  const double *sy = c->g->noise_std;
  for (int k = 0; k < c->ny; k++) out[k] = sy[k % c->no] * sy[k % c->no] * p[k];
  if (!c->nbg) return;
  const diff_background *bg = c->g->background;
  const double *pb = p + c->ny;
  double *ob = out + c->ny;
  for (int i = 0; i < c->nbg; i++) ob[i] = bg->diag[i] * pb[i];
  for (int a = 0; a < bg->n_members; a++) {
    const double *ua = bg->anom + (size_t)a * c->nbg;
    double s = 0.0;
    for (int i = 0; i < c->nbg; i++) s += ua[i] * pb[i];
    for (int i = 0; i < c->nbg; i++) ob[i] += ua[i] * s;
  }
}

/* cot [D] = A~^T p (standardized) */
static void apply_at(const mm *c, int b, const double *p, float *cot) {
  const diff_guidance *g = c->g;
  const obs_op *op = g->op;
  const double *fp = vec_fp(c, b);
  double *xp = vec_xp(c, b), *yp = xp + c->ns;
  for (int k = 0; k < c->nb; k++) {
    for (int i = 0; i < c->no; i++) yp[i] = fp[k * c->no + i] * p[k * c->no + i];
    memset(xp, 0, sizeof(double) * (size_t)c->ns);
    obs_apply_adjoint(op, yp, xp, 1);
    for (int i = 0; i < c->ns; i++) cot[k * c->ns + i] = (float)(xp[i] * gscale(g, (size_t)k * c->ns + i));
  }
  for (int i = 0; i < c->nbg; i++) cot[c->bg_off + i] += (float)(p[c->ny + i] * gscale(g, c->bg_off + i));
}

/* out [m] = A~ s for s [D] (standardized), the linear part at x_hat's f' */
static void apply_a(const mm *c, int b, const float *s, double *out) {
  const diff_guidance *g = c->g;
  const obs_op *op = g->op;
  const double *fp = vec_fp(c, b);
  for (int k = 0; k < c->nb; k++)
    for (int i = 0; i < c->no; i++) {
      double acc = 0.0;
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) {
        size_t j = (size_t)k * c->ns + op->col[e];
        acc += op->val[e] * gscale(g, j) * s[j];
      }
      out[k * c->no + i] = missing(c, k * c->no + i) ? 0.0 : fp[k * c->no + i] * acc;
    }
  for (int i = 0; i < c->nbg; i++) out[c->ny + i] = gscale(g, c->bg_off + i) * s[c->bg_off + i];
}

static double dot(const double *a, const double *b, int n) {
  double s = 0.0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* diff_cot_fn of the first iteration: residual, z = P r, p = z, cot = A~^T p */
static void first_rows(void *ctx, int b0, int b1) {
  const mm *c = ctx;
  const diff_guidance *g = c->g;
  const obs_op *op = g->op;
  for (int b = b0; b < b1; b++) {
    const float *xb = c->x + (size_t)b * c->D, *vb = c->v + (size_t)b * c->D;
    double *r = vec_r(c, b), *fp = vec_fp(c, b), *xp = vec_xp(c, b), *yp = xp + c->ns;
    for (int k = 0; k < c->nb; k++) {
      for (int i = 0; i < c->ns; i++) {
        size_t j = (size_t)k * c->ns + i;
        xp[i] = gmean(g, j) + gscale(g, j) * (c->mu * xb[j] - c->sg * vb[j]) / c->den;
      }
      obs_apply_deriv(op, xp, yp, fp + (size_t)k * c->no, 1);
      for (int i = 0; i < c->no; i++) {
        int q = k * c->no + i;
        r[q] = missing(c, q) ? 0.0 : g->y[q] - yp[i];
      }
    }
    for (int i = 0; i < c->nbg; i++) {
      size_t j = c->bg_off + i;
      double xh = (c->mu * xb[j] - c->sg * vb[j]) / c->den;
      r[c->ny + i] = g->background->mean[i] - (gmean(g, j) + gscale(g, j) * xh);
    }
    double *z = vec_z(c, b), *p = vec_p(c, b);
    apply_p(c, b, r, z);
    memcpy(p, z, sizeof(double) * (size_t)c->m);
    *vec_rz(c, b) = dot(r, z, c->m);
    apply_at(c, b, p, c->cot + (size_t)b * c->D);
  }
}

/* One conjugate-gradient step of every sample from s = J^T A~^T p (in
 * grad): acc += alpha s, and unless last, the next direction's cotangent. */
static void cg_step(mm *c, int B, const float *s_all, float *acc, int last) {
  for (int b = 0; b < B; b++) {
    double *r = vec_r(c, b), *z = vec_z(c, b), *p = vec_p(c, b), *q = vec_q(c, b), *rz = vec_rz(c, b);
    const float *s = s_all + (size_t)b * c->D;
    float *cb = c->cot + (size_t)b * c->D;
    /* p^T A~ V A~^T p = gt (A~^T p) . s; a learned Jacobian need not be
     * positive: its part of the curvature is taken as at least 0 */
    double pvp = 0.0;
    for (int i = 0; i < c->D; i++) pvp += (double)cb[i] * s[i];
    apply_r(c, p, q);
    double prp = dot(p, q, c->m), pq = prp + (pvp > 0 ? c->gt * pvp : 0.0);
    double alpha = *rz > 0 && pq > 0 ? *rz / pq : 0.0;
    if (alpha == 0.0) {
      memset(p, 0, sizeof(double) * (size_t)c->m);
      *rz = 0.0;
      if (!last) memset(cb, 0, sizeof(float) * (size_t)c->D);
      continue;
    }
    float *ab = acc + (size_t)b * c->D;
    for (int i = 0; i < c->D; i++) ab[i] += (float)(alpha * s[i]);
    if (last) continue;
    double *as = z; /* z is free until P r below */
    apply_a(c, b, s, as);
    for (int k = 0; k < c->m; k++) r[k] -= alpha * (q[k] + c->gt * as[k]);
    apply_p(c, b, r, z);
    double rz1 = dot(r, z, c->m), beta = rz1 / *rz;
    for (int k = 0; k < c->m; k++) p[k] = z[k] + beta * p[k];
    *rz = rz1;
    apply_at(c, b, p, cb);
  }
}

int diff_mmps_denoise(const diff_denoiser *d, const diff_guidance *g, const float *x, double tau, int B, float *eps,
                      float *x_hat, float *x_post, float *scratch, sb_error *err) {
  const size_t n = (size_t)B * d->dim;
  const obs_op *op = g->op;
  const double mu = diff_mu(tau), sg = diff_sigma(tau), den = mu * mu + sg * sg, ratio2 = (sg / mu) * (sg / mu);
  float *v = scratch, *cot = scratch + n, *grad = scratch + 2 * n;
  mm c = {g, x, v, cot, d->dim, op->state_dim, op->n_obs, g->n_blocks, g->n_blocks * op->n_obs,
          g->background ? g->background->dim : 0, 0, 0, mu, sg, den, ratio2 / (1.0 + ratio2), sg * sg / mu,
          NULL, NULL, NULL, 0};
  c.m = c.ny + c.nbg;
  c.bg_off = (size_t)g->background_block * (size_t)c.ns;
  const int members = g->background ? g->background->n_members : 0;
  c.stride = 4 * (size_t)c.m + (size_t)c.ny + 1 + 2 * (size_t)c.ns + (size_t)c.no + (size_t)members;
  double *dd = malloc(sizeof(double) * (size_t)c.ny);
  c.work = malloc(sizeof(double) * (size_t)B * c.stride);
  float *acc = calloc(n, sizeof(float));
  diff_bg_inv pre = {0};
  int rc = SB_OK;
  if (!dd || !c.work || !acc) {
    rc = sb_fail(err, SB_ENOMEM, "guidance: out of memory for %d samples", B);
    goto done;
  }
  for (int k = 0; k < c.nb; k++)
    for (int i = 0; i < c.no; i++) {
      double s = 0.0;
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) {
        double sc = gscale(g, (size_t)k * c.ns + op->col[e]);
        s += op->val[e] * op->val[e] * sc * sc;
      }
      dd[k * c.no + i] = s;
    }
  c.dd = dd;
  if (c.nbg) {
    double *extra = malloc(sizeof(double) * (size_t)c.nbg);
    if (!extra) {
      rc = sb_fail(err, SB_ENOMEM, "guidance: out of memory for the background");
      goto done;
    }
    for (int i = 0; i < c.nbg; i++) {
      double s = gscale(g, c.bg_off + i);
      extra[i] = c.vt * s * s;
    }
    rc = diff_bg_inv_init(&pre, g->background, extra, err);
    free(extra);
    if (rc) goto done;
    c.pre = &pre;
  }
  for (int it = 0; it < g->mmps_iters; it++) {
    /* the first VJP shares the evaluation's forward pass; the others' v is the same again */
    rc = it == 0 ? d->v_vjp(d->ctx, x, tau, B, v, first_rows, &c, cot, grad, err)
                 : d->v_vjp(d->ctx, x, tau, B, v, NULL, NULL, cot, grad, err);
    if (rc) goto done;
    /* s = (d x_hat/d x_tau)^T cot = (mu cot - sigma J_v^T cot) / den, in place of grad */
    for (size_t i = 0; i < n; i++) grad[i] = (float)((mu * cot[i] - sg * grad[i]) / den);
    cg_step(&c, B, grad, acc, it == g->mmps_iters - 1);
  }
  /* acc = J^T A~^T u: x_hat_post = x_hat + (sigma^2/mu) acc, eps_post = eps_hat - sigma acc */
  for (size_t i = 0; i < n; i++) {
    double e = (sg * x[i] + mu * v[i]) / den, xh = (mu * x[i] - sg * v[i]) / den;
    if (x_hat) x_hat[i] = (float)xh;
    if (x_post) x_post[i] = (float)(xh + c.gt * acc[i]);
    if (eps) eps[i] = (float)(e - sg * acc[i]);
  }
done:
  free(dd);
  free(c.work);
  free(acc);
  diff_bg_inv_free(&pre);
  return rc;
}
