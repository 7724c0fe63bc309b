/* test_prior_pool.c: the baselines' prior ensemble for the stationary
 * Kolmogorov preset comes from a climatology pool (prior_pool.c): its members
 * are distinct pool states, the pool states are the documented trajectories
 * (s->init of seed 0xC11A7E, then every 4 intervals), the draw depends only on
 * the seed, and a pool cached in SBIDA_POOL_DIR gives the same members as a
 * fresh one. A small pool (4 trajectories x 2 states) keeps this fast;
 * l96-sakov and kolmogorov-t do not use a pool. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "baselines/baselines.h"

enum { TRAJ = 4, PER = 2, P = TRAJ * PER, K = 6 };

static void test_pool_members(void **state) {
  (void)state;
  sim *s;
  sb_error err;
  assert_int_equal(sim_create(&s, "kolmogorov", 0, &err), 0);
  assert_true(est_prior_uses_pool(s));
  int n = s->dim;
  /* the pool, computed here from its definition */
  double *pool = malloc(sizeof(double) * P * n), *traj = malloc(sizeof(double) * TRAJ * n);
  assert_int_equal(s->init(s, traj, TRAJ, 0xC11A7Eu, 0, &err), 0);
  for (int k = 0; k < PER; k++) {
    if (k > 0) assert_int_equal(s->advance(s, traj, TRAJ, 4, &err), 0);
    for (int b = 0; b < TRAJ; b++) memcpy(pool + ((size_t)b * PER + k) * n, traj + (size_t)b * n, sizeof(double) * n);
  }
  char dir[] = "/tmp/sbida-pool-XXXXXX";
  assert_non_null(mkdtemp(dir));
  setenv("SBIDA_POOL_DIR", dir, 1);
  est_prior_pool_reset(TRAJ, PER);
  double *X = malloc(sizeof(double) * K * n), *Y = malloc(sizeof(double) * K * n);
  assert_int_equal(est_prior_ensemble(s, X, K, 0, 11, NULL, &err), 0);
  int seen[P] = {0};
  for (int i = 0; i < K; i++) {
    int which = -1;
    for (int q = 0; q < P; q++)
      if (!memcmp(X + (size_t)i * n, pool + (size_t)q * n, sizeof(double) * n)) which = q;
    assert_true(which >= 0);      /* a pool state, bit for bit */
    assert_int_equal(seen[which], 0); /* distinct */
    seen[which] = 1;
  }
  /* the cache file exists; a fresh process (reset) reads it and draws the same */
  char path[256];
  snprintf(path, sizeof path, "%s/kolmogorov-pool-%dx%d.npy", dir, TRAJ, PER);
  assert_int_equal(access(path, R_OK), 0);
  est_prior_pool_reset(TRAJ, PER);
  assert_int_equal(est_prior_ensemble(s, Y, K, 0, 11, NULL, &err), 0);
  assert_memory_equal(X, Y, sizeof(double) * K * n);
  /* another seed, another draw; the time index does not matter (stationary) */
  assert_int_equal(est_prior_ensemble(s, Y, K, 5, 12, NULL, &err), 0);
  assert_true(memcmp(X, Y, sizeof(double) * K * n) != 0);
  /* more members than the pool: the first P distinct, the rest repeat pool states */
  double *Z = malloc(sizeof(double) * (P + 3) * n);
  assert_int_equal(est_prior_ensemble(s, Z, P + 3, 0, 13, NULL, &err), 0);
  for (int i = 0; i < P + 3; i++) {
    int found = 0;
    for (int q = 0; q < P; q++) found |= !memcmp(Z + (size_t)i * n, pool + (size_t)q * n, sizeof(double) * n);
    assert_true(found);
  }
  unlink(path);
  rmdir(dir);
  unsetenv("SBIDA_POOL_DIR");
  est_prior_pool_reset(0, 0);
  free(pool), free(traj), free(X), free(Y), free(Z);
  sim_free(s);
}

static void test_no_pool_elsewhere(void **state) {
  (void)state;
  const char *presets[2] = {"l96-sakov", "kolmogorov-t"};
  for (int k = 0; k < 2; k++) {
    sim *s;
    sb_error err;
    assert_int_equal(sim_create(&s, presets[k], 0, &err), 0);
    assert_false(est_prior_uses_pool(s));
    int n = s->dim;
    double *X = malloc(sizeof(double) * 3 * n), *Y = malloc(sizeof(double) * 3 * n);
    assert_int_equal(est_prior_ensemble(s, X, 3, 2, 9, NULL, &err), 0);
    if (s->stationary) assert_int_equal(s->init(s, Y, 3, 9, 0, &err), 0);
    else assert_int_equal(sim_sample_at(s, Y, 3, 2, 9, 0, &err), 0);
    assert_memory_equal(X, Y, sizeof(double) * 3 * n);
    free(X), free(Y);
    sim_free(s);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pool_members),
      cmocka_unit_test(test_no_pool_elsewhere),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
