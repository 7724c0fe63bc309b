/* api_streams.c: /v1/streams (cycling kept by the server) and
 * /v1/forecasts. A stream is a stored configuration (estimator, operator,
 * noise, window W, samples, seed, params); each cycle POSTs one time's
 * observation row and becomes an ordinary assimilation job whose request is
 * built here: the window is the stream's rows with time in [t-W+1, t]
 * (missing times are null rows) and the background is {"from_job": the
 * latest succeeded cycle at or before t-W}, which the worker forecasts to
 * t-W+1 (so no observation is used twice); none yet: climatology. The cycle
 * row and its job are stored in one transaction (store_cycle_insert). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api_jobs.h"
#include "clock.h"
#include "cycle_stats.h"
#include "http_routes.h"
#include "http_wait.h"
#include "job_background.h"
#include "job_forecast.h"
#include "job_state.h"
#include "log.h"
#include "metrics.h"
#include "page_token.h"
#include "problem.h"
#include "util/jsonb.h"

#define STREAM_HISTORY 10 /* cycles in GET /v1/streams/{id} */

static const char *const stream_fields[] = {"estimator", "operator", "noise_std", "window", "n_samples", "seed",
                                            "params", "state_dim", "return", NULL};
/* the fields of a stream's config copied into each cycle's request */
static const char *const stream_copied[] = {"estimator", "operator", "noise_std", "n_samples", "params",
                                            "state_dim", "return", NULL};

static json_t *api_stream_time(int64_t ms) {
  char b[40];
  clock_format_rfc3339(ms, b, sizeof b);
  return json_string(b);
}

static json_t *api_body(http_req *q, enum MHD_Result *reply) {
  json_error_t jerr;
  if (!q->body.len) {
    *reply = http_reply_problem(q, problem_new(PROB_MALFORMED_JSON, 0, "the body is empty; send a JSON object"), NULL,
                                NULL);
    return NULL;
  }
  json_t *b = json_loadb(q->body.buf, q->body.len, JSON_REJECT_DUPLICATES, &jerr);
  if (!b)
    *reply = http_reply_problem(q, problem_new(PROB_MALFORMED_JSON, 0, "line %d, column %d: %s", jerr.line,
                                               jerr.column, jerr.text), NULL, NULL);
  return b;
}

/* The assimilation request of the cycle at time t: config's fields, the
 * window rows, the cycle's seed, and the background reference (may be NULL).
 * NULL when memory runs out. */
static json_t *api_cycle_request(const json_t *config, long t, json_t *rows, const char *from_job) {
  int bad = 0;
  json_t *b = jb_object(&bad);
  for (int i = 0; stream_copied[i]; i++) {
    json_t *v = json_object_get(config, stream_copied[i]);
    if (v) jb_set(b, stream_copied[i], json_incref(v), &bad);
  }
  json_int_t seed = json_integer_value(json_object_get(config, "seed"));
  jb_set(b, "seed", json_integer((seed + (json_int_t)t) & ((1LL << 53) - 1)), &bad);
  jb_set(b, "time_index", json_integer((json_int_t)t), &bad);
  jb_set(b, "observations", json_incref(rows), &bad);
  if (from_job) jb_set(b, "background", json_pack("{s:s}", "from_job", from_job), &bad);
  return jb_done(b, bad);
}

