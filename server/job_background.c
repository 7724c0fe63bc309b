/* job_background.c: a request's background (job_background.h). */
#include "job_background.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_state.h"
#include "problem.h"

static int bg_bad(json_t **problem, json_t *p) {
  *problem = p;
  return SB_EINVAL;
}

const char *job_background_takers(const reg_snap *reg, char *buf, size_t size) {
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < reg->count && n < size; i++)
    if (reg->items[i]->accepts_background)
      n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", reg->items[i]->name);
  if (!buf[0]) snprintf(buf, size, "none of the served estimators");
  return buf;
}

/* Reads v nested to depth nd (shape) into out; *k counts values written. */
static int bg_read_nested(const json_t *v, const size_t *shape, int nd, double *out, size_t *k, sb_error *err) {
  if (!json_is_array(v) || json_array_size(v) != shape[0])
    return sb_fail(err, SB_EINVAL, "expected an array of %zu", shape[0]);
  for (size_t i = 0; i < shape[0]; i++) {
    const json_t *e = json_array_get(v, i);
    if (nd > 1) {
      int rc = bg_read_nested(e, shape + 1, nd - 1, out, k, err);
      if (rc) return rc;
    } else if (json_is_number(e) && isfinite(json_number_value(e))) {
      out[(*k)++] = json_number_value(e);
    } else {
      return sb_fail(err, SB_EINVAL, "value %zu is not a finite number", *k);
    }
  }
  return SB_OK;
}

int job_state_from_json(const json_t *v, const sim *sm, double *out, sb_error *err) {
  size_t shape[3], k = 0;
  int nd = sim_state_shape(sm, shape);
  /* flat [dim] always; nested in the state's shape when it has several axes */
  if (json_is_array(v) && json_array_size(v) == (size_t)sm->dim && (nd == 1 || !json_is_array(json_array_get(v, 0)))) {
    size_t flat = (size_t)sm->dim;
    return bg_read_nested(v, &flat, 1, out, &k, err);
  }
  return bg_read_nested(v, shape, nd, out, &k, err);
}

static const char *bg_shape_text(const sim *sm, char *buf, size_t size) {
  size_t sh[3];
  int nd = sim_state_shape(sm, sh);
  if (nd == 1) snprintf(buf, size, "[%zu]", sh[0]);
  else if (nd == 2) snprintf(buf, size, "[%zu][%zu] (or flat [%d])", sh[0], sh[1], sm->dim);
  else snprintf(buf, size, "[%zu][%zu][%zu] (or flat [%d])", sh[0], sh[1], sh[2], sm->dim);
  return buf;
}

int job_background_parse(job_spec *s, const json_t *j, const reg_snap *reg, long max_samples, json_t **problem) {
  const sim *sm = s->sim_use;
  char takers[512], st[96];
  bg_shape_text(sm, st, sizeof st);
  if (!s->est->accepts_background)
    return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "background: estimator %s cannot use a background; the "
                                       "served estimators that can: %s", s->est->name,
                                       job_background_takers(reg, takers, sizeof takers)));
  if (!json_is_object(j))
    return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "'background' must be an object: {\"samples\": [S_b "
                                       "states of shape %s]}, {\"mean\": state, \"std\": state} or {\"from_job\": id}",
                                       st));
  json_t *samples = json_object_get(j, "samples"), *mean = json_object_get(j, "mean"),
         *sd = json_object_get(j, "std"), *from = json_object_get(j, "from_job");
  size_t known = (samples != NULL) + (mean != NULL) + (sd != NULL) + (from != NULL);
  int forms = (samples != NULL) + (mean != NULL || sd != NULL) + (from != NULL);
  if (known != json_object_size(j) || forms != 1)
    return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "'background' takes exactly one of samples, mean + std, "
                                       "or from_job (and no other field)"));
  sb_error err = {0};
  size_t dim = (size_t)sm->dim;
  s->has_background = 1;
  if (from) {
    const char *id = json_string_value(from);
    size_t n = id ? strlen(id) : 0;
    int ok = n >= 1 && n < sizeof s->bg_from_job;
    for (size_t i = 0; ok && i < n; i++) ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
    if (!ok)
      return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "'background.from_job' must be the id of a succeeded "
                                         "job (32 lowercase hex digits)"));
    memcpy(s->bg_from_job, id, n + 1);
    return SB_OK;
  }
  if (samples) {
    long S = json_is_array(samples) ? (long)json_array_size(samples) : -1;
    if (S < 2 || S > max_samples)
      return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "'background.samples' must be an array of 2 to %ld "
                                         "states (the daemon's --max-samples), each of shape %s", max_samples, st));
    s->bg_data = malloc((size_t)S * dim * sizeof(double));
    if (!s->bg_data) return bg_bad(problem, problem_new(PROB_INTERNAL, 0, "out of memory"));
    for (long k = 0; k < S; k++)
      if (job_state_from_json(json_array_get(samples, (size_t)k), sm, s->bg_data + (size_t)k * dim, &err))
        return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "background.samples[%ld]: %s; expected shape [%ld]%s",
                                           k, err.msg, S, st));
    s->bg.n_members = (int)S;
    s->bg.members = s->bg_data;
  } else {
    if (!mean || !sd)
      return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "'background' needs both mean and std (each of shape "
                                         "%s)", st));
    s->bg_mean = malloc(dim * sizeof(double));
    s->bg_std = malloc(dim * sizeof(double));
    if (!s->bg_mean || !s->bg_std) return bg_bad(problem, problem_new(PROB_INTERNAL, 0, "out of memory"));
    if (job_state_from_json(mean, sm, s->bg_mean, &err))
      return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "background.mean: %s; expected shape %s", err.msg, st));
    if (job_state_from_json(sd, sm, s->bg_std, &err))
      return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "background.std: %s; expected shape %s", err.msg, st));
    s->bg.mean = s->bg_mean;
    s->bg.std = s->bg_std;
  }
  if (est_check_background(&s->bg, sm->dim, &err))
    return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "background: %s", err.msg));
  return SB_OK;
}

