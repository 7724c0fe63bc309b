/* posterior_score.c: the posterior-score kind, a conditional diffusion model
 * v_hat(x_tau, tau | y-window, mask, t): one channel (x_t) noised; the window
 * of W observations enters as 2W channels lifted to the grid (A^T y and
 * A^T mask per time), for the one operator and noise it was trained with.
 * Everything but the channels and the conditioning is diff/score_net.c. */
#include <stdlib.h>

#include "kinds/score/score_net.h"

static int in_channels(int W) { return 1 + 2 * W; }
static int out_channels(int W) {
  (void)W;
  return 1;
}
static int n_scalars(int time_varying) { return 1 + time_varying; }

static int sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  const model *m = e->impl;
  float *cond = malloc(sizeof(float) * 2 * (size_t)m->W * m->N);
  if (!cond) return sb_fail(err, SB_ENOMEM, "out of memory");
  int rc = model_lift_observations(m, p->op, p->y, cond, err);
  if (!rc) rc = score_net_sample(m, p, o, cond, 0, r, err);
  free(cond);
  return rc;
}

static int open_estimator(estimator *e, sb_error *err) {
  (void)err;
  e->sample = sample;
  return SB_OK;
}

const model_kind kind_posterior_score = {
    .name = "posterior-score",
    .what = "conditional diffusion posterior for one operator and noise",
    .has_operator = 1,
    .in_channels = in_channels,
    .out_channels = out_channels,
    .n_scalars = n_scalars,
    .meta_key = "sbida.sampler",
    .config_key = "sampler",
    .config_params = score_net_params,
    .defaults = score_net_defaults,
    .from_config = score_net_from_config,
    .meta_to_json = score_net_meta_to_json,
    .meta_from_json = score_net_meta_from_json,
    .request_params = score_net_params,
    .train_init = score_net_train_init,
    .train_free = score_net_train_free,
    .make_batch = score_net_make_batch,
    .grad = score_net_grad,
    .val_loss = score_net_val_loss,
    .open = open_estimator,
};
