/* eval_cycle.c: the analysis-forecast cycle of eval_cycle.h. */
#include "eval/eval_cycle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval/eval_metrics.h"
#include "util/jsonb.h"

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* The truth x [T][N] from the system's initial distribution and y [T][n_obs]. */
static int make_truth(const sim *s, const obs_op *op, const obs_noise *nz, int T, uint64_t seed, double *x, double *y,
                      sb_error *err) {
  const int N = s->dim;
  int rc = s->init(s, x, 1, seed, 1u << 20, err);
  for (int t = 1; !rc && t < T; t++) {
    memcpy(x + (size_t)t * N, x + (size_t)(t - 1) * N, sizeof(double) * (size_t)N);
    rc = s->advance(s, x + (size_t)t * N, 1, 1, err);
  }
  if (rc) return rc;
  obs_apply(op, x, y, (size_t)T);
  obs_add_noise(nz, y, (size_t)T, seed, 1u << 21);
  return SB_OK;
}

/* RMSE of the mean of n values against truth and RMS of their std, over S
 * samples stride apart (sample s's values at base + s * stride). */
static void ens_stats(const double *base, size_t stride, int S, int n, const double *truth, double *rmse,
                      double *spread) {
  double se = 0.0, var = 0.0;
  for (int i = 0; i < n; i++) {
    double m = 0.0, v = 0.0;
    for (int s = 0; s < S; s++) m += base[(size_t)s * stride + i];
    m /= S;
    for (int s = 0; s < S; s++) {
      double d = base[(size_t)s * stride + i] - m;
      v += d * d;
    }
    se += (m - truth[i]) * (m - truth[i]);
    var += S > 1 ? v / (S - 1) : 0.0;
  }
  *rmse = sqrt(se / n);
  *spread = sqrt(var / n);
}

