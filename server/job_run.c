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

/* progress of window b of B: (b + fraction) / B */
typedef struct job_windows_progress {
  void (*progress)(void *ctx, double fraction);
  void *ctx;
  int b, B;
} job_windows_progress;

static void job_windows_progress_cb(void *ctx, double fraction) {
  job_windows_progress *w = ctx;
  w->progress(w->ctx, (w->b + fraction) / w->B);
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
  /* one window, or a list of B windows run one after another (window b with
   * seed + b, so it gives what a request of that one window and seed gives) */
  const int B = s.n_windows ? s.n_windows : 1;
  const size_t per = (size_t)s.window * (size_t)(s.op_use->n_obs > 0 ? s.op_use->n_obs : 1);
  job_windows_progress wp = {progress, progress_ctx, 0, B};
  json_t *results = json_array();
  sb_error err = {0};
  double elapsed = 0;
  int rc = job_background_resolve(&s, st, &err);
  if (rc) {
    job_run_fail(out, rc, &err);
    json_decref(results);
    job_spec_free(&s);
    json_decref(body);
    return;
  }
  rc = results ? SB_OK : SB_ENOMEM;
  for (int b = 0; !rc && b < B; b++) {
    est_problem p = {s.sim_use, s.op_use, &s.noise, s.window, s.time_index, s.y + (size_t)b * per,
                     job_spec_background(&s)};
    est_options o = {.n_samples = s.n_samples, .seed = s.seed + (uint64_t)b, .want_window = s.want_window,
                     .threads = threads, .cancel = cancel, .progress = progress ? job_windows_progress_cb : NULL,
                     .progress_ctx = &wp, .params = s.params};
    est_result r;
    wp.b = b;
    double t0 = clock_mono_s();
    rc = est_sample(s.est, &p, &o, &r, &err);
    elapsed += clock_mono_s() - t0;
    if (rc && s.n_windows) sb_wrap(&err, "observations[%d]", b);
    if (rc) break;
    if (sb_cancelled(cancel)) {
      est_result_free(&r);
      rc = SB_ECANCEL;
      break;
    }
    json_t *sum = job_summary(&s, &r);
    if (sum && s.n_windows) { /* every window's own seed and time */
      int bad = 0;
      json_t *d2 = json_deep_copy(json_object_get(sum, "diagnostics"));
      jb_set(d2, "seed", json_integer((json_int_t)(s.seed + (uint64_t)b)), &bad);
      jb_set(d2, "sampling_seconds", json_real(clock_mono_s() - t0), &bad);
      jb_set(sum, "diagnostics", d2, &bad);
      sum = jb_done(sum, bad);
    }
    size_t n = (size_t)r.n_samples * (size_t)r.dim;
    if (!b) {
      out->n_samples = r.n_samples;
      out->dim = r.dim;
      out->samples = malloc((size_t)B * n * sizeof(float));
    }
    if (!sum || !out->samples || json_array_append_new(results, sum)) {
      est_result_free(&r);
      rc = SB_ENOMEM;
      break;
    }
    for (size_t i = 0; i < n; i++) out->samples[(size_t)b * n + i] = (float)r.samples[i];
    est_result_free(&r);
  }
  if (rc == SB_ECANCEL || sb_cancelled(cancel)) {
    out->state = job_state_name(JOB_CANCELLED);
  } else if (rc == SB_ENOMEM) {
    job_fail(out, problem_new(PROB_JOB_FAILED, 0, "out of memory while summarizing %d samples", s.n_samples));
  } else if (rc) {
    job_run_fail(out, rc, &err);
  } else {
    json_t *sum;
    if (s.n_windows) { /* {"windows": B, "results": [...], "state_shape", "diagnostics"} */
      json_t *first = json_array_get(results, 0);
      sum = json_pack("{s:i, s:O, s:O}", "windows", B, "results", results, "state_shape",
                      json_object_get(first, "state_shape"));
      int bad = 0;
      if (sum) jb_set(sum, "diagnostics", json_object(), &bad);
      sum = jb_done(sum, bad);
    } else {
      sum = json_incref(json_array_get(results, 0));
    }
    if (sum) {
      int bad = 0;
      json_t *d2 = json_deep_copy(json_object_get(sum, "diagnostics"));
      jb_set(d2, "seed", json_integer((json_int_t)s.seed), &bad);
      jb_set(d2, "sampling_seconds", json_real(elapsed), &bad);
      json_t *src = reg_entry_source(reg_entry_of(s.snap, s.est)); /* which version of a model file ran */
      if (src) jb_set(d2, "model_file", src, &bad);
      jb_set(sum, "diagnostics", d2, &bad);
      out->result = bad ? NULL : json_dumps(sum, JSON_COMPACT | JSON_REAL_PRECISION(9));
      json_decref(sum);
    }
    if (!out->result || !out->samples) {
      job_fail(out, problem_new(PROB_JOB_FAILED, 0, "out of memory while summarizing %d samples", s.n_samples));
    } else {
      out->n_samples *= B; /* stored as [B * S][dim]; the samples route reshapes to [B][S][...] */
      out->state = job_state_name(JOB_SUCCEEDED);
    }
  }
  if (!out->state || strcmp(out->state, job_state_name(JOB_SUCCEEDED))) {
    free(out->samples), free(out->result);
    out->samples = NULL, out->result = NULL, out->n_samples = out->dim = 0;
  }
  json_decref(results);
  job_spec_free(&s);
  json_decref(body);
}

void job_outcome_free(job_outcome *o) {
  free(o->result);
  free(o->samples);
  free(o->error);
  memset(o, 0, sizeof *o);
}
