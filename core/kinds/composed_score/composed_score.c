/* composed_score.c: the composed-score kind (SDA), a diffusion prior
 * v_hat(x_tau, tau | t) over the whole window (W states as channels),
 * conditioned at sampling time on any linear-Gaussian operator by the
 * likelihood guidance of diff.h; it can return the smoothed window.
 * Everything but the channels and the guidance is diff/score_net.c. */
#include "kinds/score/score_net.h"

static int in_channels(int W) { return W; }
static int out_channels(int W) { return W; }
static int n_scalars(int time_varying) { return 1 + time_varying; }

static int sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  return score_net_sample(e->impl, p, o, NULL, 1, r, err);
}

static int open_estimator(estimator *e, sb_error *err) {
  (void)err;
  e->sample = sample;
  return SB_OK;
}

const model_kind kind_composed_score = {
    .name = "composed-score",
    .what = "diffusion prior over windows, any linear-Gaussian operator at request time",
    .has_operator = 0,
    .has_window = 1,
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
