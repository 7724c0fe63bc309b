/* score_train.h: trains a posterior-score or composed-score model from a JSON
 * configuration (see models/configs/ for the shipped ones):
 *   {"kind": "composed-score" | "posterior-score", "preset": "l96-sakov", "N": 40,
 *    "window": 10, "operator": {...}, "noise_std": 1.0,      (posterior-score)
 *    "arch": {"width": 64, "blocks": 6, "groups": 8, "emb_dim": 32},
 *    "train": {"steps", "batch", "lr", "warmup", "schedule": "cosine"|"linear"|"constant",
 *              "weight_decay", "ema", "clip", "seed", "pool", "refresh",
 *              "val_windows", "val_every", "ckpt_every", "time_budget_s",
 *              "missing_time", "missing_entry", "threads"},
 *    "sampler": {"steps", "corrections", "tau_l", "gamma"}}
 * Missing fields take the defaults documented in score_train.c. */
#ifndef SB_SCORE_TRAIN_H
#define SB_SCORE_TRAIN_H

#include <jansson.h>
#include <stdio.h>

#include "sb_error.h"

typedef struct score_train_opts {
  const char *out;        /* model file */
  const char *resume;     /* training state file to resume from, or NULL */
  long steps;             /* > 0 overrides train.steps */
  double time_budget_s;   /* > 0 overrides train.time_budget_s */
  int threads;            /* > 0 overrides train.threads */
  FILE *progress;         /* where progress goes (NULL: silent) */
  int progress_tty;       /* 1: a progress bar, 0: JSON lines */
  json_t *summary;        /* out: training summary (caller decrefs) */
} score_train_opts;

/* Trains from cfg and writes the model (EMA weights) to opts->out, plus the
 * training state to opts->out + ".state" every ckpt_every steps for resuming. */
int score_train(const json_t *cfg, score_train_opts *opts, sb_error *err);

#endif
