/* test_etkf.c: the ETKF analysis against an independent numpy reference,
 * the eigen-solver it relies on, LETKF/PF sanity, and est_open. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "baselines/baselines.h"
#include "catalog/catalog.h"
#include "util/rng.h"
#include "util/symeig.h"

static json_t *load(const char *path) {
  json_error_t je;
  json_t *j = json_load_file(path, 0, &je);
  if (!j) fail_msg("cannot read %s (run tests from the repository root): %s", path, je.text);
  return j;
}

static void test_symeig_reconstructs(void **state) {
  (void)state;
  for (int n = 1; n <= 60; n += 7) {
    double *a = malloc(sizeof(double) * n * n), *v = malloc(sizeof(double) * n * n);
    double *w = malloc(sizeof(double) * n), *work = malloc(sizeof(double) * n);
    rng r;
    rng_init(&r, 7, (uint64_t)n);
    for (int i = 0; i < n; i++)
      for (int j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng_normal(&r);
    if (n > 3) a[1 * n + 2] = a[2 * n + 1] = 0.0; /* some structure */
    memcpy(v, a, sizeof(double) * n * n);
    sb_error err;
    assert_int_equal(symeig(v, w, work, n, &err), 0);
    for (int i = 1; i < n; i++) assert_true(w[i - 1] <= w[i]);
    double maxerr = 0, maxorth = 0;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) {
        double s = 0, o = 0;
        for (int m = 0; m < n; m++) {
          s += v[i * n + m] * w[m] * v[j * n + m];
          o += v[m * n + i] * v[m * n + j];
        }
        maxerr = fmax(maxerr, fabs(s - a[i * n + j]));
        maxorth = fmax(maxorth, fabs(o - (i == j)));
      }
    assert_true(maxerr < 1e-12 * n * 10);
    assert_true(maxorth < 1e-12 * n * 10);
    free(a);
    free(v);
    free(w);
    free(work);
  }
}

static void test_etkf_matches_reference(void **state) {
  (void)state;
  json_t *j = load("tests/data/reference/etkf_analysis.json");
  json_t *prior = json_object_get(j, "prior_ensemble"), *post = json_object_get(j, "analysis_ensemble");
  json_t *idx = json_object_get(j, "observed_indices"), *yj = json_object_get(j, "observation");
  int K = (int)json_array_size(prior), n = (int)json_array_size(json_array_get(prior, 0));
  int p = (int)json_array_size(idx);
  double *X = malloc(sizeof(double) * K * n), y[64], std[64];
  for (int i = 0; i < K; i++)
    for (int c = 0; c < n; c++) X[i * n + c] = json_number_value(json_array_get(json_array_get(prior, i), c));
  json_t *opj = json_pack("{s:s, s:O}", "type", "stations", "indices", idx);
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_json(&op, opj, 1, 1, n, &err), 0);
  double sd = sqrt(json_number_value(json_object_get(j, "noise_variance")));
  for (int k = 0; k < p; k++) {
    y[k] = json_number_value(json_array_get(yj, k));
    std[k] = sd;
  }
  assert_int_equal(etkf_analysis(X, K, n, op, y, std, json_number_value(json_object_get(j, "inflation")), 0.0, &err),
                   0);
  double maxd = 0;
  for (int i = 0; i < K; i++)
    for (int c = 0; c < n; c++)
      maxd = fmax(maxd, fabs(X[i * n + c] - json_number_value(json_array_get(json_array_get(post, i), c))));
  print_message("ETKF vs reference: max |diff| = %.3g\n", maxd);
  assert_true(maxd < 1e-9);
  /* the ensemble-space transform (used when observations >= members) too */
  double *X1 = malloc(sizeof(double) * K * n);
  for (int i = 0; i < K; i++)
    for (int c = 0; c < n; c++) X1[i * n + c] = json_number_value(json_array_get(json_array_get(prior, i), c));
  etkf_path_override = 1;
  assert_int_equal(etkf_analysis(X1, K, n, op, y, std, json_number_value(json_object_get(j, "inflation")), 0.0, &err),
                   0);
  etkf_path_override = 0;
  for (int i = 0; i < K * n; i++) assert_true(fabs(X1[i] - X[i]) < 1e-11);
  free(X1);
  json_t *am = json_object_get(j, "analysis_mean");
  for (int c = 0; c < n; c++) {
    double m = 0;
    for (int i = 0; i < K; i++) m += X[i * n + c];
    assert_true(fabs(m / K - json_number_value(json_array_get(am, c))) < 1e-9);
  }

  /* NaN rows are dropped: same answer with an extra missing station */
  double *X2 = malloc(sizeof(double) * K * n);
  for (int i = 0; i < K; i++)
    for (int c = 0; c < n; c++) X2[i * n + c] = json_number_value(json_array_get(json_array_get(prior, i), c));
  json_t *idx2 = json_deep_copy(idx);
  json_array_append_new(idx2, json_integer(7));
  json_t *opj2 = json_pack("{s:s, s:o}", "type", "stations", "indices", idx2);
  obs_op *op2;
  assert_int_equal(obs_from_json(&op2, opj2, 1, 1, n, &err), 0);
  y[p] = NAN;
  std[p] = sd;
  assert_int_equal(etkf_analysis(X2, K, n, op2, y, std, 1.1, 0.0, &err), 0);
  for (int i = 0; i < K * n; i++) assert_true(fabs(X2[i] - X[i]) < 1e-12);
  /* an all-missing observation leaves the ensemble alone */
  for (int k = 0; k <= p; k++) y[k] = NAN;
  assert_int_equal(etkf_analysis(X2, K, n, op2, y, std, 1.1, 0.0, &err), 0);
  for (int i = 0; i < K * n; i++) assert_true(X2[i] == X[i]);

  /* LETKF with a radius covering everything and a flat taper equals ETKF
   * only approximately (the taper is not flat), but a huge radius makes the
   * taper ~1: check it is close */
  for (int i = 0; i < K; i++)
    for (int c = 0; c < n; c++) X2[i * n + c] = json_number_value(json_array_get(json_array_get(prior, i), c));
  for (int k = 0; k < p; k++) y[k] = json_number_value(json_array_get(yj, k));
  assert_int_equal(etkf_analysis(X2, K, n, op, y, std, 1.1, 1e6, &err), 0);
  for (int i = 0; i < K * n; i++) assert_true(fabs(X2[i] - X[i]) < 1e-6);

  free(X);
  free(X2);
  obs_free(op);
  obs_free(op2);
  json_decref(opj);
  json_decref(opj2);
  json_decref(j);
}

