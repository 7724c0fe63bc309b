/* job_run.h: runs one stored request on its estimator and summarizes the
 * samples (mean, std, quantiles, window mean) for the store. */
#ifndef SB_JOB_RUN_H
#define SB_JOB_RUN_H

#include "job_spec.h"
#include "registry.h"
#include "store.h"

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
 * reload never changes or frees its estimator under it.
 * st: where a background's from_job and a forecast's job are read. */
void job_run(registry *reg, store *st, const char *request, int threads, const sb_cancel *cancel,
             void (*progress)(void *ctx, double fraction), void *progress_ctx, job_outcome *out);
/* The succeeded outcome of samples r: the summary (with extra merged into
 * its diagnostics; may be NULL) and the float32 copy. */
void job_run_finish(const job_spec *s, const est_result *r, double elapsed, json_t *extra, job_outcome *out);
/* The failed outcome of code rc and err's message. */
void job_run_fail(job_outcome *out, int rc, const sb_error *err);
void job_outcome_free(job_outcome *o);

#endif
