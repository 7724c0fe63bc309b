#include "testutil.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "train/train.h"

json_t *tu_load_json(const char *path) {
  json_error_t je;
  json_t *j = json_load_file(path, 0, &je);
  if (!j) fail_msg("cannot load %s: %s (run tests from the repository root)", path, je.text);
  return j;
}

double *tu_doubles(const json_t *arr, size_t *n) {
  assert_true(json_is_array(arr));
  *n = json_array_size(arr);
  double *v = malloc(sizeof(double) * (*n ? *n : 1));
  for (size_t i = 0; i < *n; i++) v[i] = json_number_value(json_array_get(arr, i));
  return v;
}

double *tu_matrix(const json_t *arr, size_t *rows, size_t *cols) {
  assert_true(json_is_array(arr));
  *rows = json_array_size(arr);
  *cols = *rows ? json_array_size(json_array_get(arr, 0)) : 0;
  size_t total = *rows * *cols;
  double *v = malloc(sizeof(double) * (total ? total : 1));
  for (size_t i = 0; i < *rows; i++) {
    const json_t *row = json_array_get(arr, i);
    assert_int_equal(json_array_size(row), *cols);
    for (size_t j = 0; j < *cols; j++) v[i * *cols + j] = json_number_value(json_array_get(row, j));
  }
  return v;
}

double tu_max_scaled_err(const double *a, const double *b, size_t n, double atol, double rtol) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(a[i] - b[i]) / (atol + rtol * fabs(b[i]));
    if (!(e <= m)) m = e; /* NaN propagates as a failure */
  }
  return m;
}

const char *tu_tmpdir(void) {
  const char *d = getenv("SBIDA_TEST_TMP");
  if (!d) d = "build/test-tmp";
  mkdir("build", 0755);
  mkdir(d, 0755);
  return d;
}

double tu_train(json_t *cfg, const char *out) {
  train_opts o = {0};
  o.out = out;
  sb_error err = {0};
  if (train_model(cfg, &o, &err)) fail_msg("train: %s", err.msg);
  json_decref(cfg);
  double v = json_number_value(json_object_get(o.summary, "val_loss"));
  json_decref(o.summary);
  return v;
}

void tu_problem(estimator *e, const char *op_json, double noise, int W, long t, est_problem *p) {
  sb_error err = {0};
  obs_op *op;
  assert_int_equal(obs_from_string(&op, op_json, 1, 1, 16, &err), 0);
  obs_noise *nz = malloc(sizeof *nz);
  assert_int_equal(obs_noise_scalar(nz, noise, op->n_obs, &err), 0);
  double *y = malloc(sizeof(double) * (size_t)W * op->n_obs);
  for (int i = 0; i < W * op->n_obs; i++) y[i] = i % 5 == 0 ? NAN : 0.3 * (i % 7);
  *p = (est_problem){e->sim, op, nz, W, t, y};
}

void tu_problem_free(est_problem *p) {
  obs_free((obs_op *)p->op);
  obs_noise_free((obs_noise *)p->noise);
  free((obs_noise *)p->noise);
  free((double *)p->y);
}

int tu_sample(estimator *e, const char *op_json, double noise, int W, long t, const est_options *o, est_result *r) {
  sb_error err = {0};
  est_problem p;
  tu_problem(e, op_json, noise, W, t, &p);
  int rc = est_sample(e, &p, o, r, &err);
  if (rc) assert_true(strlen(err.msg) > 10);
  tu_problem_free(&p);
  return rc;
}
