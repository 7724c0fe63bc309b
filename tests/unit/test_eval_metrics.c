/* test_eval_metrics.c: scores with known answers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "eval/eval_metrics.h"
#include "util/rng.h"

static void test_gamma_q(void **state) {
  (void)state;
  for (double x = 0.01; x < 40; x *= 1.7) {
    assert_true(fabs(eval_gamma_q(1.0, x) - exp(-x)) < 1e-13);
    assert_true(fabs(eval_gamma_q(0.5, x) - erfc(sqrt(x))) < 1e-12);
    for (int n = 2; n < 30; n += 5) { /* Q(n, x) = e^-x sum_{k<n} x^k / k! */
      double s = 0, t = 1;
      for (int k = 0; k < n; k++) {
        s += t;
        t *= x / (k + 1);
      }
      assert_true(fabs(eval_gamma_q(n, x) - exp(-x) * s) < 1e-12);
    }
  }
  assert_true(eval_gamma_q(3.0, 0.0) == 1.0);
}

static void test_rank_coverage_exact(void **state) {
  (void)state;
  int Ss[] = {1, 2, 7, 31, 32, 100};
  for (int k = 0; k < 6; k++)
    for (int i = 0; i < EVAL_N_LEVELS; i++) {
      int S = Ss[k];
      double a = eval_level(i), sum = 0;
      for (int r = 0; r <= S; r++) {
        double c = eval_rank_coverage(r, S, a);
        assert_true(c >= 0 && c <= 1);
        sum += c;
      }
      assert_true(fabs(sum / (S + 1) - a) < 1e-12);
    }
  /* the extreme ranks are outside every central interval below 1 - 2/(S+1) */
  assert_true(eval_rank_coverage(0, 100, 0.95) == 0.0);
  assert_true(fabs(eval_rank_coverage(50, 100, 0.05) - 1.0) < 1e-12);
}

static void test_crps_sorted(void **state) {
  (void)state;
  rng r;
  rng_init(&r, 1, 2);
  double xs[40];
  for (int S = 1; S <= 40; S += 13) {
    for (int s = 0; s < S; s++) xs[s] = rng_normal(&r);
    for (int i = 1; i < S; i++) /* insertion sort */
      for (int j = i; j > 0 && xs[j - 1] > xs[j]; j--) {
        double t = xs[j];
        xs[j] = xs[j - 1];
        xs[j - 1] = t;
      }
    double x = 0.3, e1 = 0, e2 = 0;
    for (int i = 0; i < S; i++) {
      e1 += fabs(xs[i] - x);
      for (int j = 0; j < S; j++) e2 += fabs(xs[i] - xs[j]);
    }
    assert_true(fabs(eval_crps_sorted(xs, S, x) - (e1 / S - 0.5 * e2 / ((double)S * S))) < 1e-12);
  }
  double one = 2.0;
  assert_true(fabs(eval_crps_sorted(&one, 1, 0.5) - 1.5) < 1e-15); /* point mass: |x - x*| */
}

/* Linear-Gaussian problem with a known posterior: x ~ N(0, I), y = x + N(0, s^2 I),
 * p(x | y) = N(y / (1 + s^2), s^2 / (1 + s^2) I). Samples drawn from it with
 * their std scaled by `shrink`. */
static void run_gaussian(double shrink, double *max_err, double *p, double *rmse, double *spread, double *crps) {
  const int n = 10, S = 32, cases = 400;
  const double s2 = 0.25, pv = s2 / (1 + s2);
  double samples[32 * 10], truth[10], work[32];
  long hist[33] = {0};
  double cov[EVAL_N_LEVELS] = {0};
  *rmse = *spread = *crps = 0;
  for (int c = 0; c < cases; c++) {
    rng r;
    rng_init(&r, 42, (uint64_t)c);
    double pm[10];
    for (int i = 0; i < n; i++) {
      truth[i] = rng_normal(&r);
      double y = truth[i] + sqrt(s2) * rng_normal(&r);
      pm[i] = y / (1 + s2);
    }
    for (int s = 0; s < S; s++)
      for (int i = 0; i < n; i++) samples[s * n + i] = pm[i] + shrink * sqrt(pv) * rng_normal(&r);
    eval_case_stats st;
    eval_score_case(samples, S, n, truth, &st, hist, NULL, NULL, work);
    for (int i = 0; i < EVAL_N_LEVELS; i++) cov[i] += st.coverage[i];
    *rmse += st.rmse / cases;
    *spread += st.spread / cases;
    *crps += st.crps / cases;
  }
  *max_err = 0;
  for (int i = 0; i < EVAL_N_LEVELS; i++) *max_err = fmax(*max_err, fabs(cov[i] / (cases * n) - eval_level(i)));
  int bins;
  *p = eval_rank_uniformity_p(hist, S, &bins);
  assert_int_equal(bins, 20);
}

static void test_calibrated_vs_overconfident(void **state) {
  (void)state;
  double err, p, rmse, spread, crps;
  run_gaussian(1.0, &err, &p, &rmse, &spread, &crps);
  print_message("exact posterior: coverage max err %.4f, rank p %.3g, rmse %.3f spread %.3f crps %.3f\n", err, p, rmse,
                spread, crps);
  assert_true(err < 0.03);
  assert_true(p > 1e-3);
  double sd = sqrt(0.25 / 1.25);
  assert_true(fabs(spread - sd) < 0.03 * sd);
  assert_true(fabs(rmse - sd * sqrt(1 + 1.0 / 32)) < 0.05 * sd);
  /* CRPS of a Gaussian at its own draws: E = sd / sqrt(pi) (plus a small 1/S term) */
  assert_true(fabs(crps - sd / sqrt(M_PI)) < 0.05 * sd);
  run_gaussian(0.5, &err, &p, &rmse, &spread, &crps);
  print_message("std x 0.5: coverage max err %.4f, rank p %.3g\n", err, p);
  assert_true(err > 0.15);
  assert_true(p < 1e-10);
}

static void test_hpd_coverage(void **state) {
  (void)state;
  double level[100], cov[EVAL_N_LEVELS];
  for (int c = 0; c < 100; c++) level[c] = (c + 0.5) / 100;
  eval_hpd_coverage(level, 100, cov);
  for (int i = 0; i < EVAL_N_LEVELS; i++) assert_true(fabs(cov[i] - eval_level(i)) < 0.011);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gamma_q),
      cmocka_unit_test(test_rank_coverage_exact),
      cmocka_unit_test(test_crps_sorted),
      cmocka_unit_test(test_calibrated_vs_overconfident),
      cmocka_unit_test(test_hpd_coverage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
