/* Score-based estimators: a short training run whose validation loss drops,
 * the model file round trip, and sampling through the estimator interface
 * (shapes, determinism, operator checks). The sampler's accuracy on an exact
 * Gaussian posterior is tested in test_diff.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kinds/kinds.h"
#include "model/model.h"
#include "train/train.h"
#include "testutil.h"

static json_t *tiny_config(const char *kind, long steps) {
  json_t *c = json_pack("{s:s, s:s, s:i, s:i, s:{s:i, s:i, s:i, s:i}, s:{s:I, s:i, s:f, s:i, s:i, s:i, s:i, s:f, s:i}, s:{s:i}}",
                        "kind", kind, "preset", "l96-thesis", "N", 16, "window", 3, "arch", "width", 16, "blocks", 1,
                        "groups", 4, "emb_dim", 8, "train", "steps", (json_int_t)steps, "batch", 32, "lr", 3e-3,
                        "warmup", 5, "pool", 16, "refresh", 1, "val_windows", 64, "ema", 0.8, "val_every", 1000,
                        "sampler", "steps", 8);
  if (!strcmp(kind, "posterior-score")) {
    json_object_set_new(c, "operator", json_pack("{s:s}", "type", "kernel_stations"));
    json_object_set_new(c, "noise_std", json_real(0.5));
    json_object_set_new(json_object_get(c, "train"), "missing_entry", json_real(0.1));
  }
  return c;
}

static double train_tiny(const char *kind, long steps, const char *out) {
  return tu_train(tiny_config(kind, steps), out);
}

static char path_buf[2][512];

static void test_training_reduces_validation_loss(void **state) {
  (void)state;
  snprintf(path_buf[0], 512, "%s/tiny-composed.safetensors", tu_tmpdir());
  snprintf(path_buf[1], 512, "%s/tiny-posterior.safetensors", tu_tmpdir());
  double v0 = train_tiny("composed-score", 1, path_buf[0]);
  double v1 = train_tiny("composed-score", 200, path_buf[0]);
  print_message("composed: val loss %.4f after 1 step, %.4f after 200\n", v0, v1);
  assert_true(isfinite(v1) && v1 < 0.8 * v0);
  double p0 = train_tiny("posterior-score", 1, path_buf[1]);
  double p1 = train_tiny("posterior-score", 200, path_buf[1]);
  print_message("posterior: val loss %.4f after 1 step, %.4f after 200\n", p0, p1);
  assert_true(isfinite(p1) && p1 < 0.8 * p0);
}

static void test_model_file_roundtrip(void **state) {
  (void)state;
  model a, b;
  sb_error err;
  assert_int_equal(model_load(&a, path_buf[1], &err), 0);
  assert_string_equal(a.kind->name, "posterior-score");
  assert_int_equal(a.W, 3);
  assert_int_equal(a.N, 16);
  assert_true(a.time_varying);
  assert_non_null(a.op);
  assert_int_equal(a.op->kind, OBS_KERNEL_STATIONS);
  assert_true(fabs(a.noise.std[0] - 0.5) < 1e-12);
  assert_int_equal(a.sampler.steps, 8);
  assert_non_null(a.training);
  char again[600];
  snprintf(again, sizeof again, "%s/again.safetensors", tu_tmpdir());
  assert_int_equal(model_save(&a, 0, again, &err), 0);
  assert_int_equal(model_load(&b, again, &err), 0);
  assert_int_equal(a.net.n_params, b.net.n_params);
  assert_memory_equal(a.net.params, b.net.params, sizeof(float) * a.net.n_params);
  assert_memory_equal(a.mean, b.mean, sizeof(double) * a.N);
  assert_memory_equal(a.std, b.std, sizeof(double) * a.N);
  assert_memory_equal(a.op->idx, b.op->idx, sizeof(int) * a.op->n_idx);
  model_free(&a);
  model_free(&b);
  /* a file that is not a score model */
  assert_int_not_equal(model_load(&a, "tests/data/numpy/f32_2x3.npy", &err), 0);
}

static int n_threads = 1;

static void sample_problem(estimator *e, const char *op_json, double noise, int want_window, uint64_t seed,
                           est_result *r, int expect_rc) {
  est_options o = {.n_samples = 70, .seed = seed, .want_window = want_window, .threads = n_threads};
  int rc = tu_sample(e, op_json, noise, 3, 200, &o, r);
  if (rc != expect_rc) fail_msg("sample: rc %d, expected %d", rc, expect_rc);
}

static void test_estimators_sample(void **state) {
  (void)state;
  estimator *c, *p;
  sb_error err;
  assert_int_equal(model_open_estimator(&c, path_buf[0], &err), 0);
  assert_string_equal(c->name, "tiny-composed");
  assert_string_equal(c->kind, "composed-score");
  assert_null(c->fixed_op);
  est_result r1, r2;
  /* composed: any operator, whole window on request, deterministic per seed */
  sample_problem(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 1, 5, &r1, 0);
  assert_int_equal(r1.n_samples, 70);
  assert_int_equal(r1.dim, 16);
  assert_non_null(r1.window_samples);
  for (int i = 0; i < 70 * 16; i++) assert_true(isfinite(r1.samples[i]));
  /* x_t equals the window's last state */
  assert_memory_equal(r1.samples + 16, r1.window_samples + (1 * 3 + 2) * 16, sizeof(double) * 16);
  sample_problem(c, "{\"type\":\"identity\"}", 0.3, 0, 5, &r2, 0);
  assert_null(r2.window_samples);
  est_result_free(&r2);
  sample_problem(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 1, 5, &r2, 0);
  assert_memory_equal(r1.samples, r2.samples, sizeof(double) * 70 * 16);
  est_result_free(&r2);
  /* the same samples on 3 threads */
  n_threads = 3;
  sample_problem(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 1, 5, &r2, 0);
  n_threads = 1;
  assert_memory_equal(r1.samples, r2.samples, sizeof(double) * 70 * 16);
  est_result_free(&r2);
  est_result_free(&r1);
  est_free(c);

  assert_int_equal(model_open_estimator(&p, path_buf[1], &err), 0);
  assert_non_null(p->fixed_op);
  assert_false(p->has_window);
  sample_problem(p, "{\"type\":\"kernel_stations\"}", 0.5, 0, 1, &r1, 0);
  est_result_free(&r1);
  /* trained for one operator and noise: others are refused with a reason */
  sample_problem(p, "{\"type\":\"identity\"}", 0.5, 0, 1, &r1, SB_EINVAL);
  sample_problem(p, "{\"type\":\"kernel_stations\"}", 1.0, 0, 1, &r1, SB_EINVAL);
  sample_problem(p, "{\"type\":\"kernel_stations\"}", 0.5, 1, 1, &r1, SB_ENOTSUP);
  est_free(p);
  assert_int_not_equal(model_open_estimator(&p, "/nonexistent.safetensors", &err), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_training_reduces_validation_loss),
      cmocka_unit_test(test_model_file_roundtrip),
      cmocka_unit_test(test_estimators_sample),
  };
  return cmocka_run_group_tests_name("score", tests, NULL, NULL);
}
