/* Lorenz96 against tests/data/reference/lorenz96_rk4.json (independent numpy,
 * float64), the simulator presets, and attractor statistics.
 * Tolerances: tendency 1e-12 relative; 1, 2 and 10 RK4 steps 1e-11 absolute;
 * 100 steps 1e-8 absolute (5 model time units of chaotic growth, largest
 * Lyapunov exponent ~1.7, amplify last-bit differences in the order of
 * floating-point operations by ~1e4). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sim/l96.h"
#include "sim/sim.h"
#include "testutil.h"

static void test_reference_tendency_and_rk4(void **state) {
  (void)state;
  json_t *ref = tu_load_json("tests/data/reference/lorenz96_rk4.json");
  json_t *cases = json_object_get(ref, "cases");
  assert_true(json_array_size(cases) >= 2);
  for (size_t c = 0; c < json_array_size(cases); c++) {
    json_t *jc = json_array_get(cases, c);
    int N = (int)json_integer_value(json_object_get(jc, "N"));
    double F = json_number_value(json_object_get(jc, "F")), dt = json_number_value(json_object_get(jc, "dt"));
    size_t n, ns, rows, cols;
    double *x0 = tu_doubles(json_object_get(jc, "x0"), &n);
    assert_int_equal(n, (size_t)N);
    double *tend = tu_doubles(json_object_get(jc, "tendency_x0"), &n);
    double *steps = tu_doubles(json_object_get(jc, "steps"), &ns);
    double *states = tu_matrix(json_object_get(jc, "states"), &rows, &cols);
    assert_int_equal(rows, ns);
    double *dx = malloc(sizeof(double) * N), *x = malloc(sizeof(double) * N), *w = malloc(sizeof(double) * 5 * N);
    l96_tendency(x0, dx, N, F);
    assert_true(tu_max_scaled_err(dx, tend, (size_t)N, 1e-300, 1e-12) <= 1.0);
    for (size_t k = 0; k < ns; k++) {
      memcpy(x, x0, sizeof(double) * N);
      l96_rk4(x, 1, N, F, dt, (int)steps[k], w);
      double tol = steps[k] >= 100 ? 1e-8 : 1e-11;
      double e = tu_max_scaled_err(x, states + k * cols, (size_t)N, tol, 0);
      if (e > 1.0) fail_msg("case N=%d, %g steps: error %.3g x tolerance", N, steps[k], e);
    }
    free(x0); free(tend); free(steps); free(states); free(dx); free(x); free(w);
  }
  json_decref(ref);
}

static void test_batched_equals_single(void **state) {
  (void)state;
  sim *s;
  sb_error err;
  assert_int_equal(sim_create(&s, "l96-sakov", 0, &err), 0);
  double batch[3 * 40], one[40];
  assert_int_equal(s->init(s, batch, 3, 5, 10, &err), 0);
  assert_int_equal(s->init(s, one, 1, 5, 11, &err), 0); /* stream 11 = member 1 of the batch */
  assert_memory_equal(one, batch + 40, sizeof one);
  assert_int_equal(s->advance(s, batch, 3, 7, &err), 0);
  assert_int_equal(s->advance(s, one, 1, 7, &err), 0);
  assert_memory_equal(one, batch + 40, sizeof one);
  sim_free(s);
}

/* Long-run statistics of l96-sakov (N=40, F=8): mean 2.35, std 3.64 (+-0.05). */
static void test_sakov_attractor_statistics(void **state) {
  (void)state;
  sim *s;
  sb_error err;
  assert_int_equal(sim_create(&s, "l96-sakov", 40, &err), 0);
  assert_true(s->stationary);
  const int B = 32, T = 4000;
  double *x = malloc(sizeof(double) * B * 40);
  assert_int_equal(s->init(s, x, B, 2024, 0, &err), 0);
  double s1 = 0, s2 = 0;
  long n = 0;
  for (int t = 0; t < T; t++) {
    assert_int_equal(s->advance(s, x, B, 1, &err), 0);
    for (int i = 0; i < B * 40; i++) s1 += x[i], s2 += x[i] * x[i], n++;
  }
  double mean = s1 / n, std = sqrt(s2 / n - mean * mean);
  print_message("l96-sakov attractor: mean %.4f std %.4f over %ld values\n", mean, std, n);
  assert_true(fabs(mean - 2.35) <= 0.05);
  assert_true(fabs(std - 3.64) <= 0.05);
  free(x);
  sim_free(s);
}

static void test_thesis_preset(void **state) {
  (void)state;
  sim *s;
  sb_error err;
  assert_int_equal(sim_create(&s, "l96-thesis", 0, &err), 0);
  assert_int_equal(s->dim, 32);
  assert_false(s->stationary);
  assert_int_equal(s->t_max, 1023);
  /* x_0 ~ N(0, I): sample moments over many draws */
  const int B = 2000;
  double *x = malloc(sizeof(double) * B * 32);
  assert_int_equal(s->init(s, x, B, 1, 0, &err), 0);
  double s1 = 0, s2 = 0;
  for (int i = 0; i < B * 32; i++) s1 += x[i], s2 += x[i] * x[i];
  assert_true(fabs(s1 / (B * 32)) < 0.02);
  assert_true(fabs(s2 / (B * 32) - 1) < 0.03);
  /* the prior changes with t: at t=200 the spread is the attractor's */
  assert_int_equal(sim_sample_at(s, x, 200, 200, 1, 0, &err), 0);
  s2 = 0;
  for (int i = 0; i < 200 * 32; i++) s2 += x[i] * x[i];
  assert_true(s2 / (200 * 32) > 5);
  assert_int_equal(sim_sample_at(s, x, 1, 1024, 1, 0, &err), SB_ERANGE);
  assert_non_null(strstr(err.msg, "1024"));
  free(x);
  sim_free(s);
  for (int N = 8; N <= 256; N *= 2) {
    assert_int_equal(sim_create(&s, "l96-thesis", N, &err), 0);
    assert_int_equal(s->dim, N);
    sim_free(s);
  }
}

static void test_bad_presets(void **state) {
  (void)state;
  sim *s;
  sb_error err;
  assert_int_equal(sim_create(&s, "l96-nope", 0, &err), SB_EINVAL);
  assert_null(s);
  assert_non_null(strstr(err.msg, "l96-sakov"));
  assert_int_equal(sim_create(&s, "l96-thesis", 30, &err), SB_ERANGE);
  assert_int_equal(sim_create(&s, "l96-thesis", 512, &err), SB_ERANGE);
  assert_int_equal(sim_create(&s, NULL, 0, &err), SB_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_tendency_and_rk4),
      cmocka_unit_test(test_batched_equals_single),
      cmocka_unit_test(test_sakov_attractor_statistics),
      cmocka_unit_test(test_thesis_preset),
      cmocka_unit_test(test_bad_presets),
  };
  return cmocka_run_group_tests_name("l96", tests, NULL, NULL);
}
