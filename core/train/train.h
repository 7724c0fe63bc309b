/* train.h: trains a model of any registered kind from a JSON configuration
 * (see models/configs/ for the shipped ones):
 *   {"kind": a registered kind (kinds/kinds.h: "posterior-score" | "composed-score" | "npe" | "nre" |
 *            "local-score"), "preset": "l96-sakov", "N": 40,
 *    "window": 10, "operator": {...}, "noise_std": 1.0,   (kinds trained for one operator)
 *    "arch": {"width": 64, "blocks": 6, "groups": 8, "emb_dim": 32, + the kind's fields (npe: couplings, clamp)}
 *            or {"type": "unet", "widths": [32, 64, 128], "blocks": 2, "mid": 1, "groups", "emb_dim"}
 *            (model_net_init, model/model.h; 2D presets stack a window's states as channels),
 *    "train": {"steps", "batch", "lr", "warmup", "schedule": "cosine"|"linear"|"constant",
 *              "weight_decay", "ema", "clip", "seed", "pool", "refresh",
 *              "val_windows", "val_every", "ckpt_every", "time_budget_s",
 *              "missing_time", "missing_entry", "threads",
 *              "tau_focus", "tau_focus_max": diffusion kinds draw this share of the training
 *              windows' noise levels from U(0, tau_focus_max) (kind.h; validation stays U(0, 1)),
 *              "traj_len": pool trajectories of this many states, chained for stationary presets
 *              (train_pool.h; what makes the Kolmogorov flow's 64-interval spin-up affordable)},
 *    + the kind's section (kind->config_key, fields kind->config_params):
 *      "sampler": {"sampler", "steps", "corrections", "tau_l", "schedule", "rho", "sigma_max", "gamma", ...}
 *      (the diffusion kinds, score_net_params in kinds/score/score_net.h), "nre": {"candidates"}}
 * Missing fields take the defaults in train.c and the kind's defaults
 * (kind->settings_new); unknown fields are refused with the list of valid
 * ones. */
#ifndef SB_TRAIN_H
#define SB_TRAIN_H

#include <jansson.h>
#include <stdio.h>

#include "train/train_dist.h"
#include "util/sb_error.h"

typedef struct train_opts {
  const char *out;        /* model file */
  const char *resume;     /* training state file to resume from, or NULL */
  long steps;             /* > 0 overrides train.steps */
  double time_budget_s;   /* > 0 overrides train.time_budget_s */
  int threads;            /* > 0 overrides train.threads */
  FILE *progress;         /* where progress goes (NULL: silent) */
  int progress_tty;       /* 1: a progress bar, 0: JSON lines */
  long log_every;         /* > 0: also a JSON line at every multiple of this step */
  const train_dist *dist; /* the processes training together (train_dist.h); NULL: this one alone */
  int check_ranks;        /* with dist: after every step, fail unless all ranks hold the same weights */
  json_t *summary;        /* out: training summary (caller decrefs) */
} train_opts;

/* Trains from cfg and writes the model (EMA weights) to opts->out, plus the
 * training state to opts->out + ".state" every ckpt_every steps for resuming.
 * With opts->dist of size P > 1 every rank calls it (a collective): train.batch
 * stays the global batch, each rank computes the gradient of 1/P of it, and
 * only rank 0 validates, writes files and reports progress. */
int train_model(const json_t *cfg, train_opts *opts, sb_error *err);

#endif
