/* metrics.h: Prometheus counters and histograms kept in process memory
 * (lock-free atomics), rendered as text exposition format 0.0.4. */
#ifndef SB_METRICS_H
#define SB_METRICS_H

#include "dynbuf.h"
#include "job_state.h"

#define METRICS_MAX_ROUTES 24

typedef enum { METRIC_JOB_SECONDS, METRIC_QUEUE_WAIT_SECONDS, METRIC_HIST_COUNT } metrics_hist;

/* route names are kept (static strings), index = route id. */
void metrics_init(const char *const *route_names, int n_routes);
void metrics_request(int route, int status);
void metrics_observe(metrics_hist h, double seconds);
/* state: succeeded, failed, cancelled, submitted, requeued */
void metrics_job_event(const char *state);
/* Appends the exposition text. Gauges come from the caller. */
int metrics_render(dynbuf *out, const long long state_counts[JOB_N_STATES], long queue_depth, long running,
                   int estimators_loaded);

#endif
