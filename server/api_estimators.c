/* api_estimators.c: GET /v1/estimators (all, or with preset/operator/
 * noise_std/window those that can answer such a request, ranked by their
 * shipped evaluations), /v1/estimators/{name} and POST
 * /v1/estimators:reload. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http_routes.h"
#include "log.h"
#include "problem.h"
#include "reg_match.h"
#include "util/jsonb.h"

static enum MHD_Result api_est_match(http_req *q) {
  reg_query rq = {.preset = http_query(q, "preset")};
  const char *op = http_query(q, "operator"), *nz = http_query(q, "noise_std"), *w = http_query(q, "window");
  json_t *opj = NULL;
  if (op) {
    json_error_t je;
    if (!(opj = json_loads(op, JSON_REJECT_DUPLICATES, &je)) || !json_is_object(opj)) {
      json_decref(opj);
      return http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "operator must be an operator as JSON, e.g. "
                                               "operator={\"type\":\"subsample\",\"stride\":2} (URL-encoded)"),
                                NULL, NULL);
    }
    rq.op = opj;
  }
  char *end;
  if (nz) {
    errno = 0;
    rq.noise_std = strtod(nz, &end);
    if (*end || errno || !(rq.noise_std > 0) || rq.noise_std > 1e6) {
      json_decref(opj);
      return http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "noise_std must be a positive number"), NULL,
                                NULL);
    }
  }
  if (w) {
    long v = strtol(w, &end, 10);
    if (*end || v < 1 || v > 100000) {
      json_decref(opj);
      return http_reply_problem(q, problem_new(PROB_BAD_REQUEST, 0, "window must be an integer >= 1"), NULL, NULL);
    }
    rq.window = (int)v;
  }
  sb_error err = {0};
  reg_snap *rs = reg_hold(&q->app->reg);
  json_t *out = reg_match(rs, &rq, &err);
  reg_drop(rs);
  json_decref(opj);
  if (!out) return http_reply_problem(q, problem_new(PROB_UNAVAILABLE, 503, "%s", err.msg), NULL, NULL);
  return http_reply_json(q, 200, out, NULL);
}

enum MHD_Result api_est_list(http_req *q) {
  if (http_query(q, "preset") || http_query(q, "operator") || http_query(q, "noise_std") || http_query(q, "window"))
    return api_est_match(q);
  int bad = 0;
  json_t *items = jb_array(&bad);
  reg_snap *rs = reg_hold(&q->app->reg);
  for (int i = 0; i < rs->count; i++) jb_push(items, reg_describe(rs, i), &bad);
  reg_drop(rs);
  if (bad) {
    json_decref(items);
    return http_reply_problem(q, problem_new(PROB_UNAVAILABLE, 503, "out of memory"), "Retry-After", "1");
  }
  return http_reply_json(q, 200, json_pack("{s:o}", "items", items), NULL);
}

enum MHD_Result api_est_get(http_req *q) {
  reg_snap *rs = reg_hold(&q->app->reg);
  json_t *d = NULL;
  int found = 0;
  for (int i = 0; i < rs->count && !found; i++)
    if (!strcmp(rs->items[i]->name, q->param)) d = reg_describe(rs, i), found = 1;
  reg_drop(rs);
  if (!d && found)
    return http_reply_problem(q, problem_new(PROB_UNAVAILABLE, 503, "out of memory"), "Retry-After", "1");
  if (!d)
    return http_reply_problem(q, problem_new(PROB_NOT_FOUND, 0, "no estimator named '%s'; GET /v1/estimators lists "
                                             "the served ones", q->param), NULL, NULL);
  return http_reply_json(q, 200, d, NULL);
}

/* POST /v1/estimators:reload: rescans the models directory (as SIGHUP does)
 * and says what changed. */
enum MHD_Result api_est_reload(http_req *q) {
  sb_error err = {0};
  json_t *rep = reg_reload(&q->app->reg, &err);
  if (!rep) {
    log_event(LOG_WARN, "reload_failed", json_pack("{s:s, s:s}", "trigger", "http", "reason", err.msg));
    return http_reply_problem(q, problem_new(err.code == SB_ENOMEM ? PROB_UNAVAILABLE : PROB_CONFLICT,
                                             err.code == SB_ENOMEM ? 503 : 0, "%s", err.msg), NULL, NULL);
  }
  json_t *f = json_deep_copy(rep);
  if (f) json_object_set_new(f, "trigger", json_string("http"));
  log_event(LOG_INFO, "estimators_reloaded", f);
  return http_reply_json(q, 200, rep, NULL);
}
