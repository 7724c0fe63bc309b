/* api_assimilations.c: /v1/assimilations: submit, read, list, samples,
 * cancel, delete. A POST is validated (job_spec), stored durably, then
 * queued; the 202 goes out only after the store's commit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "api_jobs.h"
#include "http_routes.h"
#include "http_wait.h"
#include "job_background.h"
#include "job_spec.h"
#include "job_state.h"
#include "log.h"
#include "metrics.h"
#include "util/jsonb.h"
#include "util/npy.h"
#include "page_token.h"
#include "problem.h"


static json_t *api_time(int64_t ms) {
  if (!ms) return json_null();
  char b[40];
  clock_format_rfc3339(ms, b, sizeof b);
  return json_string(b);
}

static int api_finished(const char *state) {
  return job_state_finished(state);
}

/* The job resource. with_result = 0 leaves result out (lists). */
static json_t *api_job_json(http_req *q, const store_run *r, int with_result) {
  double progress = r->progress;
  if (job_state_is(r->state, JOB_RUNNING)) job_queue_progress(q->app->jq, r->id, &progress);
  json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:i, s:o, s:o, s:o, s:f, s:i}", "id", r->id, "state", r->state,
                        "estimator", r->estimator, "time_index", (json_int_t)r->time_index, "n_samples",
                        r->n_samples, "created_at", api_time(r->created_ms), "started_at", api_time(r->started_ms),
                        "finished_at", api_time(r->finished_ms), "progress", progress, "attempts", r->attempts);
  if (!o) return NULL;
  int bad = 0;
  if (r->cancel_requested && !api_finished(r->state)) jb_set(o, "cancel_requested", json_true(), &bad);
  if (with_result) {
    json_t *res = r->result ? json_loads(r->result, 0, NULL) : NULL;
    jb_set(o, "result", res ? res : json_null(), &bad);
    /* ?include=request: the request as stored (canonical form), e.g. for
     * the console to draw the observations next to the posterior */
    const char *inc = http_query(q, "include");
    if (inc && !strcmp(inc, "request") && r->request) {
      json_t *req = json_loads(r->request, 0, NULL);
      if (req) jb_set(o, "request", req, &bad);
    }
  }
  if (r->error) {
    json_t *e = json_loads(r->error, 0, NULL);
    if (e) jb_set(o, "error", e, &bad);
  }
  return jb_done(o, bad);
}

enum MHD_Result api_store_problem(http_req *q, int rc, const sb_error *err) {
  if (rc == STORE_ENOTFOUND) return http_reply_problem(q, problem_new(PROB_NOT_FOUND, 0, "%s", err->msg), NULL, NULL);
  if (rc == STORE_ECONFLICT) return http_reply_problem(q, problem_new(PROB_CONFLICT, 0, "%s", err->msg), NULL, NULL);
  if (rc == STORE_EMISMATCH)
    return http_reply_problem(q, problem_new(PROB_IDEMPOTENCY, 0, "%s", err->msg), NULL, NULL);
  log_event(LOG_ERROR, "store_error", json_pack("{s:s, s:s}", "path", q->url, "reason", err->msg));
  return http_reply_problem(q, problem_new(PROB_UNAVAILABLE, 503, "the database failed (%s); retry later", err->msg),
                            "Retry-After", "5");
}

/* Answers with the job: 200 when finished (or asked for), 202 while pending. */
enum MHD_Result api_reply_job(http_req *q, const char *id, int pending_status) {
  store_run r;
  sb_error err = {0};
  int rc = store_get(q->app->store, id, &r, &err);
  if (rc) return api_store_problem(q, rc, &err);
  char loc[96];
  snprintf(loc, sizeof loc, "/v1/assimilations/%s", r.id);
  int status = api_finished(r.state) ? 200 : pending_status;
  json_t *j = api_job_json(q, &r, 1);
  store_run_free(&r);
  return http_reply_json(q, status, j, loc);
}

int api_job_done(http_req *q, const char *id) {
  store_run r;
  if (store_get(q->app->store, id, &r, NULL)) return 1;
  int done = api_finished(r.state);
  store_run_free(&r);
  return done;
}

/* ?wait=S: seconds to long-poll, capped at API_MAX_WAIT (a client asking
 * for more gets the longest wait, not an error). 0 with *wait set; -1 when it
 * is not a number >= 0, after replying with the problem (*reply). */
