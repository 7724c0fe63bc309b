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
#define JOB_MAX_WINDOWS 1024 /* windows of one request (observations as a list of windows) */

typedef struct job_spec {
  reg_snap *snap;          /* the registry snapshot est comes from, held until job_spec_free */
  estimator *est;          /* borrowed from snap */
  sim *sim;                /* owned when the request's state_dim differs from est->sim's */
  const sim *sim_use;      /* sim or est->sim: the system of the problem */
  obs_op *op;              /* owned when the request gave one */
  const obs_op *op_use;    /* op or est->fixed_op */
  obs_noise noise;         /* owned */
  int window;
  long time_index;
  double *y;               /* [windows][window][n_obs], NaN = missing, owned */
  int n_windows;           /* 0: observations was one window; B >= 1: a list of B windows (one result each) */
  int n_samples;
  uint64_t seed;
  int has_seed;
  int want_samples, want_window;
  double quantiles[JOB_MAX_QUANTILES];
  int n_quantiles;
  json_t *params;          /* estimator settings or NULL (own reference) */
  /* background (job_background.c): a prior for the window's first state */
  int has_background;
  est_background bg;       /* points into bg_data or bg_mean/bg_std */
  double *bg_data, *bg_mean, *bg_std; /* owned */
  char bg_from_job[40];    /* from_job: members come from this job, forecast by the worker */
  int bg_from_n;           /* from_job: its sample count (set at POST by job_background_check) */
  long bg_from_steps;      /* from_job: forecast steps to the window's first time */
} job_spec;

/* The daemon's limits on one job (--max-samples, --max-job-memory,
 * --max-job-work); NULL: none (a stored request rebuilt by a worker). */
typedef struct job_limits {
  long max_samples;
  double max_bytes, max_flops;
} job_limits;

/* Memory and work of the job: the estimator's estimate (est_estimate) plus
 * what the daemon adds (the float copy stored, the summary, the JSON of
 * every sample when return.samples). A list of B windows runs them one
 * after another: B times the work and B times the daemon's part of the
 * memory (every window's samples and summary are kept until the end). */
void job_spec_cost(const job_spec *s, int threads, est_cost *c);

/* Reads a "return" object (j may be NULL: the defaults) into s; s->est set. */
int job_spec_parse_return(job_spec *s, const json_t *j, json_t **problem);
/* Checks the cost (job_spec_cost) against lim: 0, or SB_EINVAL with *problem. */
int job_spec_check_limits(const job_spec *s, const job_limits *lim, int threads, json_t **problem);
/* The background job_spec_parse read, for est_problem: NULL when none or
 * while a from_job one is not resolved yet (job_background_resolve). */
const est_background *job_spec_background(const job_spec *s);

/* Validates a request body against the registry's current snapshot, which
 * s holds (so its estimator outlives a reload) until job_spec_free. On
 * failure returns a negative code and *problem (new reference) says what to
 * fix; 0 on success (free with job_spec_free either way). */
int job_spec_parse(job_spec *s, const json_t *body, registry *reg, const job_limits *lim, int threads,
                   json_t **problem);
/* The key of quantile q in results: the shortest decimal that reads back as
 * exactly q ("0.1", "0.1000000001"), so distinct quantiles never share a key.
 * buf holds at least 32 bytes. */
const char *job_quantile_name(double q, char *buf, size_t size);
/* The canonical stored request: the body with "seed" filled in (new ref). */
json_t *job_spec_canonical(const job_spec *s, const json_t *body);
void job_spec_free(job_spec *s);
/* The number of windows of a stored request: B when its observations are
 * a list of B windows, 0 when they are one window (or it cannot be read). */
int job_request_windows(const char *request);

#endif
