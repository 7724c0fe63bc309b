#include "job_spec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "est/est_chunk.h"
#include "job_background.h"
#include "problem.h"
#include "util/jsonb.h"

static int job_bad(json_t **problem, json_t *p) {
  *problem = p;
  return SB_EINVAL;
}

static const char *const job_fields[] = {"estimator", "time_index", "observations", "operator", "noise_std",
                                         "n_samples", "seed", "return", "params", "state_dim", "background", NULL};
static const char *const job_return_fields[] = {"samples", "quantiles", "window", NULL};

static const char *job_unknown_key(const json_t *o, const char *const *known) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    int ok = 0;
    for (int i = 0; known[i] && !ok; i++) ok = !strcmp(k, known[i]);
    if (!ok) return k;
  }
  return NULL;
}

const est_background *job_spec_background(const job_spec *s) {
  return s->has_background && (s->bg.members || s->bg.mean) ? &s->bg : NULL;
}

void job_spec_cost(const job_spec *s, int threads, est_cost *c) {
  est_problem p = {s->est->sim, s->op_use, &s->noise, s->window, s->time_index, s->y, job_spec_background(s)};
  est_options o = {.n_samples = s->n_samples, .want_window = s->want_window, .threads = threads, .params = s->params};
  est_estimate(s->est, &p, &o, c);
  double S = s->n_samples, n = s->est->sim->dim, W = s->window, B = s->n_windows > 1 ? s->n_windows : 1;
  /* float copy; per component a sorted column, mean, std, quantiles as JSON
   * values (about 64 bytes each) and their text (about 24) */
  double bytes = 4.0 * S * n + 8.0 * S + 88.0 * n * (2 + s->n_quantiles) + (s->want_window ? 88.0 * W * n : 0);
  if (s->want_samples) bytes += 88.0 * S * n + (s->est->has_density ? 88.0 * S : 0);
  c->bytes += B * bytes;
  c->flops = B * (c->flops + S * n * (log2(S + 1) + 4) + (s->want_window ? S * W * n : 0));
  /* a background: its members (doubles), and for from_job the float copy read back and its forecast */
  double Sb = s->bg_from_job[0] ? s->bg_from_n : s->bg.n_members;
  c->bytes += 8.0 * Sb * n + (s->bg_from_job[0] ? 4.0 * Sb * n : 0) + (s->bg.mean ? 16.0 * n : 0);
  if (s->bg_from_job[0]) c->flops += Sb * (double)s->bg_from_steps * s->est->sim->flops_step;
}

/* observations as a list of windows: an array whose first element is an
 * array holding an array (a window's row), not numbers (one window's rows) */
static int job_is_window_list(const json_t *j) {
  json_t *first = json_array_get(j, 0);
  if (!json_is_array(first)) return 0;
  for (size_t i = 0; i < json_array_size(first); i++)
    if (json_is_array(json_array_get(first, i))) return 1;
  return 0;
}

int job_request_windows(const char *request) {
  json_t *body = json_loads(request, 0, NULL);
  json_t *j = json_object_get(body, "observations");
  int B = json_is_array(j) && job_is_window_list(j) ? (int)json_array_size(j) : 0;
  json_decref(body);
  return B;
}

int job_spec_check_limits(const job_spec *s, const job_limits *lim, int threads, json_t **problem) {
  if (!lim) return SB_OK;
  est_cost c;
  job_spec_cost(s, threads, &c);
  if (c.bytes > lim->max_bytes)
    return job_bad(problem, problem_new(PROB_LIMIT, 0, "this job would need about %.3g MB of memory, the limit is "
                                        "%.3g MB (--max-job-memory); ask for fewer samples, particles or members, a "
                                        "shorter window, or leave out return.samples / return.window",
                                        c.bytes / 1e6, lim->max_bytes / 1e6));
  if (c.flops > lim->max_flops)
    return job_bad(problem, problem_new(PROB_LIMIT, 0, "this job would need about %.3g floating-point operations, "
                                        "the limit is %.3g (--max-job-work); ask for fewer samples, particles or "
                                        "members, or a shorter window", c.flops, lim->max_flops));
  return SB_OK;
}

