#include "est/est.h"

#include "est/est_chunk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int est_check_background(const est_background *b, int dim, sb_error *err) {
  if (b->members) {
    if (b->n_members < 2)
      return sb_fail(err, SB_EINVAL, "a background ensemble needs at least 2 members, got %d", b->n_members);
    size_t n = (size_t)b->n_members * (size_t)dim;
    for (size_t i = 0; i < n; i++)
      if (!isfinite(b->members[i]))
        return sb_fail(err, SB_EINVAL, "background member %zu has a non-finite value at component %zu",
                       i / (size_t)dim, i % (size_t)dim);
    return SB_OK;
  }
  if (!b->mean || !b->std) return sb_fail(err, SB_EINVAL, "a background needs members, or a mean and a std");
  for (int i = 0; i < dim; i++) {
    if (!isfinite(b->mean[i])) return sb_fail(err, SB_EINVAL, "background mean is not finite at component %d", i);
    if (!isfinite(b->std[i]) || b->std[i] <= 0)
      return sb_fail(err, SB_EINVAL, "background std must be finite and > 0, got %g at component %d", b->std[i], i);
  }
  return SB_OK;
}

void est_window_range(const estimator *e, int *lo, int *hi) {
  if (e->window_max > 0)
    *lo = e->window_min, *hi = e->window_max;
  else if (e->window > 0)
    *lo = *hi = e->window;
  else
    *lo = 1, *hi = 1024;
}

int est_check_problem(const estimator *e, const est_problem *p, sb_error *err) {
  int rc;
  if (!p || !p->sim || !p->op || !p->noise || !p->y)
    return sb_fail(err, SB_EINVAL, "incomplete problem: system, operator, noise and observations are required");
  if (e->dim_max > 0) {
    if (strcmp(p->sim->preset, e->sim->preset) != 0 || p->sim->dim < e->dim_min || p->sim->dim > e->dim_max)
      return sb_fail(err, SB_EINVAL, "estimator %s serves %s with %d..%d nodes, not %s with %d", e->name,
                     e->sim->preset, e->dim_min, e->dim_max, p->sim->preset, p->sim->dim);
  } else if (strcmp(p->sim->preset, e->sim->preset) != 0 || p->sim->dim != e->sim->dim)
    return sb_fail(err, SB_EINVAL, "estimator %s serves %s with %d nodes, not %s with %d", e->name, e->sim->preset,
                   e->sim->dim, p->sim->preset, p->sim->dim);
  if (p->window < 1 || p->window > 1024) return sb_fail(err, SB_ERANGE, "window length %d outside 1..1024", p->window);
  int wlo, whi;
  est_window_range(e, &wlo, &whi);
  if (wlo == whi && p->window != wlo)
    return sb_fail(err, SB_EINVAL, "estimator %s needs a window of exactly %d observations, got %d", e->name, wlo,
                   p->window);
  if (p->window < wlo || p->window > whi)
    return sb_fail(err, SB_EINVAL, "estimator %s needs a window of %d..%d observations, got %d", e->name, wlo, whi,
                   p->window);
  if (p->time_index < p->window - 1 || p->time_index > e->sim->t_max)
    return sb_fail(err, SB_ERANGE, "time_index %ld outside %d..%ld for a window of %d", p->time_index,
                   p->window - 1, e->sim->t_max, p->window);
  if (p->op->state_dim != p->sim->dim)
    return sb_fail(err, SB_EINVAL, "operator is built for %d state components, the system has %d",
                   p->op->state_dim, p->sim->dim);
  if (p->noise->n != p->op->n_obs)
    return sb_fail(err, SB_EINVAL, "noise has %d entries, the operator observes %d", p->noise->n, p->op->n_obs);
  if (e->fixed_op) {
    const obs_op *a = e->fixed_op, *b = p->op;
    if (!obs_is_linear(b) && obs_is_linear(a))
      return sb_fail(err, SB_EINVAL, "estimator %s (%s) was trained for one linear operator (%s) and cannot use the "
                     "nonlinear operator %s; nonlinear operators need composed-score, local-score, etkf, letkf or pf",
                     e->name, e->kind, obs_kind_name(a->kind), obs_type_name(b));
    int same = a->fn == b->fn && a->n_obs == b->n_obs && a->row_ptr[a->n_obs] == b->row_ptr[b->n_obs];
    for (int i = 0; same && i <= a->n_obs; i++) same = a->row_ptr[i] == b->row_ptr[i];
    for (int k = 0; same && k < a->row_ptr[a->n_obs]; k++)
      same = a->col[k] == b->col[k] && fabs(a->val[k] - b->val[k]) <= 1e-9 * (1 + fabs(a->val[k]));
    if (!same)
      return sb_fail(err, SB_EINVAL, "estimator %s was trained for one operator (%s) and cannot use another; "
                     "use a composed-score or baseline estimator for other operators", e->name, obs_type_name(a));
  }
  if (p->background) {
    if (!e->accepts_background)
      return sb_fail(err, SB_EINVAL, "estimator %s (%s) cannot use a background; the kinds that can are "
                     "etkf, letkf, composed-score and local-score", e->name, e->kind);
    if ((rc = est_check_background(p->background, p->sim->dim, err))) return rc;
  }
  if (e->fixed_noise) {
    for (int i = 0; i < p->noise->n; i++)
      if (fabs(p->noise->std[i] - e->fixed_noise->std[i]) > 1e-9 * e->fixed_noise->std[i])
        return sb_fail(err, SB_EINVAL, "estimator %s was trained for noise_std %g, got %g at component %d", e->name,
                       e->fixed_noise->std[i], p->noise->std[i], i);
  }
  size_t n = (size_t)p->window * (size_t)p->op->n_obs;
  for (size_t i = 0; i < n; i++)
    if (isinf(p->y[i])) return sb_fail(err, SB_EINVAL, "observation %zu is infinite", i);
  return e->check_problem ? e->check_problem(e, p, err) : SB_OK;
}

