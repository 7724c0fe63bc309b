/* kind.h: what a model kind provides (its ops table). Each kind lives in
 * its own folder under core/kinds/ and is listed once in kinds/kinds.c;
 * nothing outside the registry and the kind itself branches on a kind.
 *
 * Training (train/train.c runs one generic loop for every kind): the loop
 * draws windows of simulations, the kind turns them into its batch, its
 * gradient and its validation loss. The kind keeps its buffers in a state
 * it allocates in train_init. */
#ifndef SB_MODEL_KIND_H
#define SB_MODEL_KIND_H

#include <jansson.h>

#include "est/est.h"
#include "model/model.h"
#include "util/params.h"

/* Settings of a training run the kind's ops need. */
typedef struct kind_train_setup {
  int batch;            /* windows per step (the global batch: make_batch builds all of it) */
  int val_windows;      /* windows of the fixed validation set */
  int threads;          /* sb_threads() already applied */
  double missing_time, missing_entry;
  /* diffusion kinds: a share tau_focus of the training windows draws its
   * noise level tau from U(0, tau_focus_max) instead of U(0, 1), to spend
   * more of the network on the low noise levels a warm-started sampler uses
   * (the validation windows always draw from U(0, 1)); 0: all from U(0, 1) */
  double tau_focus, tau_focus_max;
  /* training across processes (train/train_dist.h): grad computes only part
   * `part` of `parts` contiguous parts of the batch's n loss terms (windows,
   * or nre's 2B pairs), still normalized by the whole batch, so the parts'
   * gradients and losses sum to the whole batch's. parts 0 or 1: all. */
  int part, parts;
} kind_train_setup;

/* The part of n loss terms this process computes (kind_train_setup): terms
 * [*lo, *lo + count), count returned. */
static inline int kind_train_part(const kind_train_setup *s, int n, int *lo) {
  if (s->parts <= 1) return *lo = 0, n;
  *lo = (int)((long)n * s->part / s->parts);
  return (int)((long)n * (s->part + 1) / s->parts) - *lo;
}

/* A kind's batch of n network inputs: in [n][in_per], scalars [n][scal_per],
 * targets [n][target_per]; kinds keep one for training (B windows) and one
 * for the fixed validation set (val_windows). */
typedef struct kind_batch {
  float *in, *scal, *target;
} kind_batch;
int kind_batch_alloc(kind_batch *b, int n, size_t in_per, size_t scal_per, size_t target_per, sb_error *err);
void kind_batch_free(kind_batch *b);

struct model_kind {
  const char *name;      /* as in files, configs and requests: "posterior-score" */
  const char *what;      /* one line for help texts */
  int has_operator;      /* trained for one operator and noise */
  int has_window;        /* its estimator can return the whole window */
  int accepts_background; /* its estimator uses a background for the window's first state (est.h) */
  int any_size;          /* its network is re-sized per request to any state size (local-score): resnet only */

  /* network shape for a window of W states */
  int (*in_channels)(int W);
  int (*out_channels)(int W);
  int (*n_scalars)(int time_varying);

  /* the kind's metadata section in files (meta_key) and in configs
   * (config_key, a JSON object; may be absent) */
  const char *meta_key, *config_key;
  const params_spec *config_params;   /* fields of the config section (NULL: no section) */
  const params_spec *arch_params;     /* fields it adds to the config's "arch" (may be NULL) */
  /* The kind's settings, m->settings: a struct of its own (sampler
   * defaults, flow shape, candidates) that nothing outside the kind reads.
   * settings_new allocates it with the kind's defaults (before a config or
   * a file is read); settings_free frees it (model_free calls it). */
  int (*settings_new)(void **settings, sb_error *err);
  void (*settings_free)(void *settings);
  /* m->settings from the config section (NULL when absent) and arch */
  int (*from_config)(model *m, const json_t *section, const json_t *arch, sb_error *err);
  /* m->settings as the file's section (new reference; NULL when out of memory) */
  json_t *(*meta_to_json)(const model *m);
  /* m->settings from the file's section (NULL when absent); validates */
  int (*meta_from_json)(model *m, const json_t *section, sb_error *err);

  /* request parameters its estimator accepts (est_options.params), and
   * checks beyond the spec (may be NULL; becomes e->check_options) */
  const params_spec *request_params;
  int (*check_options)(const estimator *e, const est_options *o, sb_error *err);

  /* training */
  int (*train_init)(void **state, model *m, const kind_train_setup *s, sb_error *err);
  void (*train_free)(void *state);
  /* B physical windows win [B][W][N] ending at times t [B] -> the training
   * batch (val = 0) or the fixed validation set (val = 1, B = val_windows) */
  int (*make_batch)(void *state, rng *r, const float *win, const long *t, int B, int val, sb_error *err);
  /* loss of the current batch, its gradient accumulated in m->net.grads */
  int (*grad)(void *state, double *loss, sb_error *err);
  /* validation loss with the EMA weights (NaN on failure) */
  double (*val_loss)(void *state);

  /* serving: the estimator's functions for a loaded model (e->impl is the
   * model); log_prob may be NULL (no density) */
  int (*sample)(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err);
  int (*log_prob)(estimator *e, const est_problem *p, const est_options *o, const double *x, int n, double *out,
                  sb_error *err);
  /* optional: a kind whose network runs at any window or state size sets
   * what a loaded model accepts (e->window = 0 with window_min/max,
   * dim_min/max, check_problem); NULL: exactly the file's window and N */
  void (*serve_ranges)(const model *m, estimator *e);
};

/* The function ops of a kind whose static functions carry the ops' names
 * (log_prob apart): `const model_kind kind_x = {.name = "x", ...,
 * MODEL_KIND_FUNCTIONS};` */
#define MODEL_KIND_FUNCTIONS                                                                                   \
  .in_channels = in_channels, .out_channels = out_channels, .n_scalars = n_scalars,                            \
  .settings_new = settings_new, .settings_free = settings_free, .from_config = from_config,                    \
  .meta_to_json = meta_to_json, .meta_from_json = meta_from_json, .train_init = train_init,                    \
  .train_free = train_free, .make_batch = make_batch, .grad = grad, .val_loss = val_loss, .sample = sample

#endif
