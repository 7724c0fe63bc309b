#include "metrics.h"

#include <stdint.h>
#include <string.h>

#include "kinds/score/score_batch.h"
#include "util/sb_error.h"
#include "store.h"
#include "util/version.h"

static const char *const *metrics_routes;
static int metrics_n_routes;
static uint64_t metrics_req[METRICS_MAX_ROUTES][600];

static const double metrics_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
#define N_BOUNDS (sizeof metrics_bounds / sizeof metrics_bounds[0])
static const char *const metrics_hist_names[METRIC_HIST_COUNT] = {
    "sbida_job_duration_seconds", "sbida_job_queue_wait_seconds"};
static const char *const metrics_hist_help[METRIC_HIST_COUNT] = {
    "Time from a job's start to its end", "Time a job waited in the queue before it started"};
static uint64_t metrics_hist_b[METRIC_HIST_COUNT][N_BOUNDS + 1];
static uint64_t metrics_hist_sum_us[METRIC_HIST_COUNT];

/* job events: submitted, every finished state of job_state.h, requeued */
#define METRICS_FINISHED(e, name, fin) fin ? name : NULL,
static const char *const metrics_finished[] = {JOB_STATES(METRICS_FINISHED)};
#define N_EVENTS (JOB_N_STATES + 2)
static const char *metrics_job_events[N_EVENTS];
static uint64_t metrics_jobs[N_EVENTS];

static int metrics_events(void) {
  int n = 0;
  metrics_job_events[n++] = "submitted";
  for (int i = 0; i < JOB_N_STATES; i++)
    if (metrics_finished[i]) metrics_job_events[n++] = metrics_finished[i];
  metrics_job_events[n++] = "requeued";
  return n;
}
static int metrics_n_events;

void metrics_init(const char *const *route_names, int n_routes) {
  metrics_n_events = metrics_events();
  metrics_routes = route_names;
  metrics_n_routes = n_routes < METRICS_MAX_ROUTES ? n_routes : METRICS_MAX_ROUTES;
}

void metrics_request(int route, int status) {
  if (route < 0 || route >= metrics_n_routes || status < 100 || status > 599) return;
  __atomic_fetch_add(&metrics_req[route][status], 1, __ATOMIC_RELAXED);
}

void metrics_observe(metrics_hist h, double seconds) {
  if (h < 0 || h >= METRIC_HIST_COUNT || !(seconds >= 0)) return;
  size_t b = 0;
  while (b < N_BOUNDS && seconds > metrics_bounds[b]) b++;
  __atomic_fetch_add(&metrics_hist_b[h][b], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&metrics_hist_sum_us[h], (uint64_t)(seconds * 1e6), __ATOMIC_RELAXED);
}

void metrics_job_event(const char *state) {
  for (int i = 0; i < metrics_n_events; i++)
    if (!strcmp(state, metrics_job_events[i])) __atomic_fetch_add(&metrics_jobs[i], 1, __ATOMIC_RELAXED);
}

int metrics_render(dynbuf *o, const long long state_counts[JOB_N_STATES], long queue_depth, long running,
                   int estimators_loaded) {
  int rc = 0;
  rc |= dynbuf_printf(o, "# HELP sbida_build_info Build of this daemon.\n# TYPE sbida_build_info gauge\n"
                         "sbida_build_info{version=\"%s\",api=\"v1\"} 1\n", SBIDA_VERSION);
  rc |= dynbuf_printf(o, "# HELP sbida_http_requests_total HTTP requests answered, by route and status code.\n"
                         "# TYPE sbida_http_requests_total counter\n");
  for (int r = 0; r < metrics_n_routes; r++)
    for (int s = 100; s < 600; s++) {
      uint64_t n = __atomic_load_n(&metrics_req[r][s], __ATOMIC_RELAXED);
      if (n) rc |= dynbuf_printf(o, "sbida_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n", metrics_routes[r], s,
                                 (unsigned long long)n);
    }
  rc |= dynbuf_printf(o, "# HELP sbida_jobs Jobs in the database, by state.\n# TYPE sbida_jobs gauge\n");
  for (int i = 0; i < JOB_N_STATES; i++)
    rc |= dynbuf_printf(o, "sbida_jobs{state=\"%s\"} %lld\n", job_state_name((job_state)i), state_counts[i]);
  rc |= dynbuf_printf(o, "# HELP sbida_job_events_total Job events since start.\n# TYPE sbida_job_events_total counter\n");
  for (int i = 0; i < metrics_n_events; i++)
    rc |= dynbuf_printf(o, "sbida_job_events_total{event=\"%s\"} %llu\n", metrics_job_events[i],
                        (unsigned long long)__atomic_load_n(&metrics_jobs[i], __ATOMIC_RELAXED));
  rc |= dynbuf_printf(o, "# HELP sbida_queue_depth Jobs waiting for a worker.\n# TYPE sbida_queue_depth gauge\n"
                         "sbida_queue_depth %ld\n", queue_depth);
  rc |= dynbuf_printf(o, "# HELP sbida_jobs_running Jobs on a worker now.\n# TYPE sbida_jobs_running gauge\n"
                         "sbida_jobs_running %ld\n", running);
  rc |= dynbuf_printf(o, "# HELP sbida_estimators_loaded Estimators served.\n# TYPE sbida_estimators_loaded gauge\n"
                         "sbida_estimators_loaded %d\n", estimators_loaded);
  score_batch_stats bs;
  score_batch_get_stats(&bs);
  rc |= dynbuf_printf(o, "# HELP sbida_batch_passes_total Batched score-network passes (--batch-rows), the network "
                         "evaluations of jobs they carried, and their rows.\n# TYPE sbida_batch_passes_total counter\n"
                         "sbida_batch_passes_total %ld\n# TYPE sbida_batch_requests_total counter\n"
                         "sbida_batch_requests_total %ld\n# TYPE sbida_batch_rows_total counter\nsbida_batch_rows_total %ld\n",
                      bs.passes, bs.requests, bs.rows);
  for (int h = 0; h < METRIC_HIST_COUNT; h++) {
    const char *n = metrics_hist_names[h];
    rc |= dynbuf_printf(o, "# HELP %s %s.\n# TYPE %s histogram\n", n, metrics_hist_help[h], n);
    uint64_t cum = 0;
    for (size_t b = 0; b <= N_BOUNDS; b++) {
      cum += __atomic_load_n(&metrics_hist_b[h][b], __ATOMIC_RELAXED);
      if (b < N_BOUNDS) rc |= dynbuf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", n, metrics_bounds[b], (unsigned long long)cum);
      else rc |= dynbuf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", n, (unsigned long long)cum);
    }
    rc |= dynbuf_printf(o, "%s_sum %.6f\n%s_count %llu\n", n,
                        1e-6 * (double)__atomic_load_n(&metrics_hist_sum_us[h], __ATOMIC_RELAXED), n,
                        (unsigned long long)cum);
  }
  return rc ? SB_ENOMEM : SB_OK;
}
