/* api_estimators.c: GET /v1/estimators (all, or with preset/operator/
 * noise_std/window those that can answer such a request, ranked by their
 * shipped evaluations) and /v1/estimators/{name}. */
#include <errno.h>
#include <stdlib.h>

#include "http_routes.h"
#include "problem.h"
#include "reg_match.h"

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
  json_t *out = reg_match(&q->app->reg, &rq, &err);
  json_decref(opj);
  if (!out) return http_reply_problem(q, problem_new(PROB_UNAVAILABLE, 503, "%s", err.msg), NULL, NULL);
  return http_reply_json(q, 200, out, NULL);
}

enum MHD_Result api_est_list(http_req *q) {
  if (http_query(q, "preset") || http_query(q, "operator") || http_query(q, "noise_std") || http_query(q, "window"))
    return api_est_match(q);
  json_t *items = json_array();
  for (int i = 0; i < q->app->reg.count; i++) json_array_append_new(items, reg_describe(q->app->reg.items[i]));
  return http_reply_json(q, 200, json_pack("{s:o}", "items", items), NULL);
}

enum MHD_Result api_est_get(http_req *q) {
  estimator *e = reg_find(&q->app->reg, q->param);
  if (!e)
    return http_reply_problem(q, problem_new(PROB_NOT_FOUND, 0, "no estimator named '%s'; GET /v1/estimators lists "
                                             "the served ones", q->param), NULL, NULL);
  return http_reply_json(q, 200, reg_describe(e), NULL);
}
