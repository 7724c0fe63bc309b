/* eval_cycle.h: an in-process analysis-forecast cycle (research and tuning;
 * the daemon's streams do the same over HTTP).
 *
 * A truth trajectory x_0..x_{T-1} of the estimator's system (x_0 drawn from
 * its initial distribution, on the attractor for the stationary presets), an
 * observation y_t = H x_t + noise at every step. Cycle c = 0..cycles-1 is
 * the window ending at t = W - 1 + c: the last W rows of y. The background
 * of its first state x_{t-W+1} is the analysis of cycle c - W (the samples
 * of x_{t-W}) advanced one step, member by member; cycles c < W have none
 * (climatology). The analysis at t - W used only rows up to t - W, so no
 * observation is used twice. */
#ifndef SB_EVAL_CYCLE_H
#define SB_EVAL_CYCLE_H

#include <jansson.h>
#include <stdint.h>

#include "est/est.h"

/* One finished cycle (for per-cycle output). */
typedef struct eval_cycle_step {
  int cycle;
  long t;                   /* time index of the analysed state */
  int background;           /* 1: the window started from a background */
  double rmse, spread, crps; /* of the S samples of x_t against the truth (eval_score_case) */
  double seconds;           /* the estimator's call */
  /* with window_stats: per window position w = 0..W-1 (state x_{t-W+1+w})
   * the RMSE of the sample mean against the truth and the RMS of the sample
   * std, as for x_t (the last position is x_t's); NULL otherwise */
  const double *window_rmse, *window_spread;
  /* with window_stats and a background: the same of the background's
   * members at x_{t-W+1} (the forecast before the analysis); NAN otherwise */
  double background_rmse, background_spread;
} eval_cycle_step;

typedef struct eval_cycle_config {
  int window, cycles, spinup, n_samples, threads;
  uint64_t seed;            /* truth, observations and the estimator's seeds */
  const json_t *params;     /* estimator parameters, may be NULL */
  int no_background;        /* 1: every window from climatology (no cycling; the comparison) */
  const sb_cancel *cancel;  /* may be NULL */
  void (*on_cycle)(void *ctx, const eval_cycle_step *s); /* may be NULL */
  void *ctx;
  int window_stats;         /* 1: fill the step's window and background statistics (the estimator
                               must return window samples: est.h has_window) */
} eval_cycle_config;

/* Means over the cycles after spin-up (cycle >= spinup). */
typedef struct eval_cycle_summary {
  int cycles, counted;
  double rmse, spread, spread_skill, crps;
  double seconds_per_cycle; /* over all cycles */
  double rmse_max;          /* largest per-cycle rmse counted (a filter divergence shows here) */
} eval_cycle_summary;

/* Runs the cycle with estimator e (which must accept a background unless
 * c->no_background) through op and noise nz. */
int eval_cycle_run(estimator *e, const obs_op *op, const obs_noise *nz, const eval_cycle_config *c,
                   eval_cycle_summary *out, sb_error *err);
/* The summary with its setting as a JSON object (new reference). */
json_t *eval_cycle_to_json(const eval_cycle_summary *s, const estimator *e, const obs_op *op, const obs_noise *nz,
                           const eval_cycle_config *c);

#endif
