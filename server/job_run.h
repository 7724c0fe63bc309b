/* job_run.h: runs one stored request on its estimator and summarizes the
 * samples (mean, std, quantiles, window mean) for the store. */
#ifndef SB_JOB_RUN_H
#define SB_JOB_RUN_H

#include "registry.h"

typedef struct job_outcome {
  const char *state;  /* "succeeded", "failed" or "cancelled" */
  char *result;       /* summary JSON text (succeeded) or NULL, owned */
  float *samples;     /* [n_samples][dim] or NULL, owned */
  int n_samples, dim;
  char *error;        /* problem JSON text (failed) or NULL, owned */
} job_outcome;

/* Never fails as a function: every problem ends in out->state "failed" with
 * out->error. cancel is polled by the estimator; threads is its thread count.
 * The job holds the registry snapshot it parsed against until it ends, so a
 * reload never changes or frees its estimator under it. */
void job_run(registry *reg, const char *request, int threads, const sb_cancel *cancel,
             void (*progress)(void *ctx, double fraction), void *progress_ctx, job_outcome *out);
void job_outcome_free(job_outcome *o);

#endif