/* Validates a stream body into its canonical config (new ref) or *problem. */
static json_t *api_stream_config(app *a, const json_t *body, json_t **problem) {
  *problem = NULL;
  if (!json_is_object(body)) {
    *problem = problem_new(PROB_VALIDATION, 0, "the body must be a JSON object with at least estimator");
    return NULL;
  }
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)body, k, v) {
    int ok = 0;
    for (int i = 0; stream_fields[i] && !ok; i++) ok = !strcmp(k, stream_fields[i]);
    if (!ok) {
      *problem = problem_new(PROB_VALIDATION, 0, "unknown field '%.100s'; allowed: estimator, operator, noise_std, "
                             "window, n_samples, seed, params, state_dim, return", k);
      return NULL;
    }
  }
  reg_snap *snap = reg_hold(&a->reg);
  const estimator *e = reg_find(snap, json_string_value(json_object_get(body, "estimator")));
  if (!e) {
    reg_drop(snap);
    *problem = problem_new(PROB_UNKNOWN_ESTIMATOR, 0, "'estimator' must name a served estimator (GET /v1/estimators)");
    return NULL;
  }
  char takers[512];
  if (!e->accepts_background) {
    *problem = problem_new(PROB_VALIDATION, 0, "estimator %s cannot use a background, so it cannot cycle; the served "
                           "estimators that can: %s", e->name, job_background_takers(snap, takers, sizeof takers));
    reg_drop(snap);
    return NULL;
  }
  json_t *w = json_object_get(body, "window");
  json_int_t W = e->window > 0 ? e->window : 1;
  reg_drop(snap);
  if (w && (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > 1024)) {
    *problem = problem_new(PROB_VALIDATION, 0, "'window' must be an integer from 1 to 1024 (observation rows per "
                           "cycle's window)");
    return NULL;
  }
  if (w) W = json_integer_value(w);
  json_t *seed = json_object_get(body, "seed");
  if (seed && (!json_is_integer(seed) || json_integer_value(seed) < 0)) {
    *problem = problem_new(PROB_VALIDATION, 0, "'seed' must be a non-negative integer");
    return NULL;
  }
  int bad = 0;
  json_t *c = json_deep_copy(body);
  if (!c) bad++;
  jb_set(c, "window", json_integer(W), &bad);
  if (!seed) { /* drawn once: every cycle's seed is this + its time index */
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint64_t)clock_now_ms();
    jb_set(c, "seed", json_integer((json_int_t)(r & ((1ULL << 52) - 1))), &bad);
  }
  if (!json_object_get(c, "n_samples")) jb_set(c, "n_samples", json_integer(100), &bad);
  /* the rest as a cycle would send it: a window of W missing rows at t = W-1 */
  json_t *rows = jb_array(&bad);
  for (json_int_t i = 0; i < W; i++) jb_push(rows, json_null(), &bad);
  json_t *probe = bad ? NULL : api_cycle_request(c, (long)(W - 1), rows, NULL);
  json_decref(rows);
  if (!probe) {
    json_decref(c);
    *problem = problem_new(PROB_INTERNAL, 0, "out of memory");
    return NULL;
  }
  job_spec s;
  job_limits lim = {a->cfg.max_samples, (double)a->cfg.max_job_memory, a->cfg.max_job_work};
  int rc = job_spec_parse(&s, probe, &a->reg, &lim, (int)a->cfg.job_threads, problem);
  job_spec_free(&s);
  json_decref(probe);
  if (rc) {
    json_decref(c);
    return NULL;
  }
  return c;
}

/* The stream's observation operator, for the cycles' obs_rmse: the config
 * parsed as a cycle's request would be (its window of missing rows). 0 with
 * *s holding the operator (s->op_use; job_spec_free after use), or non-zero
 * (an estimator no longer served, say): no obs_rmse, nothing to free. */
static int api_stream_op(app *a, const json_t *cfg, job_spec *s) {
  long W = (long)json_integer_value(json_object_get(cfg, "window"));
  if (W < 1) return 1;
  int bad = 0;
  json_t *rows = jb_array(&bad);
  for (long i = 0; i < W; i++) jb_push(rows, json_null(), &bad);
  json_t *probe = bad ? NULL : api_cycle_request(cfg, W - 1, rows, NULL);
  json_decref(rows);
  if (!probe) return 1;
  json_t *problem = NULL;
  int rc = job_spec_parse(s, probe, &a->reg, NULL, 1, &problem);
  json_decref(probe);
  json_decref(problem);
  if (rc) job_spec_free(s);
  return rc;
}

/* One cycle as the API shows it: with_arrays adds mean and std when it has
 * succeeded; stats adds spread, obs_rmse and obs_count (op: the stream's
 * operator, NULL when unknown: obs_rmse null). */
