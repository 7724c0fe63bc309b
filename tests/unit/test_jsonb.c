/* test_jsonb.c: a JSON result is built whole or not at all. Every allocation
 * jansson makes while eval_to_json builds an evaluation result is failed in
 * turn (json_set_alloc_funcs): each run must give either NULL or the very same
 * document as the run without failures, never one with a field left out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "catalog/catalog.h"
#include "eval/eval.h"
#include "util/jsonb.h"

static long alloc_count, fail_at = -1;

static void *counting_malloc(size_t n) {
  if (alloc_count++ == fail_at) return NULL;
  return malloc(n);
}

static json_t *build_eval(const estimator *e, const obs_op *op, const obs_noise *nz, const json_t *params) {
  static long hist[5] = {3, 1, 4, 1, 5};
  eval_summary s = {.n_cases = 14, .n_samples = 4, .dim = 40, .window = 10, .rmse = 0.5, .spread = 0.4,
                    .spread_skill = 0.8, .crps = 0.3, .coverage_max_abs_error = 0.02, .rank_hist = hist,
                    .rank_bins = 5, .rank_p = 0.2, .has_hpd = 1, .seconds = 1.5, .samples_per_second = 37,
                    .threads = 2};
  for (int i = 0; i < EVAL_N_LEVELS; i++) s.coverage[i] = s.hpd_coverage[i] = 0.1 * i;
  return eval_to_json(&s, e, op, nz, 9, 9, 7, params, "0.0.0");
}

static void test_eval_json_whole_or_nothing(void **state) {
  (void)state;
  estimator *e;
  sb_error err = {0};
  assert_int_equal(est_open(&e, "etkf", "l96-sakov", 0, &err), 0);
  obs_op *op;
  json_t *oj = json_pack("{s:s}", "type", "identity");
  assert_int_equal(obs_from_json(&op, oj, 1, 1, 40, &err), 0);
  json_decref(oj);
  obs_noise nz;
  assert_int_equal(obs_noise_scalar(&nz, 1.0, op->n_obs, &err), 0);

  json_t *params = json_pack("{s:f}", "inflation", 1.02);
  json_t *ref = build_eval(e, op, &nz, params);
  assert_non_null(ref);
  char *want = json_dumps(ref, JSON_SORT_KEYS);
  json_decref(ref);
  json_set_alloc_funcs(counting_malloc, free);
  alloc_count = 0, fail_at = -1;
  json_decref(build_eval(e, op, &nz, params));
  long total = alloc_count;
  assert_true(total > 50);
  int nulls = 0;
  for (fail_at = 0; fail_at < total; fail_at++) {
    alloc_count = 0;
    json_t *j = build_eval(e, op, &nz, params);
    long saved = fail_at;
    fail_at = -1; /* dumping must not fail */
    if (j) {
      char *got = json_dumps(j, JSON_SORT_KEYS);
      assert_string_equal(got, want);
      free(got);
    } else {
      nulls++;
    }
    json_decref(j);
    fail_at = saved;
  }
  json_set_alloc_funcs(malloc, free);
  /* almost every failure is seen (a failed key copy inside jansson may be retried) */
  assert_true(nulls > total / 2);
  free(want);
  json_decref(params);
  obs_noise_free(&nz);
  obs_free(op);
  est_free(e);
}

static void test_helpers_count_failures(void **state) {
  (void)state;
  int bad = 0;
  json_t *o = jb_object(&bad), *a = jb_array(&bad);
  jb_push(a, json_integer(1), &bad);
  jb_set(o, "a", a, &bad);
  assert_int_equal(bad, 0);
  jb_set(o, "b", NULL, &bad);       /* a failed constructor */
  jb_push(NULL, json_integer(2), &bad); /* a failed container (the value is freed) */
  jb_set(json_object_get(o, "a"), "x", json_true(), &bad); /* not an object */
  assert_int_equal(bad, 3);
  assert_null(jb_done(o, bad));
  json_t *ok = jb_object(&bad);
  assert_ptr_equal(jb_done(ok, 0), ok);
  json_decref(ok);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_helpers_count_failures),
                                     cmocka_unit_test(test_eval_json_whole_or_nothing)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
