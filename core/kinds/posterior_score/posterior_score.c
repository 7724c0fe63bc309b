/* posterior_score.c: the posterior-score kind, a conditional diffusion model
 * v_hat(x_tau, tau | y-window, mask, t): one channel (x_t) noised; the window
 * of W observations enters as 2W channels lifted to the grid (A^T y and
 * A^T mask per time), for the one operator and noise it was trained with.
 * Everything but the channels is kinds/score/score_net.c. */
#include "kinds/score/score_net.h"

static int in_channels(int W) { return 1 + 2 * W; }
static int out_channels(int W) {
  (void)W;
  return 1;
}
static int n_scalars(int time_varying) { return 1 + time_varying; }

const model_kind kind_posterior_score = {
    .name = "posterior-score",
    .what = "conditional diffusion posterior for one operator and noise",
    .has_operator = 1,
    .in_channels = in_channels,
    .out_channels = out_channels,
    .n_scalars = n_scalars,
    SCORE_NET_KIND_OPS,
};
