/* job_forecast.c: ensemble forecasts of a job's samples (job_forecast.h). */
#include "job_forecast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "job_background.h"
#include "job_state.h"
#include "problem.h"
#include "util/jsonb.h"

static int fc_bad(json_t **problem, json_t *p) {
  *problem = p;
  return SB_EINVAL;
}

int job_forecast_canonical(const json_t *body, store *st, registry *reg, json_t **canon, json_t **problem) {
  *canon = NULL;
  *problem = NULL;
  if (!json_is_object(body))
    return fc_bad(problem, problem_new(PROB_VALIDATION, 0, "the body must be a JSON object {\"job\": id, \"steps\": "
                                       "K, \"return\": {...}}"));
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)body, k, v) {
    if (strcmp(k, "job") && strcmp(k, "steps") && strcmp(k, "return"))
      return fc_bad(problem, problem_new(PROB_VALIDATION, 0, "unknown field '%.100s'; allowed: job, steps, return", k));
  }
  const char *id = json_string_value(json_object_get(body, "job"));
  if (!id || !*id || strlen(id) >= 40)
    return fc_bad(problem, problem_new(PROB_VALIDATION, 0, "'job' must be the id of a succeeded job"));
  json_t *sj = json_object_get(body, "steps");
  if (!json_is_integer(sj) || json_integer_value(sj) < 0 || json_integer_value(sj) > JOB_MAX_FORECAST_STEPS)
    return fc_bad(problem, problem_new(PROB_VALIDATION, 0, "'steps' must be an integer from 0 to %d (observation "
                                       "intervals to forecast)", JOB_MAX_FORECAST_STEPS));
  json_t *ret = json_object_get(body, "return");
  if (ret && json_is_object(ret) && json_object_get(ret, "window"))
    return fc_bad(problem, problem_new(PROB_VALIDATION, 0, "a forecast has no window: leave out return.window"));
  store_run r;
  sb_error err = {0};
  int rc = store_get(st, id, &r, &err);
  if (rc == STORE_ENOTFOUND) return fc_bad(problem, problem_new(PROB_VALIDATION, 0, "job: no job with id %.40s", id));
  if (rc) {
    *problem = problem_new(PROB_UNAVAILABLE, 503, "the database failed (%s); retry later", err.msg);
    return rc;
  }
  if (!job_state_is(r.state, JOB_SUCCEEDED)) {
    *problem = problem_new(PROB_CONFLICT, 0, "job %s is %s; a forecast needs a succeeded job", r.id, r.state);
    store_run_free(&r);
    return SB_EINVAL;
  }
  reg_snap *snap = reg_hold(reg);
  int known = reg_find(snap, r.estimator) != NULL;
  reg_drop(snap);
  if (!known || r.samples_dim <= 0) {
    *problem = problem_new(PROB_VALIDATION, 0, "job %s: its estimator %s is not served any more (or it has no "
                           "samples), so its simulator is unknown", r.id, r.estimator);
    store_run_free(&r);
    return SB_EINVAL;
  }
  json_int_t K = json_integer_value(sj);
  *canon = json_pack("{s:{s:s, s:I}, s:s, s:i, s:I, s:i}", "forecast", "job", r.id, "steps", K, "estimator",
                     r.estimator, "state_dim", r.samples_dim, "time_index", (json_int_t)r.time_index + K, "n_samples",
                     r.n_samples);
  store_run_free(&r);
  if (!*canon) return fc_bad(problem, problem_new(PROB_INTERNAL, 0, "out of memory"));
  int bad = 0;
  if (ret) jb_set(*canon, "return", json_incref(ret), &bad);
  if (bad) {
    json_decref(*canon);
    *canon = NULL;
    return fc_bad(problem, problem_new(PROB_INTERNAL, 0, "out of memory"));
  }
  return SB_OK;
}