static json_t *api_cycle_json(const store_cycle *c, int with_arrays, int stats, const obs_op *op) {
  int bad = 0;
  json_t *o = json_pack("{s:I, s:s, s:s}", "time_index", (json_int_t)c->time_index, "job", c->run_id, "state",
                        c->state[0] ? c->state : "deleted");
  if (with_arrays && c->result) {
    json_t *r = json_loads(c->result, 0, NULL);
    if (r) {
      json_t *mean = json_object_get(r, "mean"), *std = json_object_get(r, "std");
      if (mean) jb_set(o, "mean", json_incref(mean), &bad);
      if (std) jb_set(o, "std", json_incref(std), &bad);
      json_decref(r);
    }
  }
  cycle_stats cs;
  if (stats && c->result && !cycle_stats_from_json(c->result, c->observations, op, &cs) && isfinite(cs.spread)) {
    jb_set(o, "spread", json_real(cs.spread), &bad);
    jb_set(o, "obs_rmse", isfinite(cs.obs_rmse) ? json_real(cs.obs_rmse) : json_null(), &bad);
    jb_set(o, "obs_count", json_integer(cs.obs_count), &bad);
  }
  return jb_done(o, bad);
}

/* detail: last_cycle and the history with their stats (GET one stream);
 * else last_cycle's time, job and state only (the list). */
static json_t *api_stream_json(http_req *q, const store_stream *st, int detail, enum MHD_Result *fail) {
  json_t *cfg = st->config ? json_loads(st->config, 0, NULL) : NULL;
  json_t *o = json_pack("{s:s, s:o, s:o}", "id", st->id, "created_at", api_stream_time(st->created_ms), "config",
                        cfg ? json_incref(cfg) : json_object());
  store_cycle *cy;
  int n;
  sb_error err = {0};
  int rc = store_cycle_list(q->app->store, st->id, LONG_MAX, 0, detail ? STREAM_HISTORY : 1, &cy, &n, &err);
  if (rc) {
    json_decref(o);
    json_decref(cfg);
    *fail = api_store_problem(q, rc, &err);
    return NULL;
  }
  job_spec spec;
  int have_op = detail && n && cfg && !api_stream_op(q->app, cfg, &spec);
  const obs_op *op = have_op ? spec.op_use : NULL;
  int bad = 0;
  jb_set(o, "last_cycle", n ? api_cycle_json(&cy[0], 0, detail, op) : json_null(), &bad);
  if (detail) {
    json_t *hist = jb_array(&bad);
    for (int i = n - 1; i >= 0; i--) jb_push(hist, api_cycle_json(&cy[i], 1, 1, op), &bad);
    jb_set(o, "history", hist, &bad);
  }
  if (have_op) job_spec_free(&spec);
  for (int i = 0; i < n; i++) store_cycle_free(&cy[i]);
  free(cy);
  json_decref(cfg);
  o = jb_done(o, bad);
  if (!o) *fail = http_reply_problem(q, problem_new(PROB_INTERNAL, 0, "out of memory"), NULL, NULL);
  return o;
}

enum MHD_Result api_stream_create(http_req *q) {
  app *a = q->app;
  enum MHD_Result reply;
  json_t *body = api_body(q, &reply);
  if (!body) return reply;
  json_t *problem = NULL;
  json_t *cfg = api_stream_config(a, body, &problem);
  json_decref(body);
  if (!cfg) return http_reply_problem(q, problem, NULL, NULL);
  char *text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
  char id[40] = "";
  sb_error err = {0};
  int rc = text ? store_stream_create(a->store, text, clock_now_ms(), id, &err) : sb_fail(&err, SB_ENOMEM, "out of memory");
  free(text);
  if (rc) {
    json_decref(cfg);
    return api_store_problem(q, rc, &err);
  }
  log_event(LOG_INFO, "stream_created", json_pack("{s:s, s:O}", "id", id, "estimator", json_object_get(cfg, "estimator")));
  json_decref(cfg);
  store_stream st;
  if ((rc = store_stream_get(a->store, id, &st, &err))) return api_store_problem(q, rc, &err);
  json_t *o = api_stream_json(q, &st, 1, &reply);
  store_stream_free(&st);
  if (!o) return reply;
  char loc[96];
  snprintf(loc, sizeof loc, "/v1/streams/%s", id);
  return http_reply_json(q, 201, o, loc);
}

enum MHD_Result api_stream_get(http_req *q) {
  store_stream st;
  sb_error err = {0};
  int rc = store_stream_get(q->app->store, q->param, &st, &err);
  if (rc) return api_store_problem(q, rc, &err);
  enum MHD_Result reply;
  json_t *o = api_stream_json(q, &st, 1, &reply);
  store_stream_free(&st);
  return o ? http_reply_json(q, 200, o, NULL) : reply;
}

