/* composed_score.c: the composed-score kind (SDA), a diffusion prior
 * v_hat(x_tau, tau | t) over the whole window (W states as channels),
 * conditioned at sampling time on any linear-Gaussian operator by the
 * likelihood guidance of diff.h; it can return the smoothed window.
 * Everything but the channels is kinds/score/score_net.c. */
#include "kinds/score/score_net.h"

static int in_channels(int W) { return W; }
static int out_channels(int W) { return W; }
static int n_scalars(int time_varying) { return 1 + time_varying; }

/* A stationary system's window prior is the same at every time, so a request
 * of fewer rows than the model's W is its last rows with the earlier states
 * unobserved (score_net_sample); a cycle then puts its background next to
 * the analysis (docs/cycling.md). Time-varying systems keep exactly W. */
static void serve_ranges(const model *m, estimator *e) {
  if (!m->sim->stationary) return;
  e->window_min = 1;
  e->window_max = m->W;
}

const model_kind kind_composed_score = {
    .name = "composed-score",
    .what = "diffusion prior over windows, any linear-Gaussian operator at request time",
    .has_operator = 0,
    .has_window = 1,
    .accepts_background = 1,
    .in_channels = in_channels,
    .out_channels = out_channels,
    .n_scalars = n_scalars,
    .serve_ranges = serve_ranges,
    SCORE_NET_KIND_OPS,
};
