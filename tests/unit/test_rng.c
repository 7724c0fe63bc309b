/* Philox4x32-10 known answers (Random123 kat_vectors) and stream properties. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/rng.h"

static void test_philox_known_answers(void **state) {
  (void)state;
  static const uint32_t cases[3][10] = {
      {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
       0xa20bc7c6, 0x6d5451fd},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
       0x5001e420, 0x24126ea1}};
  for (int c = 0; c < 3; c++) {
    uint32_t out[4];
    rng_philox4x32(cases[c], cases[c] + 4, out);
    for (int i = 0; i < 4; i++) assert_int_equal(out[i], cases[c][6 + i]);
  }
}

static void test_streams_reproducible_and_distinct(void **state) {
  (void)state;
  rng a, b, c;
  rng_init(&a, 42, 7);
  rng_init(&b, 42, 7);
  rng_init(&c, 42, 8);
  int differ = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = rng_u64(&a), y = rng_u64(&b), z = rng_u64(&c);
    assert_true(x == y);
    differ += x != z;
  }
  assert_true(differ > 990);
}

static void test_normal_moments(void **state) {
  (void)state;
  rng r;
  rng_init(&r, 1, 0);
  const int n = 400000;
  double s1 = 0, s2 = 0, s4 = 0;
  for (int i = 0; i < n; i++) {
    double z = rng_normal(&r);
    assert_true(isfinite(z));
    s1 += z;
    s2 += z * z;
    s4 += z * z * z * z;
  }
  double mean = s1 / n, var = s2 / n - mean * mean, kurt = s4 / n;
  /* standard errors: mean 1/sqrt(n) = 0.0016, var sqrt(2/n) = 0.0022, E z^4 ~ 0.015 */
  assert_true(fabs(mean) < 0.01);
  assert_true(fabs(var - 1) < 0.01);
  assert_true(fabs(kurt - 3) < 0.08);
}

static void test_uniform_and_below(void **state) {
  (void)state;
  rng r;
  rng_init(&r, 9, 3);
  int counts[7] = {0};
  for (int i = 0; i < 70000; i++) {
    double u = rng_uniform(&r), p = rng_uniform_pos(&r);
    assert_true(u >= 0 && u < 1);
    assert_true(p > 0 && p < 1);
    uint64_t k = rng_below(&r, 7);
    assert_true(k < 7);
    counts[k]++;
  }
  for (int k = 0; k < 7; k++) assert_true(counts[k] > 9500 && counts[k] < 10500); /* 10000 +- 5 sd */
  assert_int_equal(rng_below(&r, 1), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_philox_known_answers),
      cmocka_unit_test(test_streams_reproducible_and_distinct),
      cmocka_unit_test(test_normal_moments),
      cmocka_unit_test(test_uniform_and_below),
  };
  return cmocka_run_group_tests_name("rng", tests, NULL, NULL);
}
