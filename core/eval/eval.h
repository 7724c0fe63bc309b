/* eval.h: the evaluation suite. Generates a fixed, seeded test set of windows
 * (truth trajectory + noisy observations), runs any estimator on every case
 * (threads across cases), and summarizes the scores of eval_metrics.h.
 *
 * Determinism: the test set depends only on (preset, N, operator, noise,
 * window, cases, time selection, seed), never on the estimator, so different
 * estimators see the very same cases. RNG streams of `seed`:
 *   truth of case c           stream c                       (c < 2^48)
 *   observation noise of c    streams 2^48 + 1024 c + w      (w < W <= 1024)
 *   time index of case c      stream 2^49 + c                (time ranges only)
 * and the estimator gets seed eval_case_seed(seed, c), a different seed per
 * case (it numbers its own streams from 0). Every case is computed
 * independently and the summary is reduced in case order, so the result is
 * bit-identical for any thread count. */
#ifndef SB_EVAL_H
#define SB_EVAL_H

#include <jansson.h>
#include <stdint.h>

#include "est/est.h"
#include "eval/eval_metrics.h"

typedef struct eval_cases {
  int n_cases, window, dim, n_obs;
  long *t;        /* [C] time index of each case (last state of its window) */
  double *truth;  /* [C][W][dim] */
  double *y;      /* [C][W][n_obs], noisy observations */
} eval_cases;

/* Time selection: t_lo == t_hi is one time index, else t is drawn uniformly
 * from t_lo..t_hi (inclusive) per case. */
int eval_make_cases(eval_cases *cs, const sim *s, const obs_op *op, const obs_noise *nz, int window, int n_cases,
                    long t_lo, long t_hi, uint64_t seed, sb_error *err);
void eval_cases_free(eval_cases *cs);

/* Seed handed to the estimator for case c. */
uint64_t eval_case_seed(uint64_t seed, int c);

typedef struct eval_config {
  int n_samples;
  int threads;                 /* <= 0: 1 */
  uint64_t seed;
  const json_t *params;        /* estimator parameters, may be NULL */
  const sb_cancel *cancel;     /* may be NULL */
  /* called under a lock after each finished case */
  void (*progress)(void *ctx, int done, int total);
  void *progress_ctx;
} eval_config;

typedef struct eval_summary {
  int n_cases, n_samples, dim, n_obs, window;
  double rmse, spread, spread_skill, crps;
  double coverage[EVAL_N_LEVELS];
  double coverage_max_abs_error;
  long *rank_hist;             /* [S+1] */
  int rank_bins;               /* bins of the chi-square test */
  double rank_p;
  int has_hpd;
  double hpd_coverage[EVAL_N_LEVELS];
  json_t *diagnostics;         /* mean over cases of the estimator's numeric diagnostics */
  double seconds, samples_per_second;
  int threads;   /* cases run in parallel, one thread each: cost of one request ~ seconds * threads / cases */
  /* example: case 0 at time t */
  double *ex_truth, *ex_mean, *ex_std; /* [dim] */
  double *ex_y;                /* [n_obs], NaN = missing */
  double *ex_rmse_by_case;     /* [C] per-case RMSE (for plots) */
} eval_summary;

/* Runs estimator e on every case. */
int eval_run(estimator *e, const eval_cases *cs, const obs_op *op, const obs_noise *nz, const eval_config *cfg,
             eval_summary *out, sb_error *err);
void eval_summary_free(eval_summary *s);

/* The result as a JSON object (new reference; shape documented in
 * schema/eval.schema.json). t_lo == t_hi writes "time_index", else
 * "time_range": [t_lo, t_hi]. */
json_t *eval_to_json(const eval_summary *s, const estimator *e, const obs_op *op, const obs_noise *nz, long t_lo,
                     long t_hi, uint64_t seed, const json_t *params, const char *version);

/* Writes the three SVG plots (coverage.svg, ranks.svg, example.svg) into
 * dir (created if missing); title is a label such as the estimator name. */
int eval_write_svgs(const eval_summary *s, const obs_op *op, const char *dir, const char *title, sb_error *err);

/* SVG documents as malloc'd strings (for the writer and the tests). */
char *eval_svg_coverage(const eval_summary *s, const char *title);
char *eval_svg_ranks(const eval_summary *s, const char *title);
char *eval_svg_example(const eval_summary *s, const obs_op *op, const char *title);

#endif
