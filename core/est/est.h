/* est.h: the one estimator interface. Baselines (etkf, letkf, pf) and learned
 * estimators (model files) implement it; the evaluator and the daemon only
 * see this.
 *
 * A problem is a window of W observations y_{t-W+1..t} of one system, taken
 * through one linear operator with Gaussian noise, and the time index t of
 * the last one. The answer is S samples of x_t (and, when asked and
 * supported, of every state of the window) plus diagnostics.
 *
 * Thread safety: sample() must be callable from several threads at once on
 * the same estimator (read-only weights, per-call workspaces). */
#ifndef SB_EST_H
#define SB_EST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "obs/obs.h"
#include "sim/sim.h"
#include "util/par.h"
#include "util/params.h"
#include "util/sb_error.h"

/* A background for the window's first state x_{t-W+1} (cycling: the previous
 * analysis forecast to that time). Either an ensemble (members != NULL,
 * n_members >= 2; its mean and anomalies are used) or a Gaussian with a mean
 * and a std per component (members == NULL). Values are physical (not
 * standardized), dim = the problem's sim->dim. */
typedef struct est_background {
  int n_members;          /* S_b when members != NULL */
  const double *members;  /* [n_members][dim] or NULL */
  const double *mean;     /* [dim] when members == NULL */
  const double *std;      /* [dim] when members == NULL, each > 0 */
} est_background;

typedef struct est_problem {
  const sim *sim;
  const obs_op *op;       /* same operator at every time of the window */
  const obs_noise *noise; /* per-component std, op->n_obs entries */
  int window;             /* W >= 1 */
  long time_index;        /* t: index of the window's last state, t >= W-1 */
  const double *y;        /* [W][n_obs], oldest first; NaN = missing */
  const est_background *background; /* prior for the window's first state; NULL = climatology */
} est_problem;

typedef struct est_options {
  int n_samples;           /* S >= 1 */
  uint64_t seed;
  int want_window;         /* also return samples of all W states */
  int threads;             /* worker threads inside one call; <= 0: 1 */
  const sb_cancel *cancel; /* polled (may be NULL); when requested the call stops with SB_ECANCEL */
  void (*progress)(void *ctx, double fraction);
  void *progress_ctx;
  const json_t *params;    /* estimator-specific settings (may be NULL) */
} est_options;

typedef struct est_result {
  int n_samples, dim, window;
  double *samples;         /* [S][dim]: x_t */
  double *window_samples;  /* [S][W][dim] or NULL */
  double *log_density;     /* [S] log q(x_t | y) or NULL */
  json_t *diagnostics;     /* JSON object, owned (e.g. {"ess": 37.2}) */
} est_result;

/* What one call would need, estimated before it runs (the daemon refuses
 * jobs above its limits before queueing them): peak bytes of memory and
 * floating-point operations. Upper-bound estimates, not measurements. */
typedef struct est_cost {
  double bytes, flops;
} est_cost;

typedef struct estimator estimator;
struct estimator {
  char name[128];          /* served name: model file stem, or <preset>-<kind> */
  char kind[32];           /* etkf, letkf, pf, posterior-score, composed-score, ... */
  sim *sim;                /* owned */
  int window;              /* its window length (the default), 0 = any */
  /* Estimators that answer a range of windows: window_max > 0 limits W to
   * window_min..window_max (local-score: any W from its 2k + 1, window 0;
   * composed-score of a stationary system: 1..its W, window W, the shorter
   * rows placed at the end of its window). With dim_max > 0 the estimator
   * serves any state size dim_min..dim_max of its preset (1D systems), sim
   * being the default one (est_set_dim changes it). Zero: window only (or
   * any 1..1024 when window is 0), exactly sim->dim. */
  int window_min, window_max;
  int dim_min, dim_max;
  obs_op *fixed_op;        /* operator it was trained for; NULL = any */
  obs_noise *fixed_noise;  /* noise it was trained for; NULL = any */
  int has_density;         /* fills log_density */
  int has_window;          /* can fill window_samples */
  int accepts_background;  /* uses p->background (est_check_problem refuses it otherwise) */
  json_t *info;            /* metadata object (training, evaluation), owned */
  const params_spec *params; /* the request parameters it accepts (NULL: none) */
  /* Optional: checks of the options beyond e->params (e.g. the ETKF needs
   * two members); NULL when there are none. */
  int (*check_options)(const estimator *e, const est_options *o, sb_error *err);
  /* Optional: rules on the problem beyond the generic ones of
   * est_check_problem (e.g. a cap on W x N); NULL when there are none. */
  int (*check_problem)(const estimator *e, const est_problem *p, sb_error *err);
  int (*sample)(estimator *e, const est_problem *p, const est_options *o, est_result *r,
                sb_error *err);
  void (*destroy)(estimator *e); /* frees impl only */
  void *impl;
  /* Optional (estimators with has_density): log q(x | y) at n given states
   * x [n][dim] for problem p into out [n]; NULL when not supported. The
   * evaluator uses it at the truth for HPD coverage. */
  int (*log_prob)(estimator *e, const est_problem *p, const est_options *o, const double *x, int n, double *out,
                  sb_error *err);
  /* Optional: adds the estimator's own work and workspaces to c (the
   * result arrays are counted by est_estimate); NULL: none beyond them. */
  void (*cost)(const estimator *e, const est_problem *p, const est_options *o, est_cost *c);
};

/* Checks a background of state size dim (members finite, at least 2; or a
 * finite mean and a std > 0). */
int est_check_background(const est_background *b, int dim, sb_error *err);
/* Checks that a problem fits the estimator (system, window length, time
 * range, operator and noise compatibility, observation count, background). */
int est_check_problem(const estimator *e, const est_problem *p, sb_error *err);
/* The window lengths e answers: *lo..*hi (equal for an exact window). */
void est_window_range(const estimator *e, int *lo, int *hi);
/* Checks the options a call would run with, without running it: sample
 * count, window output, the parameters against e->params (unknown names
 * with the valid ones, types, ranges) and e->check_options. The daemon calls
 * it at submission, so a job is refused (422) rather than failing later. */
int est_check_options(const estimator *e, const est_options *o, sb_error *err);
/* The memory and work of sampling p with o (after est_check_problem and
 * est_check_options passed): the result arrays plus e->cost. */
void est_estimate(const estimator *e, const est_problem *p, const est_options *o, est_cost *c);
/* Makes an estimator with dim_max > 0 serve state size N by default:
 * replaces e->sim by the same preset at N (N in dim_min..dim_max), so that
 * tools which build their problems from e->sim (sbida eval) use N. */
int est_set_dim(estimator *e, int N, sb_error *err);
/* Calls e->sample after est_check_problem and est_check_options. */
int est_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r,
               sb_error *err);
/* Allocates result arrays for S samples (window ones only if want_window). */
int est_result_alloc(est_result *r, int S, int dim, int W, int want_window, int want_density,
                     sb_error *err);
void est_result_free(est_result *r);
/* Frees everything the estimator owns. */
void est_free(estimator *e);

#endif
