/* job_forecast.h: POST /v1/forecasts: an ensemble forecast of a succeeded
 * job's samples by K observation intervals with its estimator's simulator,
 * run as a job whose result has the shape of an assimilation's (samples of
 * x_{t+K}, time_index t + K, mean, std, quantiles, .npy).
 *
 * The canonical stored request: {"forecast": {"job": id, "steps": K},
 * "estimator": the job's, "state_dim": its state size, "time_index": t + K,
 * "n_samples": its sample count, "return": {...}}. job_forecast_spec reads it
 * both at POST (after job_forecast_canonical) and in the worker. */
#ifndef SB_JOB_FORECAST_H
#define SB_JOB_FORECAST_H

#include <jansson.h>

#include "job_run.h"
#include "job_spec.h"
#include "store.h"

typedef struct job_forecast {
  job_spec spec;   /* est, sim_use (owned sim when the size differs), quantiles, want_samples, time_index = t + K */
  char job[40];    /* the forecast job's source */
  long steps;      /* K */
} job_forecast;

/* The POST body {"job", "steps", "return"} into the canonical request (new
 * ref) after checking the source in the store: 0, or a negative code with
 * *problem (422 malformed or unknown job, 409 not succeeded, 503 store). */
int job_forecast_canonical(const json_t *body, store *st, registry *reg, json_t **canon, json_t **problem);
/* Reads a canonical forecast request. 0, or SB_EINVAL with *problem. */
int job_forecast_spec(job_forecast *f, const json_t *canon, registry *reg, json_t **problem);
void job_forecast_free(job_forecast *f);
/* Worker: loads the source's samples, advances them, summarizes into out. */
void job_forecast_run(registry *reg, store *st, const json_t *canon, const sb_cancel *cancel, job_outcome *out);

#endif