/* Both transforms give the same analysis (global and local), with fewer
 * observations than members (the only case where they differ). */
static void test_transform_paths_agree(void **state) {
  (void)state;
  sb_error err;
  int n = 12;
  obs_op *op;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"identity\"}", 1, 1, n, &err), 0);
  int Ks[2] = {13, 30};
  for (int k = 0; k < 2; k++)
    for (int loc = 0; loc < 2; loc++) {
      int K = Ks[k];
      double *X[3], y[12], sd[12];
      rng r;
      rng_init(&r, 11, (uint64_t)K);
      for (int p = 0; p < 3; p++) X[p] = malloc(sizeof(double) * K * n);
      for (int i = 0; i < K * n; i++) X[0][i] = X[1][i] = X[2][i] = 2.0 * rng_normal(&r) + (i % n);
      for (int c = 0; c < n; c++) {
        y[c] = c + rng_normal(&r);
        sd[c] = 0.5 + 0.1 * c;
      }
      y[3] = NAN;
      for (int p = 1; p <= 2; p++) {
        etkf_path_override = p == 1 ? 1 : 0; /* ensemble space, then automatic */
        assert_int_equal(etkf_analysis(X[p], K, n, op, y, sd, 1.05, loc ? 4.0 : 0.0, &err), 0);
      }
      etkf_path_override = 0;
      double md = 0;
      for (int i = 0; i < K * n; i++) md = fmax(md, fabs(X[1][i] - X[2][i]));
      assert_true(md < 1e-10);
      assert_true(fabs(X[1][0] - X[0][0]) > 1e-6); /* something happened */
      for (int p = 0; p < 3; p++) free(X[p]);
    }
  obs_free(op);
}

static void test_gaspari_cohn(void **state) {
  (void)state;
  assert_true(fabs(gaspari_cohn(0) - 1) < 1e-15);
  assert_true(gaspari_cohn(2.0) == 0.0 && gaspari_cohn(3.0) == 0.0);
  assert_true(fabs(gaspari_cohn(1.0 - 1e-9) - gaspari_cohn(1.0 + 1e-9)) < 1e-7); /* continuous at 1 */
  assert_true(fabs(gaspari_cohn(1.0) - 5.0 / 24.0) < 1e-12);
  for (double r = 0; r < 2; r += 0.01) assert_true(gaspari_cohn(r) >= gaspari_cohn(r + 0.01) - 1e-15);
}

