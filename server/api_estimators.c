/* api_estimators.c: GET /v1/estimators and /v1/estimators/{name}. */
#include "http_routes.h"
#include "problem.h"

enum MHD_Result api_est_list(http_req *q) {
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