enum MHD_Result api_stream_delete(http_req *q) {
  sb_error err = {0};
  int rc = store_stream_delete(q->app->store, q->param, &err);
  if (rc) return api_store_problem(q, rc, &err);
  log_event(LOG_INFO, "stream_deleted", json_pack("{s:s}", "id", q->param));
  return http_reply_json(q, 204, NULL, NULL);
}

/* page_size (1..100, default 20) and page_token (a position > 0): 0 or a reply. */
static int api_page(http_req *q, long *size, long long *pos, enum MHD_Result *reply) {
  const char *ps = http_query(q, "page_size"), *tok = http_query(q, "page_token");
  *size = 20;
  *pos = 0;
  if (ps) {
    char *end;
    *size = strtol(ps, &end, 10);
    if (end == ps || *end || *size < 1 || *size > 100) {
      *reply = http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "page_size must be an integer from 1 to 100"),
                                  NULL, NULL);
      return 1;
    }
  }
  if (tok && *tok && (*pos = page_token_decode(store_secret(q->app->store), tok)) <= 0) {
    *reply = http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "page_token is not one this daemon issued; use "
                                               "the next_page_token of the previous page"), NULL, NULL);
    return 1;
  }
  return 0;
}

enum MHD_Result api_stream_list(http_req *q) {
  long size;
  long long before;
  enum MHD_Result reply;
  if (api_page(q, &size, &before, &reply)) return reply;
  store_stream *v;
  int n;
  sb_error err = {0};
  int rc = store_stream_list(q->app->store, before, (int)size + 1, &v, &n, &err);
  if (rc) return api_store_problem(q, rc, &err);
  int bad = 0;
  json_t *items = jb_array(&bad);
  int failed = 0;
  for (int i = 0; i < n && i < size && !failed; i++) {
    json_t *it = api_stream_json(q, &v[i], 0, &reply);
    if (it) jb_push(items, it, &bad);
    else failed = 1; /* reply is the problem */
  }
  items = jb_done(items, bad);
  json_t *next = json_null();
  if (n > size && !failed) {
    char t[PAGE_TOKEN_LEN + 1];
    page_token_encode(store_secret(q->app->store), v[size - 1].seq, t);
    next = json_string(t);
  }
  for (int i = 0; i < n; i++) store_stream_free(&v[i]);
  free(v);
  if (failed) {
    json_decref(items);
    return reply;
  }
  return http_reply_json(q, 200, json_pack("{s:o, s:o}", "items", items, "next_page_token", next), NULL);
}

enum MHD_Result api_cycle_list(http_req *q) {
  long size;
  long long pos;
  enum MHD_Result reply;
  if (api_page(q, &size, &pos, &reply)) return reply;
  const char *arr = http_query(q, "arrays");
  if (arr && strcmp(arr, "true") && strcmp(arr, "false"))
    return http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "arrays must be true (the default: each "
                                             "cycle's analysis mean and std) or false (without them)"), NULL, NULL);
  int arrays = !arr || !strcmp(arr, "true");
  store_stream st;
  sb_error err = {0};
  int rc = store_stream_get(q->app->store, q->param, &st, &err);
  if (rc) return api_store_problem(q, rc, &err);
  json_t *cfg = st.config ? json_loads(st.config, 0, NULL) : NULL;
  store_stream_free(&st);
  /* newest first; a token holds the last time index of its page + 1 */
  store_cycle *cy;
  int n;
  rc = store_cycle_list(q->app->store, q->param, pos > 0 ? (long)(pos - 2) : LONG_MAX, 0, (int)size + 1, &cy, &n,
                        &err);
  if (rc) {
    json_decref(cfg);
    return api_store_problem(q, rc, &err);
  }
  job_spec spec;
  int have_op = n && cfg && !api_stream_op(q->app, cfg, &spec);
  json_decref(cfg);
  int bad = 0;
  json_t *items = jb_array(&bad);
  for (int i = 0; i < n && i < size; i++)
    jb_push(items, api_cycle_json(&cy[i], arrays, 1, have_op ? spec.op_use : NULL), &bad);
  if (have_op) job_spec_free(&spec);
  items = jb_done(items, bad);
  json_t *next = json_null();
  if (n > size) {
    char t[PAGE_TOKEN_LEN + 1];
    page_token_encode(store_secret(q->app->store), (long long)cy[size - 1].time_index + 1, t);
    next = json_string(t);
  }
  for (int i = 0; i < n; i++) store_cycle_free(&cy[i]);
  free(cy);
  return http_reply_json(q, 200, json_pack("{s:o, s:o}", "items", items, "next_page_token", next), NULL);
}