static void test_est_open(void **state) {
  (void)state;
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, "etkf", "l96-sakov", 0, &err), 0);
  assert_string_equal(e->name, "l96-sakov-etkf");
  assert_string_equal(e->kind, "etkf");
  est_free(e);
  assert_int_equal(est_open(&e, "letkf", "l96-thesis", 16, &err), 0);
  assert_string_equal(e->name, "l96-thesis-letkf");
  est_free(e);
  assert_int_equal(est_open(&e, "pf", "l96-sakov", 0, &err), 0);
  assert_string_equal(e->name, "l96-sakov-pf");
  est_free(e);
  assert_int_equal(est_open(&e, "models/absent.safetensors", "l96-sakov", 0, &err), SB_EIO);
  assert_non_null(strstr(err.msg, "absent.safetensors"));
  assert_int_equal(est_open(&e, "enkf", "l96-sakov", 0, &err), SB_EINVAL);
  assert_int_equal(est_open(&e, "etkf", "nope", 0, &err), SB_EINVAL);
  assert_null(e);
}

/* Runs one estimator on a thesis-preset window and checks the filter beats
 * the prior; exercises window output, params and bad params. */
static void run_small(const char *spec, const char *params, double max_rmse) {
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, spec, "l96-thesis", 16, &err), 0);
  int n = 16, W = 5;
  long t = 40;
  double truth[16 * 5];
  assert_int_equal(sim_sample_at(e->sim, truth, 1, t - W + 1, 99, 0, &err), 0);
  for (int w = 1; w < W; w++) {
    memcpy(truth + w * n, truth + (w - 1) * n, sizeof(double) * n);
    assert_int_equal(e->sim->advance(e->sim, truth + w * n, 1, 1, &err), 0);
  }
  obs_op *op;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"identity\"}", 1, 1, n, &err), 0);
  obs_noise nz;
  assert_int_equal(obs_noise_scalar(&nz, 0.5, n, &err), 0);
  double y[16 * 5];
  memcpy(y, truth, sizeof y);
  obs_add_noise(&nz, y, W, 5, 0);
  y[2 * n + 3] = NAN; /* one missing value */
  for (int i = 0; i < n; i++) y[1 * n + i] = NAN; /* a missing time */
  est_problem p = {.sim = e->sim, .op = op, .noise = &nz, .window = W, .time_index = t, .y = y};
  json_error_t je;
  json_t *pj = json_loads(params, 0, &je);
  est_options o = {.n_samples = 64, .seed = 3, .want_window = 1, .params = pj};
  est_result r;
  int rc = est_sample(e, &p, &o, &r, &err);
  if (rc) fail_msg("%s: %s", spec, err.msg);
  assert_non_null(r.window_samples);
  double se = 0;
  for (int i = 0; i < n; i++) {
    double m = 0;
    for (int s = 0; s < 64; s++) m += r.samples[s * n + i];
    m /= 64;
    se += (m - truth[(W - 1) * n + i]) * (m - truth[(W - 1) * n + i]);
    /* last window state equals x_t */
    assert_true(r.window_samples[((size_t)5 * W + W - 1) * n + i] == r.samples[5 * n + i]);
  }
  print_message("%s rmse %.3f\n", spec, sqrt(se / n));
  assert_true(sqrt(se / n) < max_rmse);
  est_result_free(&r);
  json_t *bad = json_pack("{s:i}", "no_such_param", 1);
  o.params = bad;
  assert_int_equal(est_sample(e, &p, &o, &r, &err), SB_EINVAL);
  json_decref(bad);
  json_decref(pj);
  obs_noise_free(&nz);
  obs_free(op);
  est_free(e);
}

static void test_baselines_small(void **state) {
  (void)state;
  run_small("etkf", "{\"inflation\":1.05}", 0.5);
  run_small("etkf", "{\"ensemble_size\":32}", 0.6);
  run_small("letkf", "{\"radius\":6}", 0.6);
  run_small("pf", "{\"particles\":2000,\"jitter\":0.1}", 2.0); /* 16-D bootstrap PF: weak but better than the prior (~3.5) */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_symeig_reconstructs),
      cmocka_unit_test(test_etkf_matches_reference),
      cmocka_unit_test(test_transform_paths_agree),
      cmocka_unit_test(test_gaspari_cohn),
      cmocka_unit_test(test_est_open),
      cmocka_unit_test(test_baselines_small),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
