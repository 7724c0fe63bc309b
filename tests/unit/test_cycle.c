/* The in-process cycle (eval_cycle.h) with the ETKF: W = 1, K = S = 40
 * members, L96 N = 40 observed at every node with noise 1, 150 cycles
 * after 50 spin-up. With the background (the previous analysis forecast
 * one step) this is the classical cycled ETKF: RMSE ~0.18-0.19 (1000-cycle
 * runs give 0.178 at inflation 1.01, the independent numpy reference
 * 0.173; docs/cycling.md); from climatology at every cycle a single
 * observation gives ~1.5. The bound 0.3 sits between with margin both
 * ways: a cycle that ignores or mis-times the background (e.g. the
 * analysis not advanced, off by one step: measured > 0.5) fails it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "catalog/catalog.h"
#include "eval/eval_cycle.h"

typedef struct seen {
  int n, with_bg, first_bg;
} seen;

static void count(void *ctx, const eval_cycle_step *s) {
  seen *v = ctx;
  if (s->background && !v->with_bg) v->first_bg = s->cycle;
  v->n++, v->with_bg += s->background;
}

static void run(estimator *e, const obs_op *op, const obs_noise *nz, int W, int no_bg, const json_t *params,
                eval_cycle_summary *sum, seen *v) {
  sb_error err;
  eval_cycle_config c = {W, 150, 50, 40, 1, 7, params, no_bg, NULL, count, v, 0};
  memset(v, 0, sizeof *v);
  if (eval_cycle_run(e, op, nz, &c, sum, &err)) fail_msg("%s", err.msg);
}

/* The cycled ETKF of both tests: l96-sakov N = 40, every node, sigma = 1,
 * inflation 1.01. */
typedef struct etkf_setup {
  estimator *e;
  obs_op *op;
  obs_noise nz;
  json_t *params;
} etkf_setup;

static void etkf_setup_open(etkf_setup *f) {
  sb_error err;
  assert_int_equal(est_open(&f->e, "etkf", "l96-sakov", 40, &err), 0);
  assert_int_equal(obs_from_string(&f->op, "{\"type\":\"identity\"}", 1, 1, 40, &err), 0);
  assert_int_equal(obs_noise_scalar(&f->nz, 1.0, 40, &err), 0);
  f->params = json_pack("{s:f}", "inflation", 1.01);
}

static void etkf_setup_close(etkf_setup *f) {
  json_decref(f->params);
  if (f->e) est_free(f->e);
  obs_noise_free(&f->nz);
  obs_free(f->op);
}

static void test_cycled_etkf(void **state) {
  (void)state;
  sb_error err;
  etkf_setup f;
  etkf_setup_open(&f);
  estimator *e = f.e;
  obs_op *op = f.op;
  obs_noise nz = f.nz;
  json_t *params = f.params;
  eval_cycle_summary with, without;
  seen v;
  run(e, op, &nz, 1, 0, params, &with, &v);
  assert_int_equal(v.n, 150);
  assert_int_equal(v.with_bg, 149); /* every cycle but the first (W = 1) */
  assert_int_equal(v.first_bg, 1);
  assert_int_equal(with.counted, 100);
  run(e, op, &nz, 1, 1, params, &without, &v);
  assert_int_equal(v.with_bg, 0);
  print_message("cycled etkf: rmse %.3f spread %.3f; from climatology every cycle: rmse %.3f\n", with.rmse, with.spread,
                without.rmse);
  assert_true(with.rmse < 0.3);
  assert_true(without.rmse > 0.8);
  assert_true(with.spread_skill > 0.7 && with.spread_skill < 1.4);
  /* W = 3: the background of cycle c is cycle c - 3's analysis, so cycles 0..2 have none */
  run(e, op, &nz, 3, 0, params, &with, &v);
  assert_int_equal(v.first_bg, 3);
  assert_int_equal(v.with_bg, 147);
  print_message("cycled etkf W=3: rmse %.3f\n", with.rmse);
  assert_true(with.rmse < 0.3);
  /* the particle filter takes no background: refused with the kinds that can */
  estimator *pf;
  assert_int_equal(est_open(&pf, "pf", "l96-sakov", 40, &err), 0);
  eval_cycle_config c = {1, 10, 0, 8, 1, 1, NULL, 0, NULL, NULL, NULL, 0};
  assert_int_equal(eval_cycle_run(pf, op, &nz, &c, &with, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "cannot use a background"));
  est_free(pf);
  etkf_setup_close(&f);
}

/* --window-stats: per window position and of the background, against the
 * truth at the right times. Sums over the counted cycles. */
typedef struct wstats {
  int n, nbg, last_mismatch;
  double first, bg, bg_spread, last;
} wstats;

static void collect(void *ctx, const eval_cycle_step *s) {
  wstats *v = ctx;
  if (!s->window_rmse) return;
  /* the last position is x_t: the same samples as the cycle's own rmse */
  if (fabs(s->window_rmse[2] - s->rmse) > 1e-12 || fabs(s->window_spread[2] - s->spread) > 1e-12) v->last_mismatch++;
  if (s->cycle < 50) return;
  v->n++, v->first += s->window_rmse[0], v->last += s->window_rmse[2];
  if (s->background) {
    v->nbg++, v->bg += s->background_rmse, v->bg_spread += s->background_spread;
  } else if (!isnan(s->background_rmse)) {
    v->last_mismatch++;
  }
}

static void test_cycle_window_stats(void **state) {
  (void)state;
  sb_error err;
  etkf_setup f;
  etkf_setup_open(&f);
  wstats v = {0};
  eval_cycle_config c = {3, 150, 50, 40, 1, 7, f.params, 0, NULL, collect, &v, 1};
  eval_cycle_summary sum;
  if (eval_cycle_run(f.e, f.op, &f.nz, &c, &sum, &err)) fail_msg("%s", err.msg);
  assert_int_equal(v.last_mismatch, 0);
  assert_int_equal(v.n, 100);
  assert_int_equal(v.nbg, 100);
  double first = v.first / v.n, last = v.last / v.n, bg = v.bg / v.nbg, bgs = v.bg_spread / v.nbg;
  print_message("etkf W=3: background %.3f (spread %.3f), window first %.3f, last %.3f\n", bg, bgs, first, last);
  /* the background is the previous analysis (~0.2) one step ahead: a few
   * tenths at most; against the truth one step off (a slicing error) it
   * would be ~0.5 or more. The window's first state adds an observation to
   * it, so it is closer to the truth than the background. */
  assert_true(bg > 0.1 && bg < 0.35);
  assert_true(bgs > 0.1 && bgs < 0.35);
  assert_true(first < bg);
  assert_true(fabs(last - sum.rmse) < 1e-9);
  etkf_setup_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cycled_etkf),
      cmocka_unit_test(test_cycle_window_stats),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