/* body["return"] (j, may be NULL) into s->want_samples, want_window and the
 * quantiles (s->est set). */
int job_spec_parse_return(job_spec *s, const json_t *j, json_t **problem) {
  const estimator *e = s->est;
  const char *unk;
  s->n_quantiles = 3;
  s->quantiles[0] = 0.05, s->quantiles[1] = 0.5, s->quantiles[2] = 0.95;
  if (j) {
    if (!json_is_object(j))
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'return' must be an object like {\"samples\": false, "
                                          "\"quantiles\": [0.05, 0.5, 0.95], \"window\": false}"));
    if ((unk = job_unknown_key(j, job_return_fields)))
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "unknown field 'return.%.100s'; allowed: samples, "
                                          "quantiles, window", unk));
    json_t *b = json_object_get(j, "samples");
    if (b && !json_is_boolean(b))
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'return.samples' must be true or false"));
    s->want_samples = b && json_is_true(b);
    b = json_object_get(j, "window");
    if (b && !json_is_boolean(b))
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'return.window' must be true or false"));
    s->want_window = b && json_is_true(b);
    if (s->want_window && !e->has_window)
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "estimator %s cannot return the states of the whole "
                                          "window; set return.window to false", e->name));
    b = json_object_get(j, "quantiles");
    if (b) {
      if (!json_is_array(b) || json_array_size(b) > JOB_MAX_QUANTILES)
        return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'return.quantiles' must be an array of at most %d "
                                            "numbers strictly between 0 and 1", JOB_MAX_QUANTILES));
      s->n_quantiles = (int)json_array_size(b);
      for (int i = 0; i < s->n_quantiles; i++) {
        json_t *q = json_array_get(b, (size_t)i);
        double v = json_is_number(q) ? json_number_value(q) : -1;
        if (!(v > 0 && v < 1))
          return job_bad(problem, problem_new(PROB_VALIDATION, 0, "return.quantiles[%d] must be a number strictly "
                                              "between 0 and 1", i));
        s->quantiles[i] = v;
        char name[32], other[32];
        job_quantile_name(v, name, sizeof name);
        for (int k = 0; k < i; k++)
          if (!strcmp(job_quantile_name(s->quantiles[k], other, sizeof other), name))
            return job_bad(problem, problem_new(PROB_VALIDATION, 0, "return.quantiles[%d] repeats %s (as [%d]); "
                                                "ask for each quantile once", i, name, k));
      }
    }
  }
  return SB_OK;
}