int job_background_check(job_spec *s, store *st, json_t **problem) {
  const reg_snap *reg = s->snap;
  *problem = NULL;
  if (!s->bg_from_job[0]) return SB_OK;
  store_run r;
  sb_error err = {0};
  int rc = store_get(st, s->bg_from_job, &r, &err);
  if (rc == STORE_ENOTFOUND)
    return bg_bad(problem, problem_new(PROB_VALIDATION, 0, "background.from_job: no job with id %s", s->bg_from_job));
  if (rc) {
    *problem = problem_new(PROB_UNAVAILABLE, 503, "the database failed (%s); retry later", err.msg);
    return rc;
  }
  long first = s->time_index - s->window + 1;
  if (!job_state_is(r.state, JOB_SUCCEEDED)) {
    *problem = problem_new(PROB_CONFLICT, 0, "background.from_job: job %s is %s; a background needs a succeeded job",
                           r.id, r.state);
    rc = SB_EINVAL;
  } else if (r.samples_dim != s->sim_use->dim) {
    *problem = problem_new(PROB_VALIDATION, 0, "background.from_job: job %s has states of %d values, this problem "
                           "%d (%s)", r.id, r.samples_dim, s->sim_use->dim, s->sim_use->preset);
    rc = SB_EINVAL;
  } else if (r.time_index > first) {
    *problem = problem_new(PROB_VALIDATION, 0, "background.from_job: job %s is at time_index %ld, after the window's "
                           "first time %ld (time_index - W + 1); a background is forecast forward only", r.id,
                           r.time_index, first);
    rc = SB_EINVAL;
  } else if (first - r.time_index > JOB_MAX_FORECAST_STEPS) {
    *problem = problem_new(PROB_VALIDATION, 0, "background.from_job: job %s is %ld steps before the window's first "
                           "time; at most %d", r.id, first - r.time_index, JOB_MAX_FORECAST_STEPS);
    rc = SB_EINVAL;
  } else {
    /* same system: the job's estimator (when still served) simulates the same preset */
    const estimator *src = reg_find(reg, r.estimator);
    s->bg_from_n = r.n_samples;
    s->bg_from_steps = first - r.time_index;
    if (src && strcmp(src->sim->preset, s->sim_use->preset)) {
      *problem = problem_new(PROB_VALIDATION, 0, "background.from_job: job %s is of system %s, this problem of %s",
                             r.id, src->sim->preset, s->sim_use->preset);
      rc = SB_EINVAL;
    } else if (s->bg_from_n < 2) {
      *problem = problem_new(PROB_VALIDATION, 0, "background.from_job: job %s has %d sample(s); a background "
                             "ensemble needs at least 2", r.id, s->bg_from_n);
      rc = SB_EINVAL;
    }
  }
  store_run_free(&r);
  return rc;
}

int job_background_resolve(job_spec *s, store *st, sb_error *err) {
  if (!s->bg_from_job[0]) return SB_OK;
  store_run r;
  int rc = store_get(st, s->bg_from_job, &r, err);
  if (rc) return sb_wrap(err, "background.from_job"), rc == STORE_ENOTFOUND ? SB_EINVAL : SB_EIO;
  long t0 = r.time_index, first = s->time_index - s->window + 1;
  store_run_free(&r);
  if (t0 > first) return sb_fail(err, SB_EINVAL, "background.from_job %s is after the window's first time", s->bg_from_job);
  float *data;
  int S, d;
  if ((rc = store_samples(st, s->bg_from_job, &data, &S, &d, err)))
    return sb_wrap(err, "background.from_job"), rc == STORE_ENOTFOUND || rc == STORE_ECONFLICT ? SB_EINVAL : SB_EIO;
  if (d != s->sim_use->dim || S < 2) {
    free(data);
    return sb_fail(err, SB_EINVAL, "background.from_job %s has %d samples of %d values; need at least 2 of %d",
                   s->bg_from_job, S, d, s->sim_use->dim);
  }
  free(s->bg_data);
  s->bg_data = malloc((size_t)S * (size_t)d * sizeof(double));
  if (!s->bg_data) {
    free(data);
    return sb_fail(err, SB_ENOMEM, "out of memory for a background of %d x %d", S, d);
  }
  for (size_t i = 0; i < (size_t)S * (size_t)d; i++) s->bg_data[i] = data[i];
  free(data);
  /* the forecast: each member by the estimator's simulator, deterministic */
  if (first > t0 && (rc = s->sim_use->advance(s->sim_use, s->bg_data, (size_t)S, first - t0, err)))
    return sb_wrap(err, "forecasting the background"), rc;
  memset(&s->bg, 0, sizeof s->bg);
  s->bg.n_members = S;
  s->bg.members = s->bg_data;
  return est_check_background(&s->bg, d, err);
}

void job_background_free(job_spec *s) {
  free(s->bg_data);
  free(s->bg_mean);
  free(s->bg_std);
  s->bg_data = s->bg_mean = s->bg_std = NULL;
}
