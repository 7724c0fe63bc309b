/* score_model.h: a trained score-based estimator as it lives in memory and in
 * its model file (safetensors: the network's tensors plus sbida.* metadata).
 *
 * Kinds:
 *   posterior-score  v_hat(x_tau, tau | y-window, mask, t): one channel (x_t)
 *                    noised; the window of W observations enters as 2W
 *                    channels lifted to the grid (A^T y and A^T mask per time),
 *                    for the one operator and noise it was trained with.
 *   composed-score   v_hat(x_tau, tau | t): a prior over the whole window
 *                    (W states as channels), conditioned at sampling time on
 *                    any linear-Gaussian operator by diff_guidance.
 *   npe              a conditional normalizing flow q(x_t | y-window, t):
 *                    `couplings` affine couplings whose conditioner is ONE
 *                    shared network told the coupling index (see flow.h),
 *                    for the one operator and noise it was trained with.
 *   nre              a classifier d(x_t, y-window, t) telling joint pairs from
 *                    shuffled ones; its logit estimates log p(x_t | y) / p(x_t),
 *                    and sampling resamples prior draws by it (est_nre.h).
 * States are standardized per node: z = (x - mean[n]) / std[n]. For
 * time-varying presets the time index enters as a second scalar t / t_max. */
#ifndef SB_SCORE_MODEL_H
#define SB_SCORE_MODEL_H

#include <jansson.h>

#include "diff.h"
#include "nn_model.h"
#include "obs.h"
#include "sim.h"

/* nre: most prior draws one request may resample (memory and simulation time
 * grow linearly with it) */
#define NRE_MAX_CANDIDATES 65536

typedef enum { SCORE_POSTERIOR = 1, SCORE_COMPOSED = 2, SCORE_NPE = 3, SCORE_NRE = 4 } score_kind;

typedef struct score_model {
  score_kind kind;
  sim *sim;              /* owned */
  int N, W;
  int time_varying;      /* 1: t is a network input */
  double *mean, *std;    /* [N] normalization, owned */
  obs_op *op;            /* posterior-score, npe: trained operator (owned), else NULL */
  obs_noise noise;       /* posterior-score, npe: trained noise, else n = 0 */
  diff_sampler_config sampler; /* default sampler settings */
  double gamma;          /* default guidance gamma (composed) */
  int couplings;         /* npe: number of affine couplings */
  double clamp;          /* npe: soft clamp of the log-scales */
  int candidates;        /* nre: prior draws resampled per request (default) */
  nn_model net;
  json_t *train_config;  /* as trained (owned, may be NULL) */
  json_t *training;      /* summary: steps, seconds, losses (owned, may be NULL) */
} score_model;

const char *score_kind_name(score_kind k);
int score_kind_parse(const char *s, score_kind *k);

/* 1 for the kinds trained for one operator and noise (all but composed-score). */
int score_kind_has_operator(score_kind k);
/* Network input channels for a kind and window. */
int score_in_channels(score_kind k, int W);
int score_out_channels(score_kind k, int W);
/* Network scalar inputs: diffusion time tau or coupling index (not nre),
 * then t / t_max for time-varying presets. */
int score_n_scalars(score_kind k, int time_varying);

/* Writes the model (EMA weights when use_ema) and its metadata. */
int score_model_save(const score_model *sm, int use_ema, const char *path, sb_error *err);
/* Loads a model file written by score_model_save; err says what is wrong. */
int score_model_load(score_model *sm, const char *path, sb_error *err);
void score_model_free(score_model *sm);

/* Lifts a window of observations y [W][n_obs] (NaN = missing) to the grid as
 * 2W channels of N values: (A^T y_w - A^T A mean) / std and A^T mask_w.
 * out: [2W][N] floats. */
void score_lift_observations(const score_model *sm, const obs_op *op, const double *y, float *out);

#endif