/* A job was stored queued: hand it to a worker, log, answer (long-poll). */
static enum MHD_Result api_submitted(http_req *q, const store_run *run, double wait, const char *event) {
  metrics_job_event("submitted");
  job_queue_push(q->app->jq, run->id, 1);
  log_event(LOG_INFO, event, json_pack("{s:s, s:s, s:i, s:I}", "id", run->id, "estimator", run->estimator,
                                       "n_samples", run->n_samples, "time_index", (json_int_t)run->time_index));
  snprintf(q->wait_id, sizeof q->wait_id, "%s", run->id);
  if (wait > 0 && !http_wait_suspend(q, q->wait_id, clock_mono_s() + wait, api_job_done)) return MHD_YES;
  return api_reply_job(q, q->wait_id, 202);
}

static enum MHD_Result api_queue_full(http_req *q) {
  json_t *p = q->app->stopping ? problem_new(PROB_UNAVAILABLE, 503, "the daemon is shutting down; retry later or on "
                                             "another instance")
                               : problem_new(PROB_QUEUE_FULL, 0, "%ld jobs are already waiting (--max-queue); retry "
                                             "later", q->app->cfg.max_queue);
  return http_reply_problem(q, p, "Retry-After", "1");
}

/* One attempt at storing the cycle at t of stream q->param (row: its JSON
 * text; cfg: the stream's config). Returns 1 when it answered (*reply), 0
 * when a concurrent cycle came first and the caller should look again. */
