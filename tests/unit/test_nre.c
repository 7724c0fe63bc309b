/* nre: weight normalization and systematic resampling against exact counts,
 * a short training run whose validation BCE drops below chance, the model
 * file round trip, and the estimator (samples are prior draws, diagnostics,
 * thread independence, operator and params checks). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kinds/nre/nre.h"
#include "catalog/catalog.h"
#include "kinds/kinds.h"
#include "model/model.h"
#include "train/train.h"
#include "testutil.h"

static void test_normalize_and_resample(void **state) {
  (void)state;
  double w[4] = {log(0.5), log(0.25), log(0.25), -INFINITY};
  double ess = nre_normalize(w, 4);
  assert_true(fabs(ess - 1.0 / (0.25 + 0.0625 + 0.0625)) < 1e-12);
  assert_true(fabs(w[0] - 0.5) < 1e-12 && w[3] == 0.0);
  /* huge logits do not overflow */
  double big[3] = {1000.0, 1000.0, 0.0};
  assert_true(fabs(nre_normalize(big, 3) - 2.0) < 1e-9);
  /* systematic resampling: every count is floor or ceil of S w_m */
  enum { M = 7, S = 1000 };
  double v[M] = {0.01, 0.3, 0.05, 0.2, 0.004, 0.336, 0.1};
  int idx[S];
  const double us[3] = {0.0, 0.37, 0.999};
  for (int k = 0; k < 3; k++) {
    nre_resample(v, M, S, us[k], idx);
    int count[M] = {0};
    for (int s = 0; s < S; s++) {
      assert_true(idx[s] >= 0 && idx[s] < M);
      if (s) assert_true(idx[s] >= idx[s - 1]);
      count[idx[s]]++;
    }
    for (int m = 0; m < M; m++) assert_true(count[m] >= floor(S * v[m] - 1e-9) && count[m] <= ceil(S * v[m] + 1e-9));
  }
}

static char model_path[512];

static double train_tiny(long steps) {
  json_t *cfg = json_pack("{s:s, s:s, s:i, s:i, s:{s:s}, s:f, s:{s:i, s:i, s:i, s:i}, s:{s:i},"
                          " s:{s:I, s:i, s:f, s:i, s:i, s:i, s:i, s:f, s:i}}",
                          "kind", "nre", "preset", "l96-thesis", "N", 16, "window", 3, "operator", "type",
                          "kernel_stations", "noise_std", 0.5, "arch", "width", 16, "blocks", 1, "groups", 4, "emb_dim",
                          8, "nre", "candidates", 300, "train", "steps", (json_int_t)steps, "batch", 32, "lr", 3e-3,
                          "warmup", 5, "pool", 16, "refresh", 1, "val_windows", 64, "ema", 0.8, "val_every", 1000);
  return tu_train(cfg, model_path);
}

static void test_training_beats_chance(void **state) {
  (void)state;
  snprintf(model_path, sizeof model_path, "%s/tiny-nre.safetensors", tu_tmpdir());
  double v0 = train_tiny(1), v1 = train_tiny(200);
  print_message("nre: validation BCE %.4f after 1 step, %.4f after 200 (chance %.4f)\n", v0, v1, log(2.0));
  assert_true(isfinite(v1) && v1 < log(2.0) - 0.1 && v1 < v0);
  model a, b;
  sb_error err;
  assert_int_equal(model_load(&a, model_path, &err), 0);
  assert_string_equal(a.kind->name, "nre");
  assert_int_equal(nre_settings_of(&a)->candidates, 300);
  assert_int_equal(a.net.rc.n_scalars, 1); /* t only */
  char again[600];
  snprintf(again, sizeof again, "%s/again-nre.safetensors", tu_tmpdir());
  assert_int_equal(model_save(&a, 0, again, &err), 0);
  assert_int_equal(model_load(&b, again, &err), 0);
  assert_int_equal(nre_settings_of(&b)->candidates, 300);
  assert_memory_equal(a.net.params, b.net.params, sizeof(float) * a.net.n_params);
  model_free(&a);
  model_free(&b);
}

static int run(estimator *e, const char *op_json, double noise, int threads, const char *params, est_result *r) {
  json_t *pj = params ? json_loads(params, 0, NULL) : NULL;
  est_options o = {.n_samples = 50, .seed = 9, .threads = threads, .params = pj};
  int rc = tu_sample(e, op_json, noise, 3, 40, &o, r);
  json_decref(pj);
  return rc;
}