int est_set_dim(estimator *e, int N, sb_error *err) {
  if (N == e->sim->dim) return SB_OK;
  if (e->dim_max <= 0 || N < e->dim_min || N > e->dim_max)
    return e->dim_max > 0 ? sb_fail(err, SB_EINVAL, "estimator %s serves %s with %d..%d nodes, not %d", e->name,
                                    e->sim->preset, e->dim_min, e->dim_max, N)
                          : sb_fail(err, SB_EINVAL, "estimator %s serves %s with %d nodes, not %d", e->name,
                                    e->sim->preset, e->sim->dim, N);
  sim *s;
  int rc = sim_create(&s, e->sim->preset, N, err);
  if (rc) return rc;
  sim_free(e->sim);
  e->sim = s;
  return SB_OK;
}

int est_check_options(const estimator *e, const est_options *o, sb_error *err) {
  if (o->n_samples < 1 || o->n_samples > 1000000)
    return sb_fail(err, SB_ERANGE, "n_samples %d outside 1..1000000", o->n_samples);
  if (o->want_window && !e->has_window)
    return sb_fail(err, SB_ENOTSUP, "estimator %s cannot return the states of the whole window", e->name);
  int rc = est_chunk_check_options(e, o, err);
  if (rc) return rc;
  json_t *rest = NULL; /* "chunk" belongs to every estimator with a background (est_chunk.h) */
  if (o->params && json_object_get(o->params, "chunk") && !(rest = est_chunk_rest(o->params)))
    return sb_fail(err, SB_ENOMEM, "out of memory");
  rc = params_check(rest ? rest : o->params, e->params, "params.", err);
  json_decref(rest);
  if (rc) return sb_wrap(err, "%s", e->name);
  return e->check_options ? e->check_options(e, o, err) : SB_OK;
}

void est_estimate(const estimator *e, const est_problem *p, const est_options *o, est_cost *c) {
  int K = est_chunk_param(o->params), first;
  if (K > 0 && est_chunk_layout(e, p->window, K, &first) > 1) {
    est_chunk_estimate(e, p, o, K, c);
    return;
  }
  double S = o->n_samples, n = p->sim->dim, W = p->window;
  c->bytes = 8.0 * (S * n + (o->want_window ? S * W * n : 0) + (e->has_density ? S : 0));
  c->flops = 0;
  if (e->cost) e->cost(e, p, o, c);
}

int est_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  memset(r, 0, sizeof *r);
  int rc = est_check_options(e, o, err);
  int K = rc ? 0 : est_chunk_param(o->params), first;
  if (!rc) rc = est_chunk_check_problem(e, p, K, err);
  if (rc) return rc;
  if (K > 0 && est_chunk_layout(e, p->window, K, &first) > 1) {
    rc = est_chunk_sample(e, p, o, K, r, err);
    if (rc) est_result_free(r);
    return rc;
  }
  rc = e->sample(e, p, o, r, err);
  if (rc) {
    est_result_free(r);
    return rc;
  }
  size_t n = (size_t)r->n_samples * (size_t)r->dim;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(r->samples[i])) {
      est_result_free(r);
      return sb_fail(err, SB_ENUMERIC, "estimator %s produced a non-finite sample", e->name);
    }
  return SB_OK;
}

int est_result_alloc(est_result *r, int S, int dim, int W, int want_window, int want_density, sb_error *err) {
  memset(r, 0, sizeof *r);
  r->n_samples = S;
  r->dim = dim;
  r->window = W;
  r->samples = calloc((size_t)S * (size_t)dim, sizeof(double));
  if (want_window) r->window_samples = calloc((size_t)S * (size_t)W * (size_t)dim, sizeof(double));
  if (want_density) r->log_density = calloc((size_t)S, sizeof(double));
  r->diagnostics = json_object();
  if (!r->samples || (want_window && !r->window_samples) || (want_density && !r->log_density) || !r->diagnostics) {
    est_result_free(r);
    return sb_fail(err, SB_ENOMEM, "out of memory for %d samples of %d values", S, dim);
  }
  return SB_OK;
}

void est_result_free(est_result *r) {
  if (!r) return;
  free(r->samples);
  free(r->window_samples);
  free(r->log_density);
  json_decref(r->diagnostics);
  memset(r, 0, sizeof *r);
}

void est_free(estimator *e) {
  if (!e) return;
  if (e->destroy) e->destroy(e);
  sim_free(e->sim);
  obs_free(e->fixed_op);
  if (e->fixed_noise) {
    obs_noise_free(e->fixed_noise);
    free(e->fixed_noise);
  }
  json_decref(e->info);
  free(e);
}