static int api_cycle_try(http_req *q, double wait, long t, const char *row, const json_t *cfg, enum MHD_Result *reply) {
  app *a = q->app;
  long W = (long)json_integer_value(json_object_get(cfg, "window"));
  json_t *problem = NULL;
  const char *hname = NULL, *hvalue = NULL;
  char existing[40] = "";
  store_cycle *cy = NULL;
  int n = 0;
  sb_error err = {0};
  /* the cycle at t (a retry) or the newest one */
  int rc = store_cycle_list(a->store, q->param, LONG_MAX, 0, 1, &cy, &n, &err);
  long last = n ? cy[0].time_index : -1;
  if (!rc && n && t <= last) {
    if (t < last) {
      for (int i = 0; i < n; i++) store_cycle_free(&cy[i]);
      free(cy), cy = NULL, n = 0;
      rc = store_cycle_list(a->store, q->param, t, 0, 1, &cy, &n, &err);
    }
    if (!rc && n && cy[0].time_index == t) {
      if (cy[0].observations && !strcmp(cy[0].observations, row)) snprintf(existing, sizeof existing, "%s", cy[0].run_id);
      else problem = problem_new(PROB_CONFLICT, 0, "the cycle at time_index %ld was already submitted with other "
                                 "observations (job %s)", t, cy[0].run_id);
    } else if (!rc) {
      problem = problem_new(PROB_CONFLICT, 0, "time_index %ld is before the stream's last cycle (%ld); cycles go "
                            "forward in time", t, last);
    }
  } else if (!rc && n && !job_state_finished(cy[0].state) && cy[0].state[0]) {
    problem = problem_new(PROB_CONFLICT, 0, "the previous cycle (time_index %ld, job %s) is %s; wait until it has "
                          "finished (GET /v1/assimilations/%s?wait=30), then send this one", last, cy[0].run_id,
                          cy[0].state, cy[0].run_id);
    hname = "Retry-After", hvalue = "1";
  } else if (!rc && t < W - 1) {
    problem = problem_new(PROB_VALIDATION, 0, "time_index must be at least %ld: the stream's window has %ld rows "
                          "ending at time_index", W - 1, W);
  }
  for (int i = 0; i < n; i++) store_cycle_free(&cy[i]);
  free(cy), cy = NULL, n = 0;
  if (rc) return *reply = api_store_problem(q, rc, &err), 1;
  if (problem) return *reply = http_reply_problem(q, problem, hname, hvalue), 1;
  if (existing[0]) {
    snprintf(q->wait_id, sizeof q->wait_id, "%s", existing);
    if (wait > 0 && !http_wait_suspend(q, q->wait_id, clock_mono_s() + wait, api_job_done)) return *reply = MHD_YES, 1;
    return *reply = api_reply_job(q, existing, 200), 1;
  }
  /* the window: earlier rows of this stream with time in [t-W+1, t-1], null where missing */
  int bad = 0;
  json_t *rows = jb_array(&bad);
  for (long i = 0; i < W; i++) jb_push(rows, json_null(), &bad);
  if (json_array_set_new(rows, (size_t)(W - 1), json_loads(row, JSON_DECODE_ANY, NULL))) bad++;
  if (W > 1) rc = store_cycle_list(a->store, q->param, t - 1, 0, (int)(W - 1), &cy, &n, &err);
  for (int i = 0; !rc && i < n; i++) {
    long k = cy[i].time_index - (t - W + 1);
    if (k >= 0 && k < W - 1 && cy[i].observations &&
        json_array_set_new(rows, (size_t)k, json_loads(cy[i].observations, JSON_DECODE_ANY, NULL)))
      bad++;
  }
  for (int i = 0; i < n; i++) store_cycle_free(&cy[i]);
  free(cy), cy = NULL, n = 0;
  /* the background: the newest succeeded analysis at or before t-W */
  char from[40] = "";
  if (!rc && t - W >= 0 && !(rc = store_cycle_list(a->store, q->param, t - W, 1, 1, &cy, &n, &err)) && n)
    snprintf(from, sizeof from, "%s", cy[0].run_id);
  for (int i = 0; i < n; i++) store_cycle_free(&cy[i]);
  free(cy);
  if (rc) {
    json_decref(rows);
    return *reply = api_store_problem(q, rc, &err), 1;
  }
  json_t *req = bad ? NULL : api_cycle_request(cfg, t, rows, from[0] ? from : NULL);
  json_decref(rows);
  if (!req) return *reply = http_reply_problem(q, problem_new(PROB_INTERNAL, 0, "out of memory"), NULL, NULL), 1;
  job_spec spec;
  job_limits lim = {a->cfg.max_samples, (double)a->cfg.max_job_memory, a->cfg.max_job_work};
  if (job_spec_parse(&spec, req, &a->reg, &lim, (int)a->cfg.job_threads, &problem) ||
      api_check_background(a, &spec, &lim, &problem)) {
    job_spec_free(&spec);
    json_decref(req);
    return *reply = http_reply_problem(q, problem, NULL, NULL), 1;
  }
  char *request = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(req);
  if (!request) {
    job_spec_free(&spec);
    return *reply = http_reply_problem(q, problem_new(PROB_INTERNAL, 0, "out of memory"), NULL, NULL), 1;
  }
  if (job_queue_reserve(a->jq)) {
    job_spec_free(&spec);
    free(request);
    return *reply = api_queue_full(q), 1;
  }
  store_new_run nr = {spec.est->name, spec.time_index, spec.n_samples, request, NULL, NULL};
  store_run run;
  rc = store_cycle_insert(a->store, q->param, t, row, last, &nr, &run, &err);
  job_spec_free(&spec);
  free(request);
  if (rc) {
    job_queue_release(a->jq);
    if (rc == STORE_ECONFLICT) return 0; /* another request stored a cycle meanwhile: look again */
    return *reply = api_store_problem(q, rc, &err), 1;
  }
  *reply = api_submitted(q, &run, wait, "cycle_submitted");
  store_run_free(&run);
  return 1;
}

