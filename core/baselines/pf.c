/* pf.c: bootstrap particle filter baseline (see baselines.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/baselines.h"
#include "util/jsonb.h"
#include "util/rng.h"


typedef struct pf_params {
  int particles;
  double jitter;
  double threshold;
} pf_params;

static const params_spec pf_spec[] = {
    {"particles", PARAM_INT, 1, 10000000, 0},
    {"jitter", PARAM_NUM, 0, 1e300, 0},
    {"resample_threshold", PARAM_NUM, 0, 1, 0},
    {NULL, 0, 0, 0, 0},
};

/* j was checked against e->params by est_sample */
static void parse_params(const json_t *j, int S, pf_params *pp) {
  pp->particles = (int)params_int(j, "particles", S);
  pp->jitter = params_num(j, "jitter", 0.0);
  pp->threshold = params_num(j, "resample_threshold", 1.0);
}

/* Systematic resampling: idx[0..m) from normalized weights w[0..P), one
 * uniform u from r. */
static void systematic(const double *w, int P, int *idx, int m, rng *r) {
  double u = rng_uniform(r) / m, c = w[0];
  int j = 0;
  for (int i = 0; i < m; i++) {
    double target = u + (double)i / m;
    while (target > c && j < P - 1) c += w[++j];
    idx[i] = j;
  }
}

/* Two particle arrays, observed particles, weights, resampling indices;
 * per time: the forecast, the weights and a resampling. */
static void pf_cost(const estimator *e, const est_problem *p, const est_options *o, est_cost *c) {
  (void)e;
  pf_params pp;
  parse_params(o->params, o->n_samples, &pp);
  double P = pp.particles, S = o->n_samples, n = p->sim->dim, no = p->op->n_obs, W = p->window;
  c->bytes += 8.0 * (2 * P * n + P * no + 2 * P) + 4.0 * (P > S ? P : S) + 64.0 * W;
  double t0 = (double)(p->time_index - p->window + 1);
  double prior = P * (p->sim->flops_init + (p->sim->stationary ? 0 : t0 * p->sim->flops_step));
  c->flops += prior + W * (P * p->sim->flops_step + P * (4 * no + 2 * n + 20));
}

static int pf_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  (void)e;
  pf_params pp;
  int S = o->n_samples;
  parse_params(o->params, S, &pp);
  int P = pp.particles, n = p->sim->dim, W = p->window, no = p->op->n_obs;
  int rc = est_result_alloc(r, S, n, W, o->want_window, 0, err);
  if (rc) return rc;
  int mx = P > S ? P : S;
  double *X = malloc(sizeof(double) * (size_t)P * n);
  double *X2 = malloc(sizeof(double) * (size_t)P * n);
  double *HX = malloc(sizeof(double) * (size_t)P * (no ? no : 1));
  double *lw = malloc(sizeof(double) * (size_t)P);
  double *w = malloc(sizeof(double) * (size_t)P);
  int *idx = malloc(sizeof(int) * (size_t)mx);
  int bad = 0;
  json_t *ess_arr = jb_array(&bad);
  if (!X || !X2 || !HX || !lw || !w || !idx || !ess_arr) {
    rc = sb_fail(err, SB_ENOMEM, "out of memory for %d particles", P);
    goto done;
  }
  if ((rc = est_prior_ensemble(p->sim, X, P, p->time_index - W + 1, o->seed, o->cancel, err))) goto done;
  rng g;
  rng_init(&g, o->seed, (uint64_t)1 << 40);
  for (int i = 0; i < P; i++) lw[i] = 0.0;
  int resampled = 0;
  double ess = P, ess_min = P;
  for (int t = 0; t < W; t++) {
    if (sb_cancelled(o->cancel)) {
      rc = sb_fail(err, SB_ECANCEL, "cancelled");
      goto done;
    }
    if (t > 0 && (rc = est_advance_members(p->sim, X, P, o->cancel, err))) goto done;
    const double *y = p->y + (size_t)t * no;
    obs_apply(p->op, X, HX, (size_t)P);
    for (int i = 0; i < P; i++) {
      double s = 0.0;
      for (int k = 0; k < no; k++) {
        if (isnan(y[k])) continue;
        double z = (y[k] - HX[(size_t)i * no + k]) / p->noise->std[k];
        s += z * z;
      }
      lw[i] += -0.5 * s;
    }
    double m = -INFINITY;
    for (int i = 0; i < P; i++)
      if (lw[i] > m) m = lw[i];
    double sw = 0.0, sw2 = 0.0;
    for (int i = 0; i < P; i++) {
      w[i] = exp(lw[i] - m);
      sw += w[i];
    }
    for (int i = 0; i < P; i++) {
      w[i] /= sw;
      sw2 += w[i] * w[i];
    }
    ess = 1.0 / sw2;
    if (ess < ess_min) ess_min = ess;
    jb_push_real(ess_arr, ess, &bad);
    if (o->want_window || t == W - 1) {
      double *dst = t == W - 1 ? r->samples : NULL;
      systematic(w, P, idx, S, &g);
      for (int i = 0; i < S; i++) {
        const double *src = X + (size_t)idx[i] * n;
        if (dst) memcpy(dst + (size_t)i * n, src, sizeof(double) * n);
        if (o->want_window) memcpy(r->window_samples + ((size_t)i * W + t) * n, src, sizeof(double) * n);
      }
    }
    if (t < W - 1 && (pp.threshold >= 1.0 || ess < pp.threshold * P)) {
      systematic(w, P, idx, P, &g);
      for (int i = 0; i < P; i++) memcpy(X2 + (size_t)i * n, X + (size_t)idx[i] * n, sizeof(double) * n);
      double *tmp = X;
      X = X2;
      X2 = tmp;
      for (int i = 0; i < P; i++) lw[i] = 0.0;
      if (pp.jitter > 0.0)
        for (size_t i = 0; i < (size_t)P * n; i++) X[i] += pp.jitter * rng_normal(&g);
      resampled++;
    }
    if (o->progress) o->progress(o->progress_ctx, (double)(t + 1) / W);
  }
  jb_set(r->diagnostics, "particles", json_integer(P), &bad);
  jb_set(r->diagnostics, "ess", ess_arr, &bad);
  ess_arr = NULL;
  jb_set_real(r->diagnostics, "ess_final", ess, &bad);
  jb_set_real(r->diagnostics, "ess_min", ess_min, &bad);
  jb_set(r->diagnostics, "resampled", json_integer(resampled), &bad);
  jb_set(r->diagnostics, "window_states", json_string("filtered"), &bad);
  if (bad) rc = sb_fail(err, SB_ENOMEM, "out of memory for the diagnostics");
done:
  json_decref(ess_arr);
  free(X);
  free(X2);
  free(HX);
  free(lw);
  free(w);
  free(idx);
  return rc;
}

int est_pf_create(estimator **out, sim *s, sb_error *err) {
  *out = NULL;
  estimator *e = calloc(1, sizeof *e);
  json_t *info = json_object();
  if (!e || !info) {
    free(e);
    json_decref(info);
    sim_free(s);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  snprintf(e->kind, sizeof e->kind, "pf");
  snprintf(e->name, sizeof e->name, "%s-pf", s->preset);
  e->sim = s;
  e->has_window = 1;
  int bad = 0;
  jb_set(info, "description", json_string("bootstrap particle filter, systematic resampling, filtered window states"),
         &bad);
  e->info = info;
  e->sample = pf_sample;
  e->cost = pf_cost;
  e->params = pf_spec;
  if (bad) {
    est_free(e); /* frees s and info */
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  *out = e;
  return SB_OK;
}
