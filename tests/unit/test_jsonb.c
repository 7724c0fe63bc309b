/* test_jsonb.c: a JSON result is built whole or not at all. Every allocation
 * jansson makes while a builder runs is failed in turn
 * (json_set_alloc_funcs): each run must give either NULL (an error) or the
 * very same document as the run without failures, never one with a field
 * left out. Builders: the evaluation and cycling results, operator and noise
 * JSON, the estimator descriptions and the diagnostics of every baseline and
 * model kind's samples. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "catalog/catalog.h"
#include "eval/eval.h"
#include "eval/eval_cycle.h"
#include "kinds/kinds.h"
#include "obs/obs.h"
#include "sim/sim.h"
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

/* Runs build(ctx) once without failures, then with each of its jansson
 * allocations from the skip-th on failing in turn: every run gives NULL or
 * the same document. Returns how many runs gave NULL; *total: the
 * allocations of one run. */
static int whole_or_nothing_from(json_t *(*build)(void *ctx), void *ctx, long skip, long *total) {
  json_t *ref = build(ctx);
  assert_non_null(ref);
  char *want = json_dumps(ref, JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
  json_decref(ref);
  json_set_alloc_funcs(counting_malloc, free);
  alloc_count = 0, fail_at = -1;
  json_decref(build(ctx));
  *total = alloc_count;
  int nulls = 0;
  for (fail_at = skip; fail_at < *total; fail_at++) {
    alloc_count = 0;
    json_t *j = build(ctx);
    long saved = fail_at;
    fail_at = -1; /* dumping must not fail */
    if (j) {
      char *got = json_dumps(j, JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
      assert_string_equal(got, want);
      free(got);
    } else {
      nulls++;
    }
    json_decref(j);
    fail_at = saved;
  }
  json_set_alloc_funcs(malloc, free);
  free(want);
  return nulls;
}

static int whole_or_nothing(json_t *(*build)(void *ctx), void *ctx, long *total) {
  return whole_or_nothing_from(build, ctx, 0, total);
}

static json_t *build_cycle(void *ctx) {
  const estimator *e = ctx;
  sb_error err = {0};
  obs_op *op = NULL;
  obs_noise nz = {0};
  if (obs_from_string(&op, "{\"type\":\"subsample\",\"stride\":2}", 1, 1, 40, &err) ||
      obs_noise_scalar(&nz, 0.5, op->n_obs, &err)) {
    obs_free(op);
    return NULL;
  }
  eval_cycle_summary s = {.cycles = 50, .counted = 40, .rmse = 0.5, .spread = 0.45, .spread_skill = 0.9, .crps = 0.3,
                          .seconds_per_cycle = 0.01, .rmse_max = 1.5};
  eval_cycle_config c = {.window = 1, .spinup = 10, .n_samples = 16, .seed = 3};
  json_t *j = eval_cycle_to_json(&s, e, op, &nz, &c);
  obs_free(op);
  obs_noise_free(&nz);
  return j;
}

static void test_cycle_json_whole_or_nothing(void **state) {
  (void)state;
  estimator *e;
  sb_error err = {0};
  assert_int_equal(est_open(&e, "etkf", "l96-sakov", 0, &err), 0);
  long total;
  int nulls = whole_or_nothing(build_cycle, e, &total);
  assert_true(total > 20);
  assert_true(nulls > total / 2);
  est_free(e);
}

/* One operator's JSON (and the noise's) after a round trip through the parser. */
typedef struct op_case {
  const char *json;
  int C, H, W;
  int noise_per_obs; /* 1: a noise std per observation (an array) */
} op_case;

static json_t *build_op(void *ctx) {
  const op_case *c = ctx;
  sb_error err = {0};
  obs_op *op = NULL;
  obs_noise nz = {0};
  json_t *out = NULL, *a = NULL;
  if (obs_from_string(&op, c->json, c->C, c->H, c->W, &err)) return NULL; /* a failed parse */
  if ((a = json_array()))
    for (int i = 0; i < op->n_obs; i++) json_array_append_new(a, json_real(c->noise_per_obs ? 0.5 + 0.25 * i : 0.5));
  /* the noise from its JSON form (a failed append gives a short array: refused), then both back */
  if (a && !obs_noise_from_json(&nz, a, op->n_obs, &err)) {
    json_t *oj = obs_to_json(op), *zj = obs_noise_to_json(&nz);
    if (oj && zj) out = json_pack("{s:o, s:o}", "operator", oj, "noise", zj); /* steals both, even on failure */
    else json_decref(oj), json_decref(zj);
  }
  json_decref(a);
  obs_noise_free(&nz);
  obs_free(op);
  return out;
}

static void test_operator_json_whole_or_nothing(void **state) {
  (void)state;
  op_case cases[] = {
      {"{\"type\":\"subsample\",\"stride\":2,\"offset\":1}", 1, 1, 40, 1},
      {"{\"type\":\"stations\",\"indices\":[0,3,7,9]}", 1, 1, 40, 1},
      {"{\"type\":\"kernel_stations\",\"block\":4,\"sigma_k\":1.5}", 1, 1, 40, 0},
      {"{\"type\":\"random_stations\",\"count\":6,\"seed\":4,\"channels\":[1]}", 2, 8, 8, 1},
      {"{\"type\":\"coarsen\",\"factor\":[2,4],\"channels\":[0]}", 2, 8, 8, 0},
      {"{\"type\":\"square\",\"of\":{\"type\":\"subsample\",\"stride\":4}}", 1, 1, 40, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    long total;
    int nulls = whole_or_nothing(build_op, &cases[i], &total);
    assert_true(nulls > 0);
  }
}

/* The diagnostics of one est_sample call, or NULL when it failed for lack of memory. */
typedef struct sample_case {
  estimator *e;
  est_problem p;
  obs_op *op;
  obs_noise nz;
  double *y;
} sample_case;

static json_t *build_diagnostics(void *ctx) {
  sample_case *c = ctx;
  est_options o = {.n_samples = 6, .seed = 5, .threads = 1, .want_window = c->e->has_window};
  est_result r;
  sb_error err = {0};
  int rc = est_sample(c->e, &c->p, &o, &r, &err);
  if (rc) {
    if (rc != SB_ENOMEM) fail_msg("%s: %s", c->e->name, err.msg); /* only memory may run out */
    return NULL;
  }
  json_t *d = json_incref(r.diagnostics);
  est_result_free(&r);
  return d;
}

static json_t *build_info(void *ctx) {
  const char *path = ctx;
  estimator *e;
  sb_error err = {0};
  if (est_open(&e, path, "l96-thesis", 0, &err)) return NULL; /* a failed parse or description */
  json_t *info = json_incref(e->info);
  est_free(e);
  return info;
}

static void sample_case_init(sample_case *c, const char *spec) {
  sb_error err = {0};
  memset(c, 0, sizeof *c);
  if (est_open(&c->e, spec, "l96-thesis", 0, &err)) fail_msg("%s: %s", spec, err.msg);
  estimator *e = c->e;
  int W = e->window > 0 ? e->window : 3;
  if (e->fixed_op) {
    json_t *j = obs_to_json(e->fixed_op);
    assert_int_equal(obs_from_json(&c->op, j, 1, 1, e->sim->dim, &err), 0);
    json_decref(j);
    j = obs_noise_to_json(e->fixed_noise);
    assert_int_equal(obs_noise_from_json(&c->nz, j, c->op->n_obs, &err), 0);
    json_decref(j);
  } else {
    assert_int_equal(obs_from_string(&c->op, "{\"type\":\"subsample\",\"stride\":2}", 1, 1, e->sim->dim, &err), 0);
    assert_int_equal(obs_noise_scalar(&c->nz, 1.0, c->op->n_obs, &err), 0);
  }
  c->y = calloc((size_t)W * c->op->n_obs, sizeof(double));
  for (int i = 0; i < W * c->op->n_obs; i++) c->y[i] = sin(0.3 * i);
  c->p = (est_problem){e->sim, c->op, &c->nz, W, e->sim->stationary ? W - 1 : 500, c->y, NULL};
}

static void test_estimators_whole_or_nothing(void **state) {
  (void)state;
  const char *specs[] = {"etkf", "letkf", "pf", "tests/data/golden/tiny-posterior-score.safetensors",
                         "tests/data/golden/tiny-composed-score.safetensors", "tests/data/golden/tiny-npe.safetensors",
                         "tests/data/golden/tiny-nre.safetensors"};
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    sample_case c;
    sample_case_init(&c, specs[i]);
    long total;
    int nulls = whole_or_nothing(build_diagnostics, &c, &total);
    print_message("%s: %ld jansson allocations in one call, %d of their failures gave an error\n", specs[i], total,
                  nulls);
    assert_true(nulls > 0);
    if (strstr(specs[i], ".safetensors")) {
      /* the estimator's description (est_open): its allocations after the
       * file's parse, as jansson's parser (2.14) does not survive a failed
       * allocation itself */
      model m;
      sb_error err;
      json_set_alloc_funcs(counting_malloc, free);
      alloc_count = 0, fail_at = -1;
      assert_int_equal(model_load(&m, specs[i], &err), 0);
      long parse = alloc_count;
      json_set_alloc_funcs(malloc, free);
      model_free(&m);
      nulls = whole_or_nothing_from(build_info, (void *)specs[i], parse, &total);
      print_message("  its description: %ld allocations after the parse, %d failures gave an error\n", total - parse,
                    nulls);
      assert_true(total - parse > 10 && nulls > (total - parse) / 2);
    }
    est_free(c.e);
    obs_free(c.op);
    obs_noise_free(&c.nz);
    free(c.y);
  }
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
  /* reals: a non-finite value is left out (JSON has none), as json_real did; no failure */
  bad = 0;
  json_t *r = jb_object(&bad), *l = jb_array(&bad);
  jb_set_real(r, "x", 1.5, &bad);
  jb_set_real(r, "nan", NAN, &bad);
  jb_set_real(r, "inf", -INFINITY, &bad);
  jb_push_real(l, 2.5, &bad);
  jb_push_real(l, NAN, &bad);
  jb_push_real(l, 3.5, &bad);
  assert_int_equal(bad, 0);
  assert_true(json_real_value(json_object_get(r, "x")) == 1.5);
  assert_int_equal(json_object_size(r), 1);
  assert_int_equal(json_array_size(l), 2);
  assert_true(json_real_value(json_array_get(l, 1)) == 3.5);
  jb_set_real(NULL, "x", 1.0, &bad);  /* a failed container counts, finite or not */
  jb_push_real(NULL, NAN, &bad);
  assert_int_equal(bad, 2);
  json_decref(r);
  json_decref(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_helpers_count_failures),
                                     cmocka_unit_test(test_eval_json_whole_or_nothing),
                                     cmocka_unit_test(test_cycle_json_whole_or_nothing),
                                     cmocka_unit_test(test_operator_json_whole_or_nothing),
                                     cmocka_unit_test(test_estimators_whole_or_nothing)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
