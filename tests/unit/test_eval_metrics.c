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
static void run_gaussian_ex(double shrink, double bias, double *max_err, double *p, double *rmse, double *spread,
                            double *crps, double *cov_out, long *hist_out) {
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
      for (int i = 0; i < n; i++) samples[s * n + i] = pm[i] + sqrt(pv) * (bias + shrink * rng_normal(&r));
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
  if (cov_out)
    for (int i = 0; i < EVAL_N_LEVELS; i++) cov_out[i] = cov[i] / (cases * n);
  if (hist_out) memcpy(hist_out, hist, sizeof hist);
}

static void run_gaussian(double shrink, double *max_err, double *p, double *rmse, double *spread, double *crps) {
  run_gaussian_ex(shrink, 0.0, max_err, p, rmse, spread, crps, NULL, NULL);
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

/* One case small enough to score by hand: S = 4 samples, 3 components.
 *   c0: {7, 1, 4, 2}, truth 3: 2 below            -> rank 2
 *   c1: {1, 0, 1, 0}, truth 1: 2 below, 2 tied    -> rank 2 + 2/2 = 3 (histogram bin 3)
 *   c2: {5, 8, 6, 7}, truth 0: none below         -> rank 0
 * means 3.5, 0.5, 6.5; variances with S - 1 = 3: 21/3, 1/3, 5/3 (sum 9), so
 * spread = sqrt(9 / 3) = sqrt(3) (with S instead: sqrt(6.75 / 3) = 1.5);
 * rmse = sqrt((0.25 + 0.25 + 42.25) / 3); CRPS = E|X - x*| - E|X - X'| / 2 per
 * component: 2 - 40/32, 0.5 - 8/32, 6.5 - 20/32 -> mean 6.875 / 3. Coverage
 * (sum over components of |[r, r+1] ∩ [2.5 (1 - a), 2.5 (1 + a)]|):
 *   a = 0.1: [2.25, 2.75] -> 0.5 + 0 + 0      = 0.5
 *   a = 0.5: [1.25, 3.75] -> 1 + 0.75 + 0     = 1.75
 *   a = 0.9: [0.25, 4.75] -> 1 + 1 + 0.75     = 2.75
 * A one-rank shift (ranks 3, 4, 1) gives 0, 1.5, 2.75 + ... : off by >= 0.25.
 * Tolerance 1e-12: exact arithmetic on small integers and halves. */
static void test_score_case_by_hand(void **state) {
  (void)state;
  const double samples[4 * 3] = {7, 1, 5, 1, 0, 8, 4, 1, 6, 2, 0, 7}, truth[3] = {3, 1, 0};
  long hist[5] = {0};
  double mean[3], sd[3], work[4];
  eval_case_stats st;
  eval_score_case(samples, 4, 3, truth, &st, hist, mean, sd, work);
  const long hist_want[5] = {1, 0, 1, 1, 0};
  assert_memory_equal(hist, hist_want, sizeof hist);
  assert_true(fabs(mean[0] - 3.5) < 1e-12 && fabs(mean[1] - 0.5) < 1e-12 && fabs(mean[2] - 6.5) < 1e-12);
  assert_true(fabs(sd[0] - sqrt(7.0)) < 1e-12 && fabs(sd[1] - sqrt(1.0 / 3)) < 1e-12 && fabs(sd[2] - sqrt(5.0 / 3)) < 1e-12);
  assert_true(fabs(st.spread - sqrt(3.0)) < 1e-12);
  assert_true(fabs(st.rmse - sqrt(42.75 / 3)) < 1e-12);
  assert_true(fabs(st.crps - 6.875 / 3) < 1e-12);
  assert_true(fabs(eval_level(1) - 0.1) < 1e-15 && fabs(eval_level(9) - 0.5) < 1e-15 && fabs(eval_level(17) - 0.9) < 1e-15);
  assert_true(fabs(st.coverage[1] - 0.5) < 1e-12);
  assert_true(fabs(st.coverage[9] - 1.75) < 1e-12);
  assert_true(fabs(st.coverage[17] - 2.75) < 1e-12);
  /* every level, from the definition written out here */
  const double r[3] = {2, 3, 0};
  for (int i = 0; i < EVAL_N_LEVELS; i++) {
    double a = 0.05 * (i + 1), lo = 2.5 * (1 - a), hi = 2.5 * (1 + a), c = 0;
    for (int k = 0; k < 3; k++) c += fmax(0.0, fmin(r[k] + 1, hi) - fmax(r[k], lo));
    assert_true(fabs(st.coverage[i] - c) < 1e-12);
  }
  /* S = 2: one pair, spread is |x1 - x2| / sqrt(2) (S - 1 = 1), not / 2 */
  const double two[2] = {1.0, 4.0}, t0 = 10.0;
  long h2[3] = {0};
  eval_score_case(two, 2, 1, &t0, &st, h2, NULL, NULL, work);
  assert_true(fabs(st.spread - 3.0 / sqrt(2.0)) < 1e-12);
  assert_true(h2[2] == 1 && h2[0] == 0 && h2[1] == 0); /* the truth above both samples: rank S */
  assert_true(fabs(st.crps - (7.5 - 0.75)) < 1e-12); /* E|X - 10| = 7.5, E|X - X'| = 3/2 */
}

/* Expected coverage at level a when the truth's rank among S samples is
 * Binomial(S, Phi(z / k)), z ~ N(0, 1) (samples with k times the posterior
 * std): the mean over z (trapezoid rule on [-9, 9], 4001 points) and r of
 * |[r, r+1] ∩ [(S+1)(1-a)/2, (S+1)(1+a)/2]|, from the definition in
 * eval_metrics.h, written out here. */
static double expected_coverage(double k, int S, double a) {
  double lo = 0.5 * (S + 1) * (1 - a), hi = 0.5 * (S + 1) * (1 + a), acc = 0, h = 18.0 / 4000;
  for (int j = 0; j <= 4000; j++) {
    double z = -9 + j * h, pz = exp(-0.5 * z * z) / sqrt(2 * M_PI) * h * (j == 0 || j == 4000 ? 0.5 : 1);
    double q = 0.5 * erfc(-z / k / sqrt(2)), e = 0;
    for (int r = 0; r <= S; r++) {
      double lp = lgamma(S + 1.0) - lgamma(r + 1.0) - lgamma(S - r + 1.0);
      double pr = r == 0 ? pow(1 - q, S) : r == S ? pow(q, S) : exp(lp + r * log(q) + (S - r) * log1p(-q));
      e += pr * fmax(0.0, fmin(r + 1.0, hi) - fmax((double)r, lo));
    }
    acc += pz * e;
  }
  return acc;
}

/* The DIRECTION of miscalibration. Samples with std k times the posterior's:
 * the expected coverage (expected_coverage) is below a at every level for
 * k < 1 (too narrow), above for k > 1 (too wide). Rank histograms: too
 * narrow piles the truth's rank at 0 and S (U shape), too wide in the middle
 * (hump); samples biased upwards put the truth's rank low. Tolerance on the
 * coverage curve: 0.03 = about 4 binomial standard errors of 4000 components
 * (<= 0.008); a one-rank shift moves the curve by ~1/(S+1) ~ 0.03 at most
 * levels for these skewed rank distributions, and a swapped direction by
 * far more (the sign checks). */
static void test_miscalibration_direction(void **state) {
  (void)state;
  const int S = 32;
  double err, p, rmse, spread, crps, cov[EVAL_N_LEVELS];
  long hist[33];
  const double ks[2] = {0.5, 2.0};
  for (int kk = 0; kk < 2; kk++) {
    double k = ks[kk], worst = 0;
    run_gaussian_ex(k, 0.0, &err, &p, &rmse, &spread, &crps, cov, hist);
    for (int i = 0; i < EVAL_N_LEVELS; i++) {
      double a = eval_level(i), want = expected_coverage(k, S, a);
      worst = fmax(worst, fabs(cov[i] - want));
      if (k < 1) assert_true(cov[i] < a - 0.02); /* too narrow: under-covers at every level */
      else assert_true(cov[i] > a + 0.02);      /* too wide: over-covers at every level */
    }
    long ends = hist[0] + hist[1] + hist[S - 1] + hist[S], mid = hist[S / 2 - 2] + hist[S / 2 - 1] + hist[S / 2] + hist[S / 2 + 1];
    print_message("std x %.1f: max |coverage - expected| %.4f; histogram ends %ld, middle %ld (flat: %.0f)\n", k,
                  worst, ends, mid, 4 * 4000.0 / (S + 1));
    assert_true(worst < 0.03);
    if (k < 1) assert_true(ends > 3 * mid); /* U shape */
    else assert_true(mid > 3 * ends);       /* hump */
  }
  /* samples biased upwards by one posterior std: the truth ranks low */
  run_gaussian_ex(1.0, 1.0, &err, &p, &rmse, &spread, &crps, cov, hist);
  long low = 0, high = 0;
  for (int r = 0; r < S / 2; r++) low += hist[r];
  for (int r = S / 2 + 1; r <= S; r++) high += hist[r];
  print_message("bias +1 std: ranks below the middle %ld, above %ld\n", low, high);
  assert_true(low > 3 * high);
  /* the truth is below the sample median with probability about
   * Phi(1 / sqrt(1 + 1/S)) ~ 0.84 (the median's own spread ~ sd / sqrt(S)) */
  double frac = (double)low / 4000;
  assert_true(fabs(frac - 0.5 * erfc(-1 / sqrt(2 * (1 + 1.0 / S)))) < 0.04);
}

/* The rank-uniformity chi-square by hand. (a) S = 4, 100 ranks in 5 bins
 * {10, 20, 30, 25, 15}, expected 20 each: chi2 = (100 + 0 + 100 + 25 + 25) / 20
 * = 12.5 on 4 degrees of freedom, p = Q(2, 6.25) = e^-6.25 (1 + 6.25).
 * (b) S = 39: 40 ranks grouped in 20 pairs; 4 per rank below 20 and 1 above
 * (total 100): each pair has 8 or 2 against 5 expected, chi2 = 20 * 9 / 5 =
 * 36 on 19 degrees of freedom, p = Q(9.5, 18) = erfc(sqrt 18) + e^-18
 * sum_{k<9} 18^(k+1/2) / Gamma(k + 3/2). Tolerance 1e-12 relative. */
static void test_rank_uniformity_by_hand(void **state) {
  (void)state;
  long h4[5] = {10, 20, 30, 25, 15};
  int bins;
  double p = eval_rank_uniformity_p(h4, 4, &bins);
  assert_int_equal(bins, 5);
  double want = exp(-6.25) * 7.25;
  assert_true(fabs(p - want) < 1e-12 * want);
  long h39[40];
  for (int r = 0; r < 40; r++) h39[r] = r < 20 ? 4 : 1;
  p = eval_rank_uniformity_p(h39, 39, &bins);
  assert_int_equal(bins, 20);
  want = erfc(sqrt(18.0));
  for (int k = 0; k < 9; k++) want += exp(-18.0 + (k + 0.5) * log(18.0) - lgamma(k + 1.5));
  print_message("chi2 p-values: %.6g (hand %.6g)\n", p, want);
  assert_true(fabs(p - want) < 1e-12 * want);
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
      cmocka_unit_test(test_score_case_by_hand),
      cmocka_unit_test(test_miscalibration_direction),
      cmocka_unit_test(test_rank_uniformity_by_hand),
      cmocka_unit_test(test_hpd_coverage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