int job_forecast_spec(job_forecast *f, const json_t *canon, registry *reg, json_t **problem) {
  memset(f, 0, sizeof *f);
  *problem = NULL;
  json_t *fc = json_object_get(canon, "forecast");
  const char *id = json_string_value(json_object_get(fc, "job"));
  const char *en = json_string_value(json_object_get(canon, "estimator"));
  json_t *K = json_object_get(fc, "steps"), *dim = json_object_get(canon, "state_dim"),
         *t = json_object_get(canon, "time_index"), *n = json_object_get(canon, "n_samples");
  if (!id || strlen(id) >= sizeof f->job || !en || !json_is_integer(K) || !json_is_integer(dim) ||
      !json_is_integer(t) || !json_is_integer(n))
    return fc_bad(problem, problem_new(PROB_VALIDATION, 0, "not a forecast request"));
  snprintf(f->job, sizeof f->job, "%s", id);
  f->steps = (long)json_integer_value(K);
  job_spec *s = &f->spec;
  s->snap = reg_hold(reg); /* dropped by job_spec_free: the estimator outlives a reload */
  if (!(s->est = reg_find(s->snap, en)))
    return fc_bad(problem, problem_new(PROB_UNKNOWN_ESTIMATOR, 0, "no estimator named '%.128s'", en));
  s->sim_use = s->est->sim;
  if (json_integer_value(dim) != s->est->sim->dim) {
    sb_error err = {0};
    if (sim_create(&s->sim, s->est->sim->preset, (int)json_integer_value(dim), &err))
      return fc_bad(problem, problem_new(PROB_VALIDATION, 0, "state_dim: %s", err.msg));
    s->sim_use = s->sim;
  }
  s->time_index = (long)json_integer_value(t);
  s->n_samples = (int)json_integer_value(n);
  return job_spec_parse_return(s, json_object_get(canon, "return"), problem);
}

void job_forecast_free(job_forecast *f) { job_spec_free(&f->spec); }

void job_forecast_run(registry *reg, store *st, const json_t *canon, const sb_cancel *cancel, job_outcome *out) {
  job_forecast f;
  json_t *problem = NULL;
  sb_error err = {0};
  if (job_forecast_spec(&f, canon, reg, &problem)) {
    err.code = SB_EINVAL;
    snprintf(err.msg, sizeof err.msg, "the forecast cannot run any more: %s",
             json_string_value(json_object_get(problem, "detail")));
    json_decref(problem);
    job_forecast_free(&f);
    job_run_fail(out, SB_EINVAL, &err);
    return;
  }
  float *data = NULL;
  int S = 0, d = 0;
  double t0 = clock_mono_s();
  int rc = store_samples(st, f.job, &data, &S, &d, &err);
  if (rc) rc = rc == STORE_ENOTFOUND || rc == STORE_ECONFLICT ? SB_EINVAL : SB_EIO;
  else if (d != f.spec.sim_use->dim) rc = sb_fail(&err, SB_EINVAL, "job %s has states of %d values, not %d", f.job, d, f.spec.sim_use->dim);
  est_result r = {.n_samples = S, .dim = d};
  if (!rc && !(r.samples = malloc((size_t)S * (size_t)d * sizeof(double))))
    rc = sb_fail(&err, SB_ENOMEM, "out of memory for %d x %d samples", S, d);
  for (size_t i = 0; !rc && i < (size_t)S * (size_t)d; i++) r.samples[i] = data[i];
  free(data);
  /* in chunks of steps, so a cancel stops a long forecast */
  for (long done = 0; !rc && done < f.steps;) {
    long k = f.steps - done < 100 ? f.steps - done : 100;
    if (sb_cancelled(cancel)) rc = SB_ECANCEL;
    else rc = f.spec.sim_use->advance(f.spec.sim_use, r.samples, (size_t)S, k, &err);
    done += k;
  }
  if (rc == SB_ECANCEL) out->state = job_state_name(JOB_CANCELLED);
  else if (rc) job_run_fail(out, rc, &err);
  else {
    json_t *extra = json_pack("{s:s, s:I}", "forecast_of", f.job, "steps", (json_int_t)f.steps);
    job_run_finish(&f.spec, &r, clock_mono_s() - t0, extra, out);
    json_decref(extra);
  }
  free(r.samples);
  job_forecast_free(&f);
}
