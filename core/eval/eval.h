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
 * case (it numbers its own streams from 0). c counts from the seed's first
 * case: a test set made from case `first` on holds cases first..first+C-1
 * of the same sequence, so a long evaluation splits into disjoint parts. Every case is computed
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
  long first;     /* index of the first case in the seed's sequence (0 unless eval_make_cases_at) */
  long *t;        /* [C] time index of each case (last state of its window) */
  double *truth;  /* [C][W][dim] */
  double *y;      /* [C][W][n_obs], noisy observations */
} eval_cases;

/* Time selection: t_lo == t_hi is one time index, else t is drawn uniformly
 * from t_lo..t_hi (inclusive) per case. */
int eval_make_cases(eval_cases *cs, const sim *s, const obs_op *op, const obs_noise *nz, int window, int n_cases,
                    long t_lo, long t_hi, uint64_t seed, sb_error *err);
/* The same test set from case `first` on (0 <= first, first + n_cases <= 2^38):
 * cases first..first+n_cases-1, each identical to that case of a set from 0. */
int eval_make_cases_at(eval_cases *cs, const sim *s, const obs_op *op, const obs_noise *nz, int window, int n_cases,
                       long first, long t_lo, long t_hi, uint64_t seed, sb_error *err);
void eval_cases_free(eval_cases *cs);

/* Seed handed to the estimator for case c (counted from the seed's first case). */
uint64_t eval_case_seed(uint64_t seed, long c);

typedef struct eval_config {
  int n_samples;
  int threads;                 /* <= 0: 1 */
  uint64_t seed;
  const json_t *params;        /* estimator parameters, may be NULL */
  const sb_cancel *cancel;     /* may be NULL */
  /* called under a lock after each finished case */
  void (*progress)(void *ctx, int done, int total);
  void *progress_ctx;
  /* 2D velocity states ([2][H][W], H > 1): keep the vorticity fields and the
   * energy spectra of the first plot_cases cases for eval_write_plots (0: none) */
  int plot_cases;
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
  /* 2D pictures (eval_config.plot_cases): for the first n_plot cases, on the
   * plot_h x plot_w grid, the vorticity (spectral curl) of the truth, of the
   * posterior mean (the mean of the samples' vorticity) and its std over the
   * samples, and the energy spectra E(k), k = 0..plot_kmax (shells of |k|
   * rounded, sum_k E(k) = <u^2 + v^2> / 2) of the truth, of the posterior
   * mean field and the mean of the samples' spectra. */
  int n_plot, plot_h, plot_w, plot_kmax;
  double *plot_vort;           /* [n_plot][3][plot_h * plot_w]: truth, mean, std */
  double *plot_spec;           /* [n_plot][3][plot_kmax + 1]: truth, mean field, samples */
} eval_summary;

/* Runs estimator e on every case. */
int eval_run(estimator *e, const eval_cases *cs, const obs_op *op, const obs_noise *nz, const eval_config *cfg,
             eval_summary *out, sb_error *err);
void eval_summary_free(eval_summary *s);

/* The result as a JSON object (new reference; shape documented in
 * schema/eval.schema.json). t_lo == t_hi writes "time_index", else
 * "time_range": [t_lo, t_hi]. NULL when memory runs out (no field is ever
 * left out silently). */
json_t *eval_to_json(const eval_summary *s, const estimator *e, const obs_op *op, const obs_noise *nz, long t_lo,
                     long t_hi, uint64_t seed, const json_t *params, const char *version);

/* Writes the three SVG plots (coverage.svg, ranks.svg, example.svg) into
 * dir (created if missing); title is a label such as the estimator name. */
int eval_write_svgs(const eval_summary *s, const obs_op *op, const char *dir, const char *title, sb_error *err);

/* Writes the 2D pictures of eval_config.plot_cases into dir (created if
 * missing): per case c, case<c>-vorticity.png (truth, posterior mean,
 * posterior std, error = mean - truth, side by side; libpng) and
 * case<c>-spectrum.svg. SB_EINVAL when the summary has no 2D pictures. */
int eval_write_plots(const eval_summary *s, const char *dir, const char *title, sb_error *err);
/* The vorticity picture of case c as an 8-bit RGB image [h][w][3] (malloc'd),
 * its size in *w, *h: four panels of plot_h x plot_w cells, `cell` pixels each. */
unsigned char *eval_vorticity_image(const eval_summary *s, int c, int cell, int *w, int *h);
/* Writes an 8-bit RGB image as PNG. */
int eval_png_write(const char *path, const unsigned char *rgb, int w, int h, sb_error *err);
/* Energy spectrum E(k), k = 0..min(H, W)/2, of a [2][H][W] velocity field. */
void eval_energy_spectrum(const double *x, int H, int W, double *E);

/* SVG documents as malloc'd strings (for the writer and the tests). */
char *eval_svg_coverage(const eval_summary *s, const char *title);
char *eval_svg_ranks(const eval_summary *s, const char *title);
char *eval_svg_example(const eval_summary *s, const obs_op *op, const char *title);

#endif