int api_wait_param(http_req *q, double *wait, enum MHD_Result *reply) {
  const char *w = http_query(q, "wait");
  *wait = 0;
  if (!w) return 0;
  char *end;
  double v = strtod(w, &end);
  if (end == w || *end || !(v >= 0)) {
    *reply = http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "wait must be a number of seconds >= 0 (above "
                                               "%g it is capped at %g)", API_MAX_WAIT, API_MAX_WAIT), NULL, NULL);
    return -1;
  }
  *wait = v > API_MAX_WAIT ? API_MAX_WAIT : v;
  return 0;
}

static uint64_t api_fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

int api_check_background(app *a, job_spec *spec, const job_limits *lim, json_t **problem) {
  if (job_background_check(spec, a->store, problem)) return SB_EINVAL;
  return job_spec_check_limits(spec, lim, (int)a->cfg.job_threads, problem);
}

enum MHD_Result api_assim_create(http_req *q) {
  app *a = q->app;
  if (q->started) return api_reply_job(q, q->wait_id, 202); /* resumed after ?wait */
  double wait;
  enum MHD_Result wait_reply;
  if (api_wait_param(q, &wait, &wait_reply)) return wait_reply;
  const char *key = http_header(q, "Idempotency-Key");
  if (key) {
    size_t n = strlen(key);
    int ok = n >= 1 && n <= 255;
    for (size_t i = 0; ok && i < n; i++) ok = key[i] > 32 && key[i] < 127;
    if (!ok)
      return http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "Idempotency-Key must be 1 to 255 visible ASCII "
                                               "characters"), NULL, NULL);
  }
  if (!q->body.len)
    return http_reply_problem(q, problem_new(PROB_MALFORMED_JSON, 0, "the body is empty; send a JSON object"), NULL,
                              NULL);
  json_error_t jerr;
  json_t *body = json_loadb(q->body.buf, q->body.len, JSON_REJECT_DUPLICATES, &jerr);
  if (!body)
    return http_reply_problem(q, problem_new(PROB_MALFORMED_JSON, 0, "line %d, column %d: %s", jerr.line, jerr.column,
                                             jerr.text), NULL, NULL);
  job_spec spec;
  json_t *problem = NULL;
  job_limits lim = {a->cfg.max_samples, (double)a->cfg.max_job_memory, a->cfg.max_job_work};
  if (job_spec_parse(&spec, body, &a->reg, &lim, (int)a->cfg.job_threads, &problem) ||
      api_check_background(a, &spec, &lim, &problem)) {
    job_spec_free(&spec);
    json_decref(body);
    return http_reply_problem(q, problem, NULL, NULL);
  }
  /* Idempotency compares the body as sent (canonical form, sorted keys). */
  char *canon_body = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
  json_t *canon = job_spec_canonical(&spec, body);
  char *request = canon ? json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(canon);
  char hash[24];
  snprintf(hash, sizeof hash, "%016llx", canon_body ? (unsigned long long)api_fnv1a(canon_body) : 0ULL);
  free(canon_body);
  if (!request) {
    job_spec_free(&spec);
    json_decref(body);
    return http_reply_problem(q, problem_new(PROB_INTERNAL, 0, "out of memory"), NULL, NULL);
  }
  /* A replay answers with its run whatever the queue holds: look it up
   * before asking the queue for a slot (store_insert checks again, for two
   * first submissions racing). */
  if (key) {
    store_run prev;
    sb_error ierr = {0};
    int found = store_find_idem(a->store, key, hash, &prev, &ierr);
    if (found) {
      free(request);
      job_spec_free(&spec);
      json_decref(body);
      if (found < 0) return api_store_problem(q, found, &ierr);
      snprintf(q->wait_id, sizeof q->wait_id, "%s", prev.id);
      store_run_free(&prev);
      if (wait > 0 && !http_wait_suspend(q, q->wait_id, clock_mono_s() + wait, api_job_done)) return MHD_YES;
      return api_reply_job(q, q->wait_id, 202);
    }
  }
  if (job_queue_reserve(a->jq)) {
    free(request);
    job_spec_free(&spec);
    json_decref(body);
    json_t *p = a->stopping ? problem_new(PROB_UNAVAILABLE, 503, "the daemon is shutting down; retry later or on "
                                          "another instance")
                            : problem_new(PROB_QUEUE_FULL, 0, "%ld jobs are already waiting (--max-queue); retry "
                                          "later", a->cfg.max_queue);
    return http_reply_problem(q, p, "Retry-After", "1");
  }
  store_new_run n = {spec.est->name, spec.time_index, spec.n_samples, request, key, hash};
  store_run run;
  int replayed = 0;
  sb_error err = {0};
  int rc = store_insert(a->store, &n, &run, &replayed, &err);
  free(request);
  job_spec_free(&spec);
  json_decref(body);
  if (rc) {
    job_queue_release(a->jq);
    return api_store_problem(q, rc, &err);
  }
  if (replayed) {
    job_queue_release(a->jq);
  } else {
    metrics_job_event("submitted");
    job_queue_push(a->jq, run.id, 1);
    log_event(LOG_INFO, "job_submitted", json_pack("{s:s, s:s, s:i, s:I}", "id", run.id, "estimator", run.estimator,
                                                   "n_samples", run.n_samples, "time_index",
                                                   (json_int_t)run.time_index));
  }
  snprintf(q->wait_id, sizeof q->wait_id, "%s", run.id);
  store_run_free(&run);
  if (wait > 0 && !http_wait_suspend(q, q->wait_id, clock_mono_s() + wait, api_job_done)) return MHD_YES;
  return api_reply_job(q, q->wait_id, 202);
}

