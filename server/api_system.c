/* api_system.c: health, readiness, Prometheus metrics and the OpenAPI
 * document (embedded at build time, see openapi_embed.c). */
#include <string.h>

#include "http_routes.h"
#include "metrics.h"
#include "problem.h"
#include "util/jsonb.h"

extern const char sbida_openapi_json[];
extern const unsigned long sbida_openapi_json_len;

enum MHD_Result api_health_live(http_req *q) {
  static char body[] = "{\"status\":\"ok\"}";
  return http_reply_buffer(q, 200, "application/json", body, sizeof body - 1, MHD_RESPMEM_PERSISTENT);
}

enum MHD_Result api_health_ready(http_req *q) {
  app *a = q->app;
  sb_error err = {0};
  int models = reg_count(&a->reg) > 0;
  int db = store_check_writable(a->store, &err) == SB_OK;
  int queue = !job_queue_saturated(a->jq);
  int stopping = a->stopping;
  long unsettled = job_queue_unsettled(a->jq);
  json_t *checks = json_pack("{s:b, s:b, s:b, s:b, s:b}", "estimators_loaded", models, "database_writable", db,
                             "queue_not_saturated", queue, "not_stopping", !stopping, "jobs_settled", !unsettled);
  if (models && db && queue && !stopping && !unsettled)
    return http_reply_json(q, 200, json_pack("{s:s, s:o}", "status", "ready", "checks", checks), NULL);
  json_t *p = problem_new(PROB_UNAVAILABLE, 503, "not ready:%s%s%s%s%s", models ? "" : " no estimator is loaded;",
                          db ? "" : " the database cannot take a write (full, read-only or failing):",
                          db ? "" : err.msg, queue ? "" : " the job queue is full;",
                          stopping ? " the daemon is stopping;" : unsettled ? " jobs wait for the store to record "
                          "their outcome;" : "");
  int bad = 0;
  jb_set(p, "checks", checks, &bad);
  return http_reply_problem(q, jb_done(p, bad), "Retry-After", "5");
}

enum MHD_Result api_metrics(http_req *q) {
  app *a = q->app;
  long long counts[JOB_N_STATES];
  sb_error err = {0};
  store_count_states(a->store, counts, &err);
  long depth, running;
  job_queue_stats(a->jq, &depth, &running);
  dynbuf b;
  dynbuf_init(&b, (size_t)64 << 20);
  if (metrics_render(&b, counts, depth, running, reg_count(&a->reg))) {
    dynbuf_free(&b);
    return http_reply_problem(q, problem_new(PROB_INTERNAL, 0, "out of memory"), NULL, NULL);
  }
  size_t len;
  char *text = dynbuf_take(&b, &len);
  return http_reply_buffer(q, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, MHD_RESPMEM_MUST_FREE);
}

enum MHD_Result api_openapi(http_req *q) {
  return http_reply_buffer(q, 200, "application/json", (void *)sbida_openapi_json, sbida_openapi_json_len,
                           MHD_RESPMEM_PERSISTENT);
}