static void test_estimator(void **state) {
  (void)state;
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, model_path, NULL, 0, &err), 0);
  assert_string_equal(e->kind, "nre");
  assert_false(e->has_density);
  est_result r1, r2;
  assert_int_equal(run(e, "{\"type\":\"kernel_stations\"}", 0.5, 1, NULL, &r1), 0);
  json_t *d = r1.diagnostics;
  double ess = json_number_value(json_object_get(d, "ess"));
  print_message("nre: ESS %.1f of 300 candidates, %d distinct samples\n", ess,
                (int)json_integer_value(json_object_get(d, "distinct_samples")));
  assert_true(ess >= 1.0 && ess <= 300.0);
  assert_int_equal(json_integer_value(json_object_get(d, "candidates")), 300);
  /* every sample is one of the request's prior draws at t = 40 */
  double *prior = malloc(sizeof(double) * 300 * 16);
  assert_int_equal(sim_sample_at(e->sim, prior, 300, 40, 9, 0, &err), 0);
  for (int s = 0; s < 50; s++) {
    int found = 0;
    for (int m = 0; m < 300 && !found; m++) found = !memcmp(r1.samples + s * 16, prior + m * 16, sizeof(double) * 16);
    assert_true(found);
  }
  free(prior);
  assert_int_equal(run(e, "{\"type\":\"kernel_stations\"}", 0.5, 3, NULL, &r2), 0);
  assert_memory_equal(r1.samples, r2.samples, sizeof(double) * 50 * 16); /* any thread count */
  est_result_free(&r2);
  est_result_free(&r1);
  assert_int_equal(run(e, "{\"type\":\"kernel_stations\"}", 0.5, 1, "{\"candidates\": 64}", &r1), 0);
  assert_int_equal(json_integer_value(json_object_get(r1.diagnostics, "candidates")), 64);
  est_result_free(&r1);
  assert_int_equal(run(e, "{\"type\":\"kernel_stations\"}", 0.5, 1, "{\"candidates\": 1}", &r1), SB_EINVAL);
  assert_int_equal(run(e, "{\"type\":\"kernel_stations\"}", 0.5, 1, "{\"candidates\": 100000}", &r1), SB_EINVAL);
  assert_int_equal(run(e, "{\"type\":\"kernel_stations\"}", 0.5, 1, "{\"candidates\": 1.5}", &r1), SB_EINVAL);
  assert_int_equal(run(e, "{\"type\":\"identity\"}", 0.5, 1, NULL, &r1), SB_EINVAL);
  est_free(e);
}

/* The ratio weights favour candidates compatible with the observations: on
 * truth windows through the trained operator (kernel stations, noise 0.5,
 * W = 3, t = 40; 6 truths), the resampled candidates must be closer to the
 * truth in observation space (at time t) than the request's prior
 * candidates are on average: mean squared distance of H x_s to H x* below
 * 0.5 x the candidates' (a flipped logit sign picks the least compatible
 * ones: above 1 x). Measured ratio in the report printed below. */
static void test_weights_favour_compatible(void **state) {
  (void)state;
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, model_path, NULL, 0, &err), 0);
  double post = 0, prior = 0, post_x = 0, prior_x = 0;
  for (int k = 0; k < 6; k++) {
    double *truth;
    est_problem p;
    tu_truth_problem(e, "{\"type\":\"kernel_stations\"}", 0.5, 3, 40, 8, (uint64_t)k, &truth, &p);
    est_options o = {.n_samples = 100, .seed = 10 + k};
    est_result r;
    if (est_sample(e, &p, &o, &r, &err)) fail_msg("%s", err.msg);
    int no = p.op->n_obs;
    const double *xt = truth + 2 * 16;
    double ht[16], h[16], *cand = malloc(sizeof(double) * 300 * 16);
    obs_apply(p.op, xt, ht, 1);
    for (int s = 0; s < 100; s++) {
      obs_apply(p.op, r.samples + s * 16, h, 1);
      for (int i = 0; i < no; i++) post += (h[i] - ht[i]) * (h[i] - ht[i]) / (100.0 * no * 6);
      for (int i = 0; i < 16; i++) post_x += pow(r.samples[s * 16 + i] - xt[i], 2) / (100.0 * 16 * 6);
    }
    assert_int_equal(sim_sample_at(e->sim, cand, 300, 40, 10 + k, 0, &err), 0); /* the request's candidates */
    for (int m = 0; m < 300; m++) {
      obs_apply(p.op, cand + m * 16, h, 1);
      for (int i = 0; i < no; i++) prior += (h[i] - ht[i]) * (h[i] - ht[i]) / (300.0 * no * 6);
      for (int i = 0; i < 16; i++) prior_x += pow(cand[m * 16 + i] - xt[i], 2) / (300.0 * 16 * 6);
    }
    free(cand);
    est_result_free(&r);
    tu_problem_free(&p);
    free(truth);
  }
  print_message("nre: mean squared distance to the truth, observed %.3f (candidates %.3f, ratio %.2f); state %.3f (%.3f)\n",
                post, prior, post / prior, post_x, prior_x);
  assert_true(post < 0.5 * prior);
  assert_true(post_x < prior_x);
  est_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normalize_and_resample),
      cmocka_unit_test(test_training_beats_chance),
      cmocka_unit_test(test_estimator),
      cmocka_unit_test(test_weights_favour_compatible),
  };
  return cmocka_run_group_tests_name("nre", tests, NULL, NULL);
}