int eval_cycle_run(estimator *e, const obs_op *op, const obs_noise *nz, const eval_cycle_config *c,
                   eval_cycle_summary *out, sb_error *err) {
  memset(out, 0, sizeof *out);
  const sim *s = e->sim;
  const int W = c->window, S = c->n_samples, N = s->dim, no = op->n_obs;
  if (W < 1 || c->cycles < 1 || S < 1 || c->spinup < 0 || c->spinup >= c->cycles)
    return sb_fail(err, SB_EINVAL, "cycle: need window >= 1, samples >= 1, cycles >= 1 and 0 <= spinup < cycles");
  if (!c->no_background && !e->accepts_background)
    return sb_fail(err, SB_EINVAL, "estimator %s (%s) cannot use a background, so it cannot cycle; the kinds that "
                   "can are etkf, letkf, composed-score and local-score", e->name, e->kind);
  if (c->window_stats && !e->has_window)
    return sb_fail(err, SB_EINVAL, "cycle: estimator %s (%s) returns no window samples, so it has no window statistics",
                   e->name, e->kind);
  const int T = c->cycles + W - 1;
  if ((long)T - 1 > s->t_max)
    return sb_fail(err, SB_ERANGE, "cycle: %d cycles of window %d reach time index %d, beyond %s's %ld", c->cycles,
                   W, T - 1, s->preset, s->t_max);
  double *x = malloc(sizeof(double) * (size_t)T * N), *y = malloc(sizeof(double) * (size_t)T * no);
  double *ring = malloc(sizeof(double) * (size_t)W * S * N), *fc = malloc(sizeof(double) * (size_t)S * N);
  double *work = malloc(sizeof(double) * (size_t)S), *wst = malloc(sizeof(double) * 2 * (size_t)W);
  int rc = SB_OK;
  if (!x || !y || !ring || !fc || !work || !wst) {
    rc = sb_fail(err, SB_ENOMEM, "cycle: out of memory for %d steps of %d values and %d samples", T, N, S);
    goto done;
  }
  if ((rc = make_truth(s, op, nz, T, c->seed, x, y, err))) goto done;
  double t_all = 0, se = 0, sp = 0, cr = 0;
  for (int cy = 0; cy < c->cycles; cy++) {
    if (sb_cancelled(c->cancel)) {
      rc = sb_fail(err, SB_ECANCEL, "cancelled");
      goto done;
    }
    const long t = W - 1 + cy;
    /* the analysis of cycle cy - W (x_{t-W}), one step ahead: x_{t-W+1} */
    est_background bg = {.n_members = S, .members = fc};
    int use_bg = !c->no_background && cy >= W && S >= 2;
    if (use_bg) {
      memcpy(fc, ring + (size_t)(cy % W) * S * N, sizeof(double) * (size_t)S * N);
      if ((rc = s->advance(s, fc, (size_t)S, 1, err))) goto done;
    }
    est_problem p = {s, op, nz, W, t, y + (size_t)(t - W + 1) * no, use_bg ? &bg : NULL};
    est_options o = {.n_samples = S, .seed = c->seed * 1000003u + (uint64_t)cy, .threads = c->threads,
                     .cancel = c->cancel, .params = c->params, .want_window = c->window_stats};
    est_result r;
    double t0 = mono();
    if ((rc = est_sample(e, &p, &o, &r, err))) goto done;
    double dt = mono() - t0;
    t_all += dt;
    eval_case_stats st;
    eval_score_case(r.samples, S, N, x + (size_t)t * N, &st, NULL, NULL, NULL, work);
    eval_cycle_step step = {cy, t, use_bg, st.rmse, st.spread, st.crps, dt, NULL, NULL, NAN, NAN};
    if (c->window_stats) {
      for (int w = 0; w < W; w++)
        ens_stats(r.window_samples + (size_t)w * N, (size_t)W * N, S, N, x + (size_t)(t - W + 1 + w) * N, wst + w,
                  wst + W + w);
      step.window_rmse = wst, step.window_spread = wst + W;
      if (use_bg)
        ens_stats(fc, (size_t)N, S, N, x + (size_t)(t - W + 1) * N, &step.background_rmse, &step.background_spread);
    }
    memcpy(ring + (size_t)(cy % W) * S * N, r.samples, sizeof(double) * (size_t)S * N);
    est_result_free(&r);
    if (cy >= c->spinup) {
      se += st.rmse, sp += st.spread, cr += st.crps;
      out->counted++;
      if (st.rmse > out->rmse_max) out->rmse_max = st.rmse;
    }
    if (c->on_cycle) c->on_cycle(c->ctx, &step);
  }
  out->cycles = c->cycles;
  out->rmse = se / out->counted;
  out->spread = sp / out->counted;
  out->crps = cr / out->counted;
  out->spread_skill = out->rmse > 0 ? out->spread / out->rmse : 0;
  out->seconds_per_cycle = t_all / c->cycles;
done:
  free(x);
  free(y);
  free(ring);
  free(fc);
  free(work);
  free(wst);
  return rc;
}

json_t *eval_cycle_to_json(const eval_cycle_summary *s, const estimator *e, const obs_op *op, const obs_noise *nz,
                           const eval_cycle_config *c) {
  int bad = 0;
  json_t *j = jb_object(&bad);
  jb_set(j, "estimator", json_string(e->name), &bad);
  jb_set(j, "kind", json_string(e->kind), &bad);
  jb_set(j, "preset", json_string(e->sim->preset), &bad);
  jb_set(j, "state_dim", json_integer(e->sim->dim), &bad);
  jb_set(j, "operator", obs_to_json(op), &bad);
  jb_set(j, "noise", obs_noise_to_json(nz), &bad);
  jb_set(j, "window", json_integer(c->window), &bad);
  jb_set(j, "cycles", json_integer(s->cycles), &bad);
  jb_set(j, "spinup", json_integer(c->spinup), &bad);
  jb_set(j, "samples", json_integer(c->n_samples), &bad);
  jb_set(j, "seed", json_integer((json_int_t)c->seed), &bad);
  jb_set(j, "background", json_boolean(!c->no_background), &bad);
  jb_set(j, "params", c->params ? json_deep_copy(c->params) : json_object(), &bad);
  jb_set_real(j, "rmse", s->rmse, &bad);
  jb_set_real(j, "spread", s->spread, &bad);
  jb_set_real(j, "spread_skill", s->spread_skill, &bad);
  jb_set_real(j, "crps", s->crps, &bad);
  jb_set_real(j, "rmse_max", s->rmse_max, &bad);
  jb_set(j, "counted_cycles", json_integer(s->counted), &bad);
  jb_set_real(j, "seconds_per_cycle", s->seconds_per_cycle, &bad);
  return jb_done(j, bad);
}
