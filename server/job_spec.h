/* job_spec.h: where a request body becomes a problem an estimator can run.
 * The same parser validates POST /v1/assimilations (before the job is
 * acknowledged) and rebuilds the problem in the worker from the stored
 * canonical request, so both always agree. */
#ifndef SB_JOB_SPEC_H
#define SB_JOB_SPEC_H

#include <jansson.h>
#include <stdint.h>

#include "est/est.h"
#include "registry.h"

#define JOB_MAX_QUANTILES 32

typedef struct job_spec {
  estimator *est;          /* borrowed from the registry */
  sim *sim;                /* owned when the request's state_dim differs from est->sim's */
  const sim *sim_use;      /* sim or est->sim: the system of the problem */
  obs_op *op;              /* owned when the request gave one */
  const obs_op *op_use;    /* op or est->fixed_op */
  obs_noise noise;         /* owned */
  int window;
  long time_index;
  double *y;               /* [window][n_obs], NaN = missing, owned */
  int n_samples;
  uint64_t seed;
  int has_seed;
  int want_samples, want_window;
  double quantiles[JOB_MAX_QUANTILES];
  int n_quantiles;
  json_t *params;          /* estimator settings or NULL (own reference) */
} job_spec;

/* Validates a request body against the registry. On failure returns a
 * negative code and *problem (new reference) says what to fix; 0 on success
 * (free with job_spec_free either way). */
int job_spec_parse(job_spec *s, const json_t *body, const registry *reg, long max_samples, json_t **problem);
/* The canonical stored request: the body with "seed" filled in (new ref). */
json_t *job_spec_canonical(const job_spec *s, const json_t *body);
void job_spec_free(job_spec *s);

#endif