enum MHD_Result api_assim_get(http_req *q) {
  if (q->started) return api_reply_job(q, q->param, 200);
  double wait;
  enum MHD_Result wait_reply;
  if (api_wait_param(q, &wait, &wait_reply)) return wait_reply;
  if (wait > 0 && !http_wait_suspend(q, q->param, clock_mono_s() + wait, api_job_done)) return MHD_YES;
  return api_reply_job(q, q->param, 200);
}

enum MHD_Result api_assim_list(http_req *q) {
  const char *state = http_query(q, "state"), *est = http_query(q, "estimator");
  const char *ps = http_query(q, "page_size"), *tok = http_query(q, "page_token");
  if (state && *state) {
    char list[128];
    if (job_state_parse(state) < 0)
      return http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "state must be one of %s",
                                               job_state_list(list, sizeof list, ", ", "")), NULL, NULL);
  } else {
    state = NULL;
  }
  if (est && !*est) est = NULL;
  long size = 20;
  if (ps) {
    char *end;
    size = strtol(ps, &end, 10);
    if (end == ps || *end || size < 1 || size > 100)
      return http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "page_size must be an integer from 1 to 100"),
                                NULL, NULL);
  }
  long long before = 0;
  if (tok && *tok && (before = page_token_decode(store_secret(q->app->store), tok)) <= 0)
    return http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "page_token is not one this daemon issued; use the "
                                             "next_page_token of the previous page"), NULL, NULL);
  store_run *runs;
  int n;
  sb_error err = {0};
  int rc = store_list(q->app->store, state, est, before, (int)size + 1, &runs, &n, &err);
  if (rc) return api_store_problem(q, rc, &err);
  int bad = 0;
  json_t *items = jb_array(&bad);
  for (int i = 0; i < n && i < size; i++) jb_push(items, api_job_json(q, &runs[i], 0), &bad);
  items = jb_done(items, bad);
  json_t *next = json_null();
  if (n > size) {
    char t[PAGE_TOKEN_LEN + 1];
    page_token_encode(store_secret(q->app->store), runs[size - 1].seq, t);
    next = json_string(t);
  }
  for (int i = 0; i < n; i++) store_run_free(&runs[i]);
  free(runs);
  return http_reply_json(q, 200, json_pack("{s:o, s:o}", "items", items, "next_page_token", next), NULL);
}