enum MHD_Result api_cycle_create(http_req *q) {
  if (q->started) return api_reply_job(q, q->wait_id, 202); /* resumed after ?wait */
  double wait;
  enum MHD_Result wait_reply;
  if (api_wait_param(q, &wait, &wait_reply)) return wait_reply;
  enum MHD_Result reply;
  json_t *body = api_body(q, &reply);
  if (!body) return reply;
  json_t *tj = json_object_get(body, "time_index"), *obs = json_object_get(body, "observations");
  if (!json_is_object(body) || json_object_size(body) != 2 || !json_is_integer(tj) || !json_is_array(obs) ||
      json_array_size(obs) != 1) {
    json_decref(body);
    return http_reply_problem(q, problem_new(PROB_VALIDATION, 0, "a cycle is {\"time_index\": t, \"observations\": "
                                             "[row]}: one row (an array of the observed values, null for missing, or "
                                             "null), as a window of one"), NULL, NULL);
  }
  long t = (long)json_integer_value(tj);
  char *row = json_dumps(json_array_get(obs, 0), JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(body);
  store_stream st;
  sb_error err = {0};
  int rc = row ? store_stream_get(q->app->store, q->param, &st, &err) : sb_fail(&err, SB_ENOMEM, "out of memory");
  if (rc) {
    free(row);
    return api_store_problem(q, rc, &err);
  }
  json_t *cfg = json_loads(st.config, 0, NULL);
  store_stream_free(&st);
  int done = 0;
  for (int attempt = 0; cfg && !done && attempt < 4; attempt++) done = api_cycle_try(q, wait, t, row, cfg, &reply);
  if (!done)
    reply = http_reply_problem(q, problem_new(PROB_CONFLICT, 0, cfg ? "other cycles of this stream keep arriving at "
                                              "the same time; retry" : "the stream's stored config is not JSON"),
                               NULL, NULL);
  free(row);
  json_decref(cfg);
  return reply;
}

enum MHD_Result api_forecast_create(http_req *q) {
  app *a = q->app;
  if (q->started) return api_reply_job(q, q->wait_id, 202);
  double wait;
  enum MHD_Result wait_reply;
  if (api_wait_param(q, &wait, &wait_reply)) return wait_reply;
  enum MHD_Result reply;
  json_t *body = api_body(q, &reply);
  if (!body) return reply;
  json_t *canon = NULL, *problem = NULL;
  int rc = job_forecast_canonical(body, a->store, &a->reg, &canon, &problem);
  json_decref(body);
  if (rc) return http_reply_problem(q, problem, NULL, NULL);
  job_forecast f;
  if (job_forecast_spec(&f, canon, &a->reg, &problem)) {
    job_forecast_free(&f);
    json_decref(canon);
    return http_reply_problem(q, problem, NULL, NULL);
  }
  /* its cost: the samples as doubles and floats, K steps of each, the summary */
  double S = f.spec.n_samples, d = f.spec.sim_use->dim;
  double bytes = 12.0 * S * d + 88.0 * d * (2 + f.spec.n_quantiles) + (f.spec.want_samples ? 88.0 * S * d : 0);
  double flops = S * (double)f.steps * f.spec.sim_use->flops_step + S * d * 8;
  if (bytes > (double)a->cfg.max_job_memory || flops > a->cfg.max_job_work) {
    job_forecast_free(&f);
    json_decref(canon);
    return http_reply_problem(q, problem_new(PROB_LIMIT, 0, "this forecast would need about %.3g MB and %.3g "
                                             "floating-point operations; the limits are %.3g MB (--max-job-memory) "
                                             "and %.3g (--max-job-work): ask for fewer steps", bytes / 1e6, flops,
                                             (double)a->cfg.max_job_memory / 1e6, a->cfg.max_job_work), NULL, NULL);
  }
  char *request = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(canon);
  if (!request || job_queue_reserve(a->jq)) {
    job_forecast_free(&f);
    if (!request) return http_reply_problem(q, problem_new(PROB_INTERNAL, 0, "out of memory"), NULL, NULL);
    free(request);
    return api_queue_full(q);
  }
  store_new_run nr = {f.spec.est->name, f.spec.time_index, f.spec.n_samples, request, NULL, NULL};
  store_run run;
  int replayed = 0;
  sb_error err = {0};
  rc = store_insert(a->store, &nr, &run, &replayed, &err);
  job_forecast_free(&f);
  free(request);
  if (rc) {
    job_queue_release(a->jq);
    return api_store_problem(q, rc, &err);
  }
  enum MHD_Result r = api_submitted(q, &run, wait, "forecast_submitted");
  store_run_free(&run);
  return r;
}
