/* model.h: a trained model as it lives in memory and in its model file, for
 * every kind (safetensors: the network's tensors plus sbida.* metadata).
 *
 * The file holds the common metadata (sbida.version, kind, system, preset,
 * N, window, time_varying, norm_mean, norm_std, operator and noise_std for
 * kinds trained for one operator, train_config, training) and one section
 * that belongs to the kind (kind->meta_key, e.g. sbida.sampler), which the
 * kind's ops read into and write from m->settings. What a kind is and
 * does (its network shape, its settings, its training batch and loss, its
 * estimator) is its model_kind ops table (model/kind.h); the registry of
 * kinds is kinds/kinds.h, which also opens files of any kind.
 *
 * States are standardized per node: z = (x - mean[n]) / std[n]. For
 * time-varying presets the time index enters the network as a scalar
 * t / t_max. */
#ifndef SB_MODEL_H
#define SB_MODEL_H

#include <jansson.h>

#include "nn/nn_model.h"
#include "obs/obs.h"
#include "sim/sim.h"
#include "util/rng.h"

typedef struct model_kind model_kind;

typedef struct model {
  const model_kind *kind;
  sim *sim;              /* owned */
  int N, W;
  int time_varying;      /* 1: t is a network input */
  double *mean, *std;    /* [N] normalization, owned */
  obs_op *op;            /* kinds with has_operator: trained operator (owned), else NULL */
  obs_noise noise;       /* kinds with has_operator: trained noise, else n = 0 */
  void *settings;        /* the kind's settings (owned), a struct only the kind knows: made with its
                          * defaults by kind->settings_new, read, written and checked only by the
                          * kind's ops, freed by kind->settings_free (model_free) */
  nn_model net;
  json_t *train_config;  /* as trained (owned, may be NULL) */
  json_t *training;      /* summary: steps, seconds, losses (owned, may be NULL) */
} model;

/* The network (model_net.c) for m's kind, window, N and simulator (set
 * before): the config's arch {"type": "resnet" (default) | "unet", resnet:
 * width, blocks (6); unet: widths [one per level], blocks (2), mid (1);
 * both: groups (8), emb_dim (32)}. A 2D simulator's window stacks as
 * in_channels(W) x C channels of its H x Wd grid; a 1D one's as before
 * (one channel per state over N nodes). Parameters zeroed (the caller
 * initializes them); the sizes are checked before anything is allocated. */
int model_net_init(model *m, const json_t *arch, sb_error *err);
/* SB_EFORMAT unless m->net has the layout model_net_init gives m. */
int model_net_check(const model *m, sb_error *err);

/* Writes the model (EMA weights when use_ema) and its metadata. */
int model_save(const model *m, int use_ema, const char *path, sb_error *err);
/* Reads a model file; find maps the file's sbida.kind to its ops table or
 * fails saying which kinds exist (kinds/kinds.h: model_load passes the
 * registry). err says what is wrong. */
int model_read(model *m, const char *path, int (*find)(const char *name, const model_kind **k, sb_error *err),
               sb_error *err);
void model_free(model *m);

/* Lifts a window of observations y [W][n_obs] (NaN = missing) to the grid as
 * 2W channels of N values: (A^T y_w - A^T A mean) / std and A^T mask_w.
 * out: [2W][N] floats. */
int model_lift_observations(const model *m, const obs_op *op, const double *y, float *out, sb_error *err);

/* Training: noisy observations y [W][n_obs] of one physical window wb
 * [W][N] through the trained operator, with whole times missing with
 * probability missing_time (never the last) and single entries with
 * missing_entry, lifted into lift [2W][N]. xs: scratch of N doubles. */
int model_observe_window(const model *m, rng *r, double missing_time, double missing_entry, const float *wb,
                         double *xs, double *y, float *lift, sb_error *err);

/* t / t_max for time-varying models, else 0 */
double model_time_scaled(const model *m, long t);

#endif