enum MHD_Result api_assim_samples(http_req *q) {
  const char *fmt = http_query(q, "format"), *accept = http_header(q, MHD_HTTP_HEADER_ACCEPT);
  int npy;
  if (fmt) {
    if (strcmp(fmt, "npy") && strcmp(fmt, "json"))
      return http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "format must be npy or json"), NULL, NULL);
    npy = !strcmp(fmt, "npy");
  } else {
    /* content negotiation by q-values: npy only when it is acceptable
     * (q > 0) and preferred to JSON (a tie goes to JSON unless only npy is
     * named, so "*\/\*" still gets JSON); neither acceptable: 406 */
    int nn, nj;
    double qn = http_accept_q(accept, "application/x-npy", &nn), qj = http_accept_q(accept, "application/json", &nj);
    if (!accept) qn = 0, qj = 1;
    if (qn <= 0 && qj <= 0)
      return http_reply_problem(q, problem_new(PROB_NOT_ACCEPTABLE, 0, "samples are served as application/json or "
                                               "application/x-npy; the Accept header allows neither"), NULL, NULL);
    npy = qn > 0 && (qn > qj || (qn == qj && nn && !nj));
  }
  store_run r;
  sb_error err = {0};
  int rc = store_get(q->app->store, q->param, &r, &err);
  if (rc) return api_store_problem(q, rc, &err);
  int ok = job_state_is(r.state, JOB_SUCCEEDED);
  char state[16];
  memcpy(state, r.state, sizeof state);
  /* the state's shape, so 2D samples come as [S, C, H, W] */
  reg_snap *rs = reg_hold(&q->app->reg);
  const estimator *est = reg_find(rs, r.estimator);
  size_t sshape[3];
  int snd = est ? sim_state_shape(est->sim, sshape) : 0;
  int B = ok ? job_request_windows(r.request) : 0; /* a list of B windows: samples [B][S][...] */
  reg_drop(rs);
  store_run_free(&r);
  if (!ok)
    return http_reply_problem(q, problem_new(PROB_CONFLICT, 0, "assimilation %s is %s; samples exist once it has "
                                             "succeeded", q->param, state), NULL, NULL);
  float *data;
  int S, d;
  rc = store_samples(q->app->store, q->param, &data, &S, &d, &err);
  if (rc) return api_store_problem(q, rc, &err);
  int lead = 0; /* leading dimensions before the state: [S] or [B, S] */
  size_t shape[5];
  if (B > 0 && S % B == 0) shape[lead++] = (size_t)B, shape[lead++] = (size_t)(S / B);
  else shape[lead++] = (size_t)S, B = 0;
  if (npy) {
    size_t len;
    int nd = lead + 1;
    shape[lead] = (size_t)d;
    if (snd > 0 && (size_t)d == sshape[0] * (snd > 1 ? sshape[1] : 1) * (snd > 2 ? sshape[2] : 1)) {
      for (int k = 0; k < snd; k++) shape[lead + k] = sshape[k];
      nd = lead + snd;
    }
    unsigned char *buf;
    rc = npy_encode(NPY_F32, nd, shape, data, &buf, &len, &err);
    free(data);
    if (rc) return http_reply_problem(q, problem_new(PROB_INTERNAL, 0, "%s", err.msg), NULL, NULL);
    return http_reply_buffer(q, 200, "application/x-npy", buf, len, MHD_RESPMEM_MUST_FREE);
  }
  /* JSON: [S][d], or [B][S][d] for a list of windows */
  int per = B ? S / B : S;
  int bad = 0;
  json_t *all = jb_array(&bad), *rows = all;
  for (int k = 0; k < S && !bad; k++) {
    if (B && k % per == 0) {
      rows = jb_array(&bad);
      jb_push(all, rows, &bad); /* all owns rows; after a failure rows is gone */
      if (bad) break;
    }
    json_t *row = jb_array(&bad);
    for (int i = 0; i < d; i++) jb_push_real(row, data[(size_t)k * d + i], &bad);
    jb_push(rows, row, &bad);
  }
  free(data);
  all = jb_done(all, bad);
  json_t *jshape = B ? json_pack("[i,i,i]", B, per, d) : json_pack("[i,i]", S, d);
  return http_reply_json(q, 200, json_pack("{s:s, s:s, s:o, s:o}", "id", q->param, "dtype", "float32", "shape", jshape,
                                           "samples", all), NULL);
}

enum MHD_Result api_assim_cancel(http_req *q) {
  int was_running = 0;
  sb_error err = {0};
  int rc = store_cancel(q->app->store, q->param, clock_now_ms(), &was_running, &err);
  if (rc) return api_store_problem(q, rc, &err);
  if (was_running) job_queue_cancel(q->app->jq, q->param);
  else http_wait_notify(NULL, q->param), metrics_job_event("cancelled");
  log_event(LOG_INFO, "job_cancel", json_pack("{s:s, s:b}", "id", q->param, "was_running", was_running));
  return api_reply_job(q, q->param, 202);
}

enum MHD_Result api_assim_delete(http_req *q) {
  sb_error err = {0};
  int rc = store_delete(q->app->store, q->param, &err);
  if (rc) return api_store_problem(q, rc, &err);
  log_event(LOG_INFO, "job_deleted", json_pack("{s:s}", "id", q->param));
  return http_reply_json(q, 204, NULL, NULL);
}
