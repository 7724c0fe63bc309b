/* job_background.h: the "background" of an assimilation request (a prior for
 * the window's first state x_{t-W+1}, est_background): an ensemble
 * {"samples": [[...], ...]}, a Gaussian {"mean": [...], "std": [...]}, or
 * {"from_job": id}, a finished job whose samples the worker forecasts with
 * the estimator's simulator from that job's time_index to t-W+1.
 *
 * Three steps, so the canonical stored request keeps only the reference:
 * job_background_parse (in job_spec_parse: shape and values, and that the
 * estimator can use a background), job_background_check (at POST: the
 * referenced job exists, has succeeded, fits; needs the store), and
 * job_background_resolve (in the worker: loads and forecasts its samples). */
#ifndef SB_JOB_BACKGROUND_H
#define SB_JOB_BACKGROUND_H

#include <jansson.h>

#include "job_spec.h"
#include "store.h"

/* The longest forecast a from_job background or POST /v1/forecasts may ask
 * for, in observation intervals. */
#define JOB_MAX_FORECAST_STEPS 10000

/* Parses body["background"] (j) into s (s->est, s->sim_use, s->window and
 * s->time_index already set). 0, or SB_EINVAL with *problem (new ref). */
int job_background_parse(job_spec *s, const json_t *j, const reg_snap *reg, long max_samples, json_t **problem);
/* POST only: the from_job reference names a succeeded job of the same
 * system and state size at or before the window's first time. Sets
 * s->bg_from_n and s->bg_from_steps (for the cost). 0, or a negative code
 * with *problem (404/409/422/503 as the problem's status). */
int job_background_check(job_spec *s, store *st, json_t **problem);
/* Worker: loads from_job's samples and advances them to the window's first
 * time; then s->bg is the ensemble. No-op without from_job. */
int job_background_resolve(job_spec *s, store *st, sb_error *err);
/* Flattens a state given flat ([dim]) or nested in the state's shape
 * ([C][H][W] for 2D) into out[dim]; values must be finite numbers. */
int job_state_from_json(const json_t *v, const sim *sm, double *out, sb_error *err);
/* The served estimators that accept a background, comma-separated in buf. */
const char *job_background_takers(const reg_snap *reg, char *buf, size_t size);
void job_background_free(job_spec *s);

#endif
