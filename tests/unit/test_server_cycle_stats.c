/* A stream cycle's spread and observation-space RMSE (server/cycle_stats.c)
 * against sums written out by hand: identity, an offset subsample, a
 * nonlinear operator, missing values, a cycle without observations, sizes
 * that disagree, and the stored JSON texts. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "obs/obs.h"
#include "server/cycle_stats.h"

#define assert_near(a, b, tol)                                                                  \
  do {                                                                                          \
    double a_ = (a), b_ = (b);                                                                  \
    if (!(fabs(a_ - b_) <= (tol))) fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);          \
  } while (0)

static obs_op *make(const char *text, int W) {
  obs_op *op;
  sb_error err = {0};
  if (obs_from_string(&op, text, 1, 1, W, &err)) fail_msg("%s: %s", text, err.msg);
  return op;
}

static void test_identity(void **state) {
  (void)state;
  double mean[4] = {1, 2, 3, 4}, std[4] = {0.5, 1.5, 1, 3}, y[4] = {2, 2, 1, 4};
  obs_op *op = make("{\"type\":\"identity\"}", 4);
  cycle_stats cs;
  cycle_stats_compute(mean, std, 4, op, y, 4, &cs);
  assert_near(cs.spread, 6.0 / 4, 1e-15);
  /* residuals -1, 0, 2, 0: sqrt(5 / 4) */
  assert_near(cs.obs_rmse, sqrt(5.0 / 4), 1e-15);
  assert_int_equal(cs.obs_count, 4);
  obs_free(op);
}

static void test_subsample_with_missing_values(void **state) {
  (void)state;
  double mean[6] = {10, 1, 20, 2, 30, 3}, std[6] = {1, 1, 1, 1, 1, 7};
  /* offset 1, stride 2 observes mean[1], mean[3], mean[5] = 1, 2, 3 */
  obs_op *op = make("{\"type\":\"subsample\",\"stride\":2,\"offset\":1}", 6);
  double y[3] = {4, NAN, 3.5};
  cycle_stats cs;
  cycle_stats_compute(mean, std, 6, op, y, 3, &cs);
  assert_near(cs.spread, 12.0 / 6, 1e-15);
  /* residuals 1 - 4 = -3 and 3 - 3.5 = -0.5 over the two observed: sqrt(9.25 / 2) */
  assert_near(cs.obs_rmse, sqrt(9.25 / 2), 1e-15);
  assert_int_equal(cs.obs_count, 2);
  /* all missing, or no row: spread only */
  double none[3] = {NAN, NAN, NAN};
  cycle_stats_compute(mean, std, 6, op, none, 3, &cs);
  assert_true(isnan(cs.obs_rmse));
  assert_int_equal(cs.obs_count, 0);
  assert_near(cs.spread, 2.0, 1e-15);
  cycle_stats_compute(mean, std, 6, op, NULL, 0, &cs);
  assert_true(isnan(cs.obs_rmse));
  /* a row of another length than the operator's, or no operator: no RMSE */
  cycle_stats_compute(mean, std, 6, op, y, 2, &cs);
  assert_true(isnan(cs.obs_rmse));
  cycle_stats_compute(mean, std, 6, NULL, y, 3, &cs);
  assert_true(isnan(cs.obs_rmse));
  assert_near(cs.spread, 2.0, 1e-15);
  obs_free(op);
  /* an operator for another state size */
  obs_op *op8 = make("{\"type\":\"subsample\",\"stride\":2,\"offset\":1}", 8);
  double y4[4] = {1, 2, 3, 4};
  cycle_stats_compute(mean, std, 6, op8, y4, 4, &cs);
  assert_true(isnan(cs.obs_rmse));
  obs_free(op8);
}

static void test_nonlinear_operator_maps_the_mean(void **state) {
  (void)state;
  /* H(x) = x^2 elementwise: the RMSE is of H(mean), not of mean */
  double mean[3] = {1, -2, 3}, std[3] = {1, 1, 1}, y[3] = {1, 5, 9};
  obs_op *op = make("{\"type\":\"square\",\"of\":{\"type\":\"identity\"}}", 3);
  cycle_stats cs;
  cycle_stats_compute(mean, std, 3, op, y, 3, &cs);
  /* residuals 0, 4 - 5, 0 */
  assert_near(cs.obs_rmse, sqrt(1.0 / 3), 1e-15);
  obs_free(op);
}

static void test_from_stored_json(void **state) {
  (void)state;
  obs_op *op = make("{\"type\":\"identity\"}", 3);
  const char *result = "{\"mean\":[1,2,3],\"std\":[0.1,0.2,0.6],\"quantiles\":{}}";
  cycle_stats cs;
  assert_int_equal(cycle_stats_from_json(result, "[2,null,1]", op, &cs), 0);
  assert_near(cs.spread, 0.3, 1e-15);
  /* residuals -1 and 2 over the two observed values */
  assert_near(cs.obs_rmse, sqrt(5.0 / 2), 1e-15);
  assert_int_equal(cs.obs_count, 2);
  /* a cycle without observations (its row is null) */
  assert_int_equal(cycle_stats_from_json(result, "null", op, &cs), 0);
  assert_true(isnan(cs.obs_rmse));
  assert_near(cs.spread, 0.3, 1e-15);
  /* no summary yet (queued or failed), or an unreadable one: nothing */
  assert_int_equal(cycle_stats_from_json(NULL, "[1,2,3]", op, &cs), 0);
  assert_true(isnan(cs.spread) && isnan(cs.obs_rmse));
  assert_int_equal(cycle_stats_from_json("{\"mean\":[1,2],\"std\":[1]}", "[1,2,3]", op, &cs), 0);
  assert_true(isnan(cs.spread) && isnan(cs.obs_rmse));
  assert_int_equal(cycle_stats_from_json("not json", "[1,2,3]", op, &cs), 0);
  assert_true(isnan(cs.spread));
  obs_free(op);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identity),
      cmocka_unit_test(test_subsample_with_missing_values),
      cmocka_unit_test(test_nonlinear_operator_maps_the_mean),
      cmocka_unit_test(test_from_stored_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