int job_spec_parse(job_spec *s, const json_t *body, registry *reg, const job_limits *lim, int threads,
                   json_t **problem) {
  long max_samples = lim ? lim->max_samples : 1000000;
  memset(s, 0, sizeof *s);
  *problem = NULL;
  s->snap = reg_hold(reg);
  if (!json_is_object(body))
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "the body must be a JSON object with at least "
                                        "estimator, time_index, observations and n_samples"));
  const char *unk = job_unknown_key(body, job_fields);
  if (unk)
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "unknown field '%.100s'; allowed: estimator, time_index, "
                                        "observations, operator, noise_std, n_samples, seed, return, params, state_dim, "
                                        "background", unk));
  json_t *j = json_object_get(body, "estimator");
  if (!json_is_string(j))
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'estimator' must be a string naming an estimator "
                                        "(GET /v1/estimators lists them)"));
  s->est = reg_find(s->snap, json_string_value(j));
  if (!s->est)
    return job_bad(problem, problem_new(PROB_UNKNOWN_ESTIMATOR, 0, "no estimator named '%.128s'; GET /v1/estimators "
                                        "lists the served ones", json_string_value(j)));
  const estimator *e = s->est;
  const sim *sm = e->sim;

  /* state_dim: estimators that run at any state size (e.g. local-score) take it from the request */
  j = json_object_get(body, "state_dim");
  if (j) {
    if (!json_is_integer(j))
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'state_dim' must be an integer (the number of nodes)"));
    json_int_t N = json_integer_value(j);
    if (e->dim_max > 0 ? N < e->dim_min || N > e->dim_max : N != sm->dim) {
      if (e->dim_max > 0)
        return job_bad(problem, problem_new(PROB_VALIDATION, 0, "estimator %s serves %s with %d..%d nodes, not "
                                            "state_dim %lld", e->name, sm->preset, e->dim_min, e->dim_max, (long long)N));
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "estimator %s serves %s with exactly %d nodes, not "
                                          "state_dim %lld", e->name, sm->preset, sm->dim, (long long)N));
    }
    if (N != sm->dim) {
      sb_error e0 = {0};
      if (sim_create(&s->sim, sm->preset, (int)N, &e0))
        return job_bad(problem, problem_new(PROB_VALIDATION, 0, "state_dim: %s", e0.msg));
      sm = s->sim;
    }
  }
  s->sim_use = sm;

  j = json_object_get(body, "time_index");
  if (!json_is_integer(j))
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'time_index' must be an integer: the index of the "
                                        "window's last observation (0..%ld)", sm->t_max));
  s->time_index = (long)json_integer_value(j);

  j = json_object_get(body, "n_samples");
  if (!j) s->n_samples = 100;
  else if (!json_is_integer(j) || json_integer_value(j) < 1 || json_integer_value(j) > max_samples)
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'n_samples' must be an integer from 1 to %ld (the "
                                        "daemon's --max-samples)", max_samples));
  else s->n_samples = (int)json_integer_value(j);

  j = json_object_get(body, "seed");
  if (j) {
    if (!json_is_integer(j) || json_integer_value(j) < 0)
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'seed' must be a non-negative integer"));
    s->seed = (uint64_t)json_integer_value(j);
    s->has_seed = 1;
  } else {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint64_t)time(NULL);
    s->seed = r & ((1ULL << 53) - 1); /* exact in every JSON reader */
  }

  /* return */
  if (job_spec_parse_return(s, json_object_get(body, "return"), problem)) return SB_EINVAL;
  j = json_object_get(body, "params");
  if (j) {
    if (!json_is_object(j))
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'params' must be an object of estimator settings"));
    s->params = json_incref(j);
  }

  /* operator */
  sb_error err = {0};
  j = json_object_get(body, "operator");
  if (j) {
    if (obs_from_json(&s->op, j, sm->channels, sm->height, sm->width, &err))
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "operator: %s", err.msg));
    s->op_use = s->op;
  } else if (e->fixed_op) {
    s->op_use = e->fixed_op;
  } else {
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'operator' is required for estimator %s, e.g. "
                                        "{\"type\": \"identity\"} or {\"type\": \"subsample\", \"stride\": 2}", e->name));
  }
  int n_obs = s->op_use->n_obs;

  j = json_object_get(body, "noise_std");
  if (j) {
    if (obs_noise_from_json(&s->noise, j, n_obs, &err))
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "noise_std: %s", err.msg));
  } else if (e->fixed_noise) {
    if (e->fixed_noise->n != n_obs)
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "noise_std is required: the operator observes %d "
                                          "components, the estimator's noise has %d", n_obs, e->fixed_noise->n));
    if (obs_noise_scalar(&s->noise, 1.0, n_obs, &err))
      return job_bad(problem, problem_new(PROB_INTERNAL, 0, "%s", err.msg));
    memcpy(s->noise.std, e->fixed_noise->std, (size_t)n_obs * sizeof(double));
  } else {
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'noise_std' is required for estimator %s: a positive "
                                        "number or an array of %d of them", e->name, n_obs));
  }

  j = json_object_get(body, "observations");
  const json_t *windows = j;
  int B = 1;
  if (json_is_array(j) && job_is_window_list(j)) {
    if (json_array_size(j) > JOB_MAX_WINDOWS)
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'observations' as a list of windows holds at most %d "
                                          "windows, got %zu", JOB_MAX_WINDOWS, json_array_size(j)));
    B = (int)json_array_size(j);
    s->n_windows = B;
    j = json_array_get(j, 0);
  }
  if (!json_is_array(j) || json_array_size(j) < 1 || json_array_size(j) > 1024)
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'observations' must be an array of 1 to 1024 rows "
                                        "(oldest first), each null or an array of %d numbers or nulls, or a list of "
                                        "such windows (all of one length)", n_obs));
  s->window = (int)json_array_size(j);
  /* params.chunk answers a longer window as a cycle of chunks (est_chunk.h): its checks come first, and
   * each chunk's length is checked below against the estimator's windows */
  est_options o = {.n_samples = s->n_samples, .want_window = s->want_window, .params = s->params};
  if (est_check_options(e, &o, &err)) return job_bad(problem, problem_new(PROB_VALIDATION, 0, "%s", err.msg));
  const int chunk = est_chunk_param(s->params);
  int wlo, whi;
  est_window_range(e, &wlo, &whi);
  const int whole = chunk <= 0 || chunk >= s->window; /* otherwise est_chunk_check_problem names a chunk that does not fit */
  if (whole && wlo == whi && s->window != wlo)
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "estimator %s needs exactly %d observation rows, got %d",
                                        e->name, wlo, s->window));
  if (whole && (s->window < wlo || s->window > whi))
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "estimator %s needs a window of %d..%d observations, got %d",
                                        e->name, wlo, whi, s->window));
  size_t per = (size_t)s->window * (size_t)(n_obs > 0 ? n_obs : 1);
  s->y = malloc((size_t)B * per * sizeof(double));
  if (!s->y) return job_bad(problem, problem_new(PROB_INTERNAL, 0, "out of memory"));
  const json_t *bgj = json_object_get(body, "background");
  if (bgj && s->n_windows)
    return job_bad(problem, problem_new(PROB_VALIDATION, 0, "'background' describes the first state of one window; "
                                        "send a list of windows without one, or one window per request"));
  if (bgj && job_background_parse(s, bgj, s->snap, max_samples, problem)) return SB_EINVAL;
  for (int b = 0; b < B; b++) {
    char where[48] = "";
    if (s->n_windows) {
      j = json_array_get(windows, (size_t)b);
      snprintf(where, sizeof where, "[%d]", b);
      if (!json_is_array(j) || (int)json_array_size(j) != s->window)
        return job_bad(problem, problem_new(PROB_VALIDATION, 0, "observations%s must be a window of %d rows like "
                                            "observations[0] (every window of a list has the same length)", where,
                                            s->window));
    }
    if (obs_window_from_json(j, s->window, n_obs, s->y + (size_t)b * per, &err)) {
      size_t sh[3];
      int nd = sim_state_shape(sm, sh);
      char st[64];
      snprintf(st, sizeof st, nd == 1 ? "[%zu]" : nd == 2 ? "[%zu, %zu]" : "[%zu, %zu, %zu]", sh[0], sh[1], sh[2]);
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "observations%s: %s; expected shape [%d, %d]: %d rows "
                                          "(oldest first) of the %d values that operator %s observes on the state %s, "
                                          "each null or numbers and nulls", where, err.msg, s->window, n_obs, s->window,
                                          n_obs, obs_type_name(s->op_use), st));
    }
    est_problem p = {sm, s->op_use, &s->noise, s->window, s->time_index, s->y + (size_t)b * per,
                     job_spec_background(s)};
    if (est_chunk_check_problem(e, &p, chunk, &err))
      return job_bad(problem, problem_new(PROB_VALIDATION, 0, "%s%s%s%s", s->n_windows ? "observations" : "", where,
                                          s->n_windows ? ": " : "", err.msg));
  }
  /* what it would take, before it is queued */
  return job_spec_check_limits(s, lim, threads, problem);
}

const char *job_quantile_name(double q, char *buf, size_t size) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, q);
    if (strtod(buf, NULL) == q) break;
  }
  return buf;
}

json_t *job_spec_canonical(const job_spec *s, const json_t *body) {
  int bad = 0;
  json_t *c = json_deep_copy(body);
  if (c && !s->has_seed) jb_set(c, "seed", json_integer((json_int_t)s->seed), &bad);
  return jb_done(c, bad);
}

void job_spec_free(job_spec *s) {
  sim_free(s->sim);
  obs_free(s->op);
  obs_noise_free(&s->noise);
  free(s->y);
  json_decref(s->params);
  reg_drop(s->snap);
  job_background_free(s);
  memset(s, 0, sizeof *s);
}
