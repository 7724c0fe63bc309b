#include "job_run.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "util/jsonb.h"
#include "job_background.h"
#include "job_forecast.h"
#include "job_spec.h"
#include "job_state.h"
#include "problem.h"

static int job_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Sample quantile with linear interpolation (numpy's default). v sorted. */
static double job_quantile(const double *v, int n, double q) {
  double pos = q * (n - 1);
  int lo = (int)floor(pos);
  if (lo >= n - 1) return v[n - 1];
  double f = pos - lo;
  return v[lo] + f * (v[lo + 1] - v[lo]);
}

static json_t *job_summary(const job_spec *s, const est_result *r) {
  int S = r->n_samples, d = r->dim, bad = 0; /* any failed allocation: no summary (never one missing a field) */
  json_t *mean = json_array(), *std = json_array(), *qs = json_object();
  json_t *qa[JOB_MAX_QUANTILES];
  for (int k = 0; k < s->n_quantiles; k++) {
    char key[32];
    job_quantile_name(s->quantiles[k], key, sizeof key);
    qa[k] = json_array();
    jb_set(qs, key, qa[k], &bad);
  }
  double *col = malloc((size_t)S * sizeof *col);
  if (!col || !mean || !std || !qs) {
    free(col);
    json_decref(mean), json_decref(std), json_decref(qs);
    return NULL;
  }
  for (int i = 0; i < d; i++) {
    double m = 0, v = 0;
    for (int k = 0; k < S; k++) col[k] = r->samples[(size_t)k * d + i], m += col[k];
    m /= S;
    for (int k = 0; k < S; k++) v += (col[k] - m) * (col[k] - m);
    v = S > 1 ? v / (S - 1) : 0;
    jb_push(mean, json_real(m), &bad);
    jb_push(std, json_real(sqrt(v)), &bad);
    qsort(col, (size_t)S, sizeof *col, job_cmp_double);
    for (int k = 0; k < s->n_quantiles; k++) jb_push(qa[k], json_real(job_quantile(col, S, s->quantiles[k])), &bad);
  }
  free(col);
  json_t *o = json_pack("{s:o, s:o, s:o}", "mean", mean, "std", std, "quantiles", qs);
  /* mean, std, quantiles and samples are flat (state_dim values, channel-first);
   * state_shape says how to reshape them ([2, 32, 32] for the Kolmogorov flow) */
  size_t shape[3];
  int nd = sim_state_shape(s->est->sim, shape);
  json_t *js = json_array();
  for (int k = 0; k < nd; k++) jb_push(js, json_integer((json_int_t)shape[k]), &bad);
  jb_set(o, "state_shape", js, &bad);
  if (s->want_window && r->window_samples) {
    json_t *wm = json_array();
    for (int w = 0; w < r->window; w++) {
      json_t *row = json_array();
      for (int i = 0; i < d; i++) {
        double m = 0;
        for (int k = 0; k < S; k++) m += r->window_samples[((size_t)k * r->window + w) * d + i];
        jb_push(row, json_real(m / S), &bad);
      }
      jb_push(wm, row, &bad);
    }
    jb_set(o, "window_mean", wm, &bad);
  }
  if (s->want_samples) {
    json_t *all = json_array();
    for (int k = 0; k < S; k++) {
      json_t *row = json_array();
      for (int i = 0; i < d; i++) jb_push(row, json_real((float)r->samples[(size_t)k * d + i]), &bad);
      jb_push(all, row, &bad);
    }
    jb_set(o, "samples", all, &bad);
    if (r->log_density) {
      json_t *ld = json_array();
      for (int k = 0; k < S; k++) jb_push(ld, json_real(r->log_density[k]), &bad);
      jb_set(o, "log_density", ld, &bad);
    }
  }
  jb_set(o, "diagnostics", r->diagnostics ? json_incref(r->diagnostics) : json_object(), &bad);
  return jb_done(o, bad);
}

static void job_fail(job_outcome *out, json_t *problem) {
  out->state = job_state_name(JOB_FAILED);
  out->error = json_dumps(problem, JSON_COMPACT);
  json_decref(problem);
}

void job_run_finish(const job_spec *s, const est_result *r, double elapsed, json_t *extra, job_outcome *out) {
  json_t *sum = job_summary(s, r);
  if (sum) {
    int bad = 0;
    json_t *diag = json_object_get(sum, "diagnostics");
    json_t *d2 = json_deep_copy(diag);
    jb_set(d2, "seed", json_integer((json_int_t)s->seed), &bad);
    jb_set(d2, "sampling_seconds", json_real(elapsed), &bad);
    json_t *src = reg_entry_source(reg_entry_of(s->snap, s->est)); /* which version of a model file ran */
    if (src) jb_set(d2, "model_file", src, &bad);
    if (extra && d2 && json_object_update(d2, extra)) bad = 1;
    jb_set(sum, "diagnostics", d2, &bad);
    out->result = bad ? NULL : json_dumps(sum, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(sum);
  }
  size_t n = (size_t)r->n_samples * (size_t)r->dim;
  out->samples = malloc(n * sizeof(float));
  if (!out->result || !out->samples) {
    free(out->result), free(out->samples);
    out->result = NULL, out->samples = NULL;
    job_fail(out, problem_new(PROB_JOB_FAILED, 0, "out of memory while summarizing %d samples", r->n_samples));
  } else {
    for (size_t i = 0; i < n; i++) out->samples[i] = (float)r->samples[i];
    out->n_samples = r->n_samples;
    out->dim = r->dim;
    out->state = job_state_name(JOB_SUCCEEDED);
  }
}

void job_run_fail(job_outcome *out, int rc, const sb_error *err) {
  job_fail(out, problem_new(PROB_JOB_FAILED, rc == SB_EINVAL || rc == SB_ERANGE || rc == SB_ENOTSUP ? 422 : 500,
                            "%s (%s)", err->msg, sb_strerror(rc)));
}

void job_run(registry *reg, store *st, const char *request, int threads, const sb_cancel *cancel,
             void (*progress)(void *ctx, double fraction), void *progress_ctx, job_outcome *out) {
  memset(out, 0, sizeof *out);
  json_error_t jerr;
  json_t *body = json_loads(request, 0, &jerr);
  if (!body) {
    job_fail(out, problem_new(PROB_JOB_FAILED, 0, "stored request is not valid JSON: %s", jerr.text));
    return;
  }
  if (json_object_get(body, "forecast")) { /* POST /v1/forecasts (job_forecast.c) */
    job_forecast_run(reg, st, body, cancel, out);
    json_decref(body);
    return;
  }
  job_spec s;
  json_t *problem = NULL;
  if (job_spec_parse(&s, body, reg, NULL, threads, &problem)) {
    /* e.g. the estimator is no longer loaded after a restart */
    json_t *p = problem_new(PROB_JOB_FAILED, 0, "the request cannot run any more: %s",
                            json_string_value(json_object_get(problem, "detail")));
    json_decref(problem);
    job_spec_free(&s);
    json_decref(body);
    job_fail(out, p);
    return;
  }
  sb_error err = {0};
  int rc = job_background_resolve(&s, st, &err);
  if (rc) {
    job_run_fail(out, rc, &err);
    job_spec_free(&s);
    json_decref(body);
    return;
  }
  est_problem p = {s.sim_use, s.op_use, &s.noise, s.window, s.time_index, s.y, job_spec_background(&s)};
  est_options o = {.n_samples = s.n_samples, .seed = s.seed, .want_window = s.want_window, .threads = threads,
                   .cancel = cancel, .progress = progress, .progress_ctx = progress_ctx, .params = s.params};
  est_result r;
  double t0 = clock_mono_s();
  rc = est_sample(s.est, &p, &o, &r, &err);
  double elapsed = clock_mono_s() - t0;
  if (rc == SB_ECANCEL || sb_cancelled(cancel)) {
    if (!rc) est_result_free(&r);
    out->state = job_state_name(JOB_CANCELLED);
  } else if (rc) {
    job_run_fail(out, rc, &err);
  } else {
    job_run_finish(&s, &r, elapsed, NULL, out);
    est_result_free(&r);
  }
  job_spec_free(&s);
  json_decref(body);
}

void job_outcome_free(job_outcome *o) {
  free(o->result);
  free(o->samples);
  free(o->error);
  memset(o, 0, sizeof *o);
}
