/* local_score.c: the local-score kind (SDA's Markov-blanket score). The
 * network is a diffusion prior v_hat(x_{i-k..i+k}, tau) over runs of L = 2k + 1
 * consecutive states (the file's window is L; any L in 3..LOCAL_SCORE_MAX_RUN
 * loads); training is the composed score's (kinds/score/score_net.c) on
 * windows of L states.
 * Sampling (local_score_sample.c) assembles the score of a window of any
 * length W >= 2k + 1 from the network on every run, and runs the same
 * weights at any state size N (circular convolutions, no dense layer over
 * space); guidance by any linear-Gaussian operator is the composed score's. */
#include "kinds/local_score/local_score.h"

#include <math.h>

static int in_channels(int W) { return W; }
static int out_channels(int W) { return W; }
static int n_scalars(int time_varying) { return 1 + time_varying; }

/* The run length L: 2k + 1 for SDA's Markov blanket (k = 1..3 trained
 * here), or any length up to LOCAL_SCORE_MAX_RUN: a composed-score prior of a
 * stationary 1D system re-labelled by `sbida model --as-local-score` is a
 * local score whose run is its whole window (one run at W = L). */
static int check_run(const model *m, sb_error *err) {
  if (m->W < 3 || m->W > LOCAL_SCORE_MAX_RUN)
    return sb_fail(err, SB_EINVAL, "a local-score model's window is its run length, 3..%d states, not %d",
                   LOCAL_SCORE_MAX_RUN, m->W);
  return SB_OK;
}

static int from_config(model *m, const json_t *section, const json_t *arch, sb_error *err) {
  int rc = check_run(m, err);
  return rc ? rc : score_net_from_config(m, section, arch, err);
}

/* One mean and std for every node: per-node values would not transfer to
 * another N. The trainer already stores the same value at every node. */
int local_score_check_model(const model *m, sb_error *err) {
  int rc = check_run(m, err);
  if (rc) return rc;
  for (int n = 1; n < m->N; n++)
    if (fabs(m->mean[n] - m->mean[0]) > 1e-9 * (1 + fabs(m->mean[0])) ||
        fabs(m->std[n] - m->std[0]) > 1e-9 * m->std[0])
      return sb_fail(err, SB_EFORMAT, "a local-score model needs one normalization for every node "
                     "(node %d differs from node 0)", n);
  return SB_OK;
}

static int meta_from_json(model *m, const json_t *section, sb_error *err) {
  int rc = local_score_check_model(m, err);
  return rc ? rc : score_net_meta_from_json(m, section, err);
}

const model_kind kind_local_score = {
    .name = "local-score",
    .what = "diffusion prior over runs of 2k+1 states, assembled for any window and state size",
    .has_operator = 0,
    .has_window = 1,
    .accepts_background = 1,
    .in_channels = in_channels,
    .out_channels = out_channels,
    .n_scalars = n_scalars,
    .meta_key = "sbida.sampler",
    .config_key = "sampler",
    .config_params = score_net_params,
    .request_params = score_net_params,
    .settings_new = score_net_settings_new,
    .settings_free = score_net_settings_free,
    .from_config = from_config,
    .meta_to_json = score_net_meta_to_json,
    .meta_from_json = meta_from_json,
    .train_init = score_net_train_init,
    .train_free = score_net_train_free,
    .make_batch = score_net_make_batch,
    .grad = score_net_grad,
    .val_loss = score_net_val_loss,
    .sample = local_score_estimator_sample,
    .serve_ranges = local_score_serve_ranges,
    .any_size = 1,
};
