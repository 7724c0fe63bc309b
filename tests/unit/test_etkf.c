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
#include "testutil.h"

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
  /* Gaspari & Cohn (1999) eq. 4.10 evaluated in exact rational arithmetic
   * (python3 fractions.Fraction, see the report of issue 19): r, value. The
   * tolerance 1e-14 is rounding of a degree-5 polynomial of O(1) terms. */
  static const double known[][2] = {{0.25, 11149.0 / 12288.0}, {0.5, 263.0 / 384.0},   {0.75, 1741.0 / 4096.0},
                                    {1.25, 1539.0 / 20480.0},  {1.5, 19.0 / 1152.0},    {1.75, 97.0 / 86016.0},
                                    {1.99, 74401.0 / 23880000000000.0}};
  for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
    assert_true(fabs(gaspari_cohn(known[k][0]) - known[k][1]) < 1e-14);
    assert_true(fabs(gaspari_cohn(-known[k][0]) - known[k][1]) < 1e-14); /* a distance: symmetric */
  }
  assert_true(gaspari_cohn(2.5) == 0.0 && gaspari_cohn(-2.0) == 0.0);
}

// ----------------------------------------------------------------------------
// Exact answers for a linear-Gaussian analysis. An ensemble built to have
// exactly the prior mean m and covariance P (tu_exact_ensemble) makes the
// ETKF analysis mean and sample covariance equal the Kalman filter's
//   S = H P H^T + R,  G = P H^T S^-1,  ma = m + G (y - H m),  Pa = P - G H P
// to rounding (Hunt et al. 2007, section 2; the symmetric square root keeps
// the analysis mean exactly). Multiplicative inflation lambda of the anomalies
// is the same with P replaced by lambda^2 P. The Kalman side is textbook
// dense algebra in testutil.c, independent of est_etkf.c.

/* Kalman analysis of N(m, P) [n] by y [p] (NaN = not observed) through the
 * dense H [p][n] with noise std [p] (std = INFINITY drops a row too). */
static void kalman(const double *m, const double *P, int n, const double *H, const double *y, const double *std, int p,
                   double *ma, double *Pa) {
  int q = 0, rows[64];
  for (int k = 0; k < p; k++)
    if (!isnan(y[k]) && isfinite(std[k])) rows[q++] = k;
  memcpy(ma, m, sizeof(double) * n);
  memcpy(Pa, P, sizeof(double) * n * n);
  if (!q) return;
  double *Hq = calloc((size_t)q * n, sizeof(double)), *PHt = malloc(sizeof(double) * n * q), *S = malloc(sizeof(double) * q * q),
         *G = malloc(sizeof(double) * n * q), *d = malloc(sizeof(double) * q), *GHP = malloc(sizeof(double) * n * n);
  for (int a = 0; a < q; a++) memcpy(Hq + a * n, H + rows[a] * n, sizeof(double) * n);
  tu_matmul(P, Hq, PHt, n, n, q, 0, 1);
  tu_matmul(Hq, PHt, S, q, n, q, 0, 0);
  for (int a = 0; a < q; a++) S[a * q + a] += std[rows[a]] * std[rows[a]];
  tu_spd_inverse(S, q);
  tu_matmul(PHt, S, G, n, q, q, 0, 0);
  for (int a = 0; a < q; a++) {
    d[a] = y[rows[a]];
    for (int c = 0; c < n; c++) d[a] -= Hq[a * n + c] * m[c];
  }
  for (int c = 0; c < n; c++)
    for (int a = 0; a < q; a++) ma[c] += G[c * q + a] * d[a];
  tu_matmul(G, PHt, GHP, n, q, n, 0, 1); /* G (P H^T)^T = G H P */
  for (int i = 0; i < n * n; i++) Pa[i] -= GHP[i];
  free(Hq), free(PHt), free(S), free(G), free(d), free(GHP);
}

/* A fixed SPD prior covariance: B B^T + 0.5 I with B [n][n] from a seed. */
static void prior_cov(double *P, int n, uint64_t seed) {
  double *B = malloc(sizeof(double) * n * n);
  rng r;
  rng_init(&r, seed, 1);
  for (int i = 0; i < n * n; i++) B[i] = rng_normal(&r);
  tu_matmul(B, B, P, n, n, n, 0, 1);
  for (int i = 0; i < n; i++) P[i * n + i] += 0.5;
  free(B);
}

static double max_abs_diff(const double *a, const double *b, int n) {
  double m = 0;
  for (int i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
  return isnan(m) ? INFINITY : m;
}

/* The global ETKF equals the Kalman filter on a linear-Gaussian analysis, on
 * both transform paths, with a missing value and with inflation. Tolerance
 * 1e-9: values are O(1..10) and every step is a well conditioned O(n^3)
 * double computation (measured errors ~1e-13); a wrong innovation sign, a
 * wrong R^-1, "return y", or no analysis at all are off by O(0.1..10). */
static void test_etkf_equals_kalman(void **state) {
  (void)state;
  enum { n = 6, p = 4 };
  const double H[p * n] = {1, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 1, -1, 0, 0.2, 0, 0, 0, 0, 1.3};
  const double std[p] = {0.5, 1.0, 0.8, 2.0}, m[n] = {1.0, -2.0, 0.5, 3.0, 0.0, -1.0};
  double P[n * n], y[p] = {2.5, -0.3, 1.0, 4.0};
  prior_cov(P, n, 5);
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"dense\",\"matrix\":[[1,0,0,0,0,0],[0,0.5,0.5,0,0,0],"
                                        "[0,0,0,1,-1,0],[0.2,0,0,0,0,1.3]]}", 1, 1, n, &err), 0);
  const int Ks[3] = {7, 40, 3}; /* q < K (both paths), q > K (K = 3: ensemble space, rank-deficient) */
  for (int kk = 0; kk < 3; kk++)
    for (int path = 0; path < 2; path++)
      for (int variant = 0; variant < 3; variant++) {
        int K = Ks[kk];
        double infl = variant == 2 ? 1.3 : 1.0, yy[p];
        memcpy(yy, y, sizeof yy);
        if (variant == 1) yy[2] = NAN;
        double *X = malloc(sizeof(double) * K * n), mean[n], cov[n * n], ma[n], Pa[n * n], Pi[n * n];
        /* K = 3 < n + 1 cannot have a full-rank covariance: use a rank-2 prior,
         * exactly representable, which the Kalman formulas handle the same */
        double Pk[n * n];
        if (K <= n) {
          double B[n * 2];
          rng r;
          rng_init(&r, 9, 2);
          for (int i = 0; i < n * 2; i++) B[i] = rng_normal(&r);
          tu_matmul(B, B, Pk, n, 2, n, 0, 1);
          /* members m +- combinations of the two columns with exact moments */
          double Z[3][2] = {{1, 0}, {-0.5, sqrt(3) / 2}, {-0.5, -sqrt(3) / 2}}; /* mean 0, Z^T Z / 2 = 0.75 I */
          for (int i = 0; i < K; i++)
            for (int c = 0; c < n; c++)
              X[i * n + c] = m[c] + (B[c * 2] * Z[i][0] + B[c * 2 + 1] * Z[i][1]) / sqrt(0.75);
        } else {
          memcpy(Pk, P, sizeof Pk);
          tu_exact_ensemble(X, K, n, m, Pk, 77, (uint64_t)K);
        }
        tu_ensemble_moments(X, K, n, mean, cov);
        assert_true(max_abs_diff(mean, m, n) < 1e-12 && max_abs_diff(cov, Pk, n * n) < 1e-10); /* the construction */
        for (int i = 0; i < n * n; i++) Pi[i] = infl * infl * Pk[i];
        kalman(m, Pi, n, H, yy, std, p, ma, Pa);
        etkf_path_override = path;
        assert_int_equal(etkf_analysis(X, K, n, op, yy, std, infl, 0.0, &err), 0);
        etkf_path_override = 0;
        tu_ensemble_moments(X, K, n, mean, cov);
        double em = max_abs_diff(mean, ma, n), ec = max_abs_diff(cov, Pa, n * n);
        if (em > 1e-9 || ec > 1e-9)
          fail_msg("K %d path %d variant %d: |mean - kalman| %.3g, |cov - kalman| %.3g", K, path, variant, em, ec);
        /* the analysis moved: not the prior, not the observations */
        assert_true(max_abs_diff(ma, m, n) > 0.1);
        free(X);
      }
  obs_free(op);
}

/* A background replaces the climatological prior: on a linear-Gaussian
 * analysis (W = 1, no forecast), an ETKF/LETKF call whose background is an
 * ensemble of K members with exact moments (m, P) returns the Kalman
 * analysis of N(m, P) (tolerance 1e-9 as above); LETKF with radius 1e6
 * (taper 1 - O(1e-11)) equals it too. A mean+std background with K = 4000
 * draws gives the Kalman analysis of N(m, diag(std^2)) within sampling
 * error: mean within 0.15 (the draws' mean is off by up to 4 std/sqrt(K) =
 * 0.13 for std 2, and their covariance by ~2%, which times innovations up to
 * 5 moves the analysis by ~0.1; measured 0.09) and variances within 10%
 * (relative se sqrt(2/K) = 2.2%). Ignoring the background (the l96
 * climatology, mean ~2, var ~13) misses the mean by > 1. */
static void test_etkf_background_equals_kalman(void **state) {
  (void)state;
  enum { n = 6, p = 4, K = 9 };
  const double H[p * n] = {1, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 1, -1, 0, 0.2, 0, 0, 0, 0, 1.3};
  const double std[p] = {0.5, 1.0, 0.8, 2.0}, m[n] = {1.0, -2.0, 0.5, 3.0, 0.0, -1.0};
  double P[n * n], y[p] = {2.5, -0.3, 1.0, 4.0}, ma[n], Pa[n * n], mean[n], cov[n * n];
  prior_cov(P, n, 11);
  sb_error err;
  obs_op *op;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"dense\",\"matrix\":[[1,0,0,0,0,0],[0,0.5,0.5,0,0,0],"
                                        "[0,0,0,1,-1,0],[0.2,0,0,0,0,1.3]]}", 1, 1, n, &err), 0);
  obs_noise nz;
  assert_int_equal(obs_noise_scalar(&nz, 1.0, p, &err), 0);
  memcpy(nz.std, std, sizeof std);
  double Xb[K * n];
  tu_exact_ensemble(Xb, K, n, m, P, 31, 1);
  est_background bg = {.n_members = K, .members = Xb};
  est_problem pr = {.op = op, .noise = &nz, .window = 1, .time_index = 0, .y = y, .background = &bg};
  kalman(m, P, n, H, y, std, p, ma, Pa);
  const char *kinds[2] = {"etkf", "letkf"};
  json_t *pj = json_pack("{s:f,s:f}", "inflation", 1.0, "radius", 1e6), *pe = json_pack("{s:f}", "inflation", 1.0);
  for (int k = 0; k < 2; k++) {
    estimator *e;
    assert_int_equal(est_open(&e, kinds[k], "l96-sakov", n, &err), 0);
    assert_true(e->accepts_background);
    pr.sim = e->sim;
    est_options o = {.n_samples = K, .seed = 4, .params = k ? pj : pe};
    est_result r;
    if (est_sample(e, &pr, &o, &r, &err)) fail_msg("%s: %s", kinds[k], err.msg);
    tu_ensemble_moments(r.samples, K, n, mean, cov);
    double em = max_abs_diff(mean, ma, n), ec = max_abs_diff(cov, Pa, n * n);
    print_message("%s with an exact ensemble background: |mean - kalman| %.2g, |cov - kalman| %.2g\n", kinds[k], em, ec);
    assert_true(em < 1e-9 && ec < 1e-9);
    assert_string_equal(json_string_value(json_object_get(r.diagnostics, "prior")), "background");
    est_result_free(&r);
    est_free(e);
  }
  /* mean + std background, many draws */
  double sd[n] = {0.7, 1.5, 0.4, 2.0, 1.0, 0.9}, Pd[n * n];
  memset(Pd, 0, sizeof Pd);
  for (int c = 0; c < n; c++) Pd[c * n + c] = sd[c] * sd[c];
  est_background bd = {.mean = m, .std = sd};
  pr.background = &bd;
  kalman(m, Pd, n, H, y, std, p, ma, Pa);
  estimator *e;
  assert_int_equal(est_open(&e, "etkf", "l96-sakov", n, &err), 0);
  pr.sim = e->sim;
  est_options o = {.n_samples = 4000, .seed = 5, .params = pe};
  est_result r;
  assert_int_equal(est_sample(e, &pr, &o, &r, &err), 0);
  double *cv = malloc(sizeof(double) * n * n);
  tu_ensemble_moments(r.samples, 4000, n, mean, cv);
  double em = max_abs_diff(mean, ma, n), vr = 0;
  for (int c = 0; c < n; c++) vr = fmax(vr, fabs(cv[c * n + c] / Pa[c * n + c] - 1));
  print_message("etkf with a mean+std background, 4000 members: |mean - kalman| %.3f, max relative var error %.3f\n", em, vr);
  assert_true(em < 0.15 && vr < 0.1);
  est_result_free(&r);
  /* a background member count other than K: K draws in its subspace */
  pr.background = &bg;
  assert_int_equal(est_sample(e, &pr, &o, &r, &err), 0);
  kalman(m, P, n, H, y, std, p, ma, Pa);
  tu_ensemble_moments(r.samples, 4000, n, mean, cv);
  em = max_abs_diff(mean, ma, n);
  vr = 0;
  for (int c = 0; c < n; c++) vr = fmax(vr, fabs(cv[c * n + c] / Pa[c * n + c] - 1));
  print_message("etkf with 4000 draws from a 9-member background: |mean - kalman| %.3f, max relative var error %.3f\n", em, vr);
  assert_true(em < 0.15 && vr < 0.1);
  est_result_free(&r);
  free(cv);
  est_free(e);
  json_decref(pj);
  json_decref(pe);
  obs_noise_free(&nz);
  obs_free(op);
}

/* Periodic distance between nodes a and b on a ring of w. */
static int ring_dist(int a, int b, int w) {
  int d = abs(a - b);
  return w - d < d ? w - d : d;
}

/* Gaspari & Cohn (1999) eq. 4.10, written out again here so the LETKF check
 * does not trust est_etkf.c's copy (its values are pinned in test_gaspari_cohn). */
static double gc_ref(double r) {
  if (r >= 2) return 0;
  if (r <= 1) return ((((-0.25 * r + 0.5) * r + 0.625) * r - 5.0 / 3.0) * r) * r + 1;
  return ((((r / 12.0 - 0.5) * r + 0.625) * r + 5.0 / 3.0) * r - 5.0) * r + 4.0 - 2.0 / (3.0 * r);
}

/* LETKF: node g's analysis is the global ETKF with each observation's R^-1
 * multiplied by its taper GC(dist / (radius / 2)) (observations at distance
 * >= radius dropped), taken at column g. The reference runs the global ETKF
 * (checked against Kalman above) with std / sqrt(taper) per node, and the
 * Kalman filter with that R gives the per-node mean and variance. A flat
 * taper (weight 1 inside the radius) changes std by factors up to
 * 1/sqrt(GC(1.5)) ~ 7.8 and the analysis by O(0.1); tolerance 1e-9 as above.
 * With a radius covering everything many times over (taper 1 - O(1e-10)) the
 * LETKF equals the global ETKF/Kalman to 1e-7. */
static void test_letkf_equals_tapered_kalman(void **state) {
  (void)state;
  enum { n = 12, K = 30, p = 8 };
  const int st[p] = {0, 2, 3, 5, 7, 8, 10, 11};
  double P[n * n], m[n], std[p], y[p], H[p * n] = {0};
  prior_cov(P, n, 6);
  for (int c = 0; c < n; c++) m[c] = 0.3 * c - 1.0;
  for (int k = 0; k < p; k++) {
    std[k] = 0.5 + 0.1 * k;
    y[k] = m[st[k]] + (k % 2 ? 1.5 : -1.0);
    H[k * n + st[k]] = 1;
  }
  y[4] = NAN;
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"stations\",\"indices\":[0,2,3,5,7,8,10,11]}", 1, 1, n, &err), 0);
  double *X0 = malloc(sizeof(double) * K * n), *XL = malloc(sizeof(double) * K * n), *XG = malloc(sizeof(double) * K * n);
  tu_exact_ensemble(X0, K, n, m, P, 78, 0);
  const double radii[2] = {4.0, 1e6};
  for (int ri = 0; ri < 2; ri++) {
    double radius = radii[ri];
    for (int path = 0; path < 2; path++) {
      memcpy(XL, X0, sizeof(double) * K * n);
      etkf_path_override = path;
      assert_int_equal(etkf_analysis(XL, K, n, op, y, std, 1.0, radius, &err), 0);
      etkf_path_override = 0;
      double worst_col = 0, worst_mean = 0, worst_var = 0, moved = 0;
      for (int g = 0; g < n; g++) {
        double sl[p], yl[p], ma[n], Pa[n * n];
        for (int k = 0; k < p; k++) {
          int dd = ring_dist(st[k], g, n);
          double taper = dd < radius ? gc_ref(dd / (radius / 2)) : 0.0;
          sl[k] = taper > 0 ? std[k] / sqrt(taper) : INFINITY;
          yl[k] = taper > 0 ? y[k] : NAN;
        }
        memcpy(XG, X0, sizeof(double) * K * n);
        assert_int_equal(etkf_analysis(XG, K, n, op, yl, sl, 1.0, 0.0, &err), 0);
        kalman(m, P, n, H, yl, sl, p, ma, Pa);
        double mg = 0, vg = 0;
        for (int i = 0; i < K; i++) {
          worst_col = fmax(worst_col, fabs(XL[i * n + g] - XG[i * n + g]));
          mg += XL[i * n + g] / K;
        }
        for (int i = 0; i < K; i++) vg += (XL[i * n + g] - mg) * (XL[i * n + g] - mg) / (K - 1);
        worst_mean = fmax(worst_mean, fabs(mg - ma[g]));
        worst_var = fmax(worst_var, fabs(vg - Pa[g * n + g]));
        moved = fmax(moved, fabs(mg - m[g]));
      }
      print_message("letkf radius %g path %d: max |member - tapered etkf| %.2g, |mean - kalman| %.2g, |var - kalman| %.2g\n",
                    radius, path, worst_col, worst_mean, worst_var);
      double tol = radius > 100 ? 1e-7 : 1e-9;
      assert_true(worst_col < tol && worst_mean < tol && worst_var < tol);
      assert_true(moved > 0.1);
    }
  }
  /* radius covering everything: equals the global ETKF member by member */
  memcpy(XG, X0, sizeof(double) * K * n);
  assert_int_equal(etkf_analysis(XG, K, n, op, y, std, 1.0, 0.0, &err), 0);
  assert_true(max_abs_diff(XL, XG, K * n) < 1e-7);
  free(X0), free(XL), free(XG);
  obs_free(op);
}

/* Distance on the periodic H x W grid, written out independently of obs.c. */
static double torus_dist(double r1, double c1, double r2, double c2, int H, int W) {
  double dh = fmod(fabs(r1 - r2), H), dw = fmod(fabs(c1 - c2), W);
  if (dh > H / 2.0) dh = H - dh;
  if (dw > W / 2.0) dw = W - dw;
  return hypot(dh, dw);
}

/* obs.h's locations and torus distance: both velocity components of a grid
 * point share its location, a coarsen block sits at its centre, a vorticity
 * observation at its grid point, a station at its point; distances wrap on
 * both axes (0 and 31 are neighbours on 32). */
static void test_torus_locations(void **state) {
  (void)state;
  obs_op *op;
  sb_error err;
  double a[2], b[2];
  assert_int_equal(obs_from_string(&op, "{\"type\":\"coarsen\",\"factor\":4}", 2, 32, 32, &err), 0);
  obs_state_location(op, 0, a);
  obs_state_location(op, 32 * 32 + 31 * 32 + 31, b); /* v at (31, 31) */
  assert_true(a[0] == 0 && a[1] == 0 && b[0] == 31 && b[1] == 31);
  assert_true(fabs(obs_distance(op, a, b) - sqrt(2.0)) < 1e-15);
  obs_state_location(op, 32 * 32 + 5 * 32 + 7, a);
  obs_state_location(op, 5 * 32 + 7, b);
  assert_true(obs_distance(op, a, b) == 0.0); /* u and v of one point */
  a[0] = 3, a[1] = 30, b[0] = 29, b[1] = 2;
  assert_true(fabs(obs_distance(op, a, b) - hypot(6, 4)) < 1e-15);
  a[0] = 0, a[1] = 16, b[0] = 0, b[1] = 0;
  assert_true(obs_distance(op, a, b) == 16.0);
  /* coarsen 4: block (I, J) of channel c is row c*64 + I*8 + J, centre 4I+1.5, 4J+1.5 */
  obs_location(op, 64 + 2 * 8 + 7, a);
  assert_true(a[0] == 9.5 && a[1] == 29.5);
  obs_free(op);
  assert_int_equal(obs_from_string(&op, "{\"type\":\"vorticity\"}", 2, 32, 32, &err), 0);
  obs_location(op, 3 * 32 + 17, a);
  assert_true(a[0] == 3 && a[1] == 17);
  obs_free(op);
  assert_int_equal(obs_from_string(&op, "{\"type\":\"stations\",\"points\":[[4,9],[30,1]],\"channels\":[1,0]}", 2, 32, 32,
                                   &err), 0);
  obs_location(op, 3, a); /* channel 0, point 2 */
  assert_true(a[0] == 30 && a[1] == 1);
  obs_free(op);
  /* 1D: a ring of W nodes, row 0 */
  assert_int_equal(obs_from_string(&op, "{\"type\":\"stations\",\"indices\":[1,38]}", 1, 1, 40, &err), 0);
  obs_location(op, 1, a);
  obs_state_location(op, 1, b);
  assert_true(a[0] == 0 && a[1] == 38 && obs_distance(op, a, b) == 3.0);
  obs_free(op);
}

/* LETKF on a 2D state [2][4][6] with coarsen 2 x 2 (12 block means at block
 * centres, half-integer locations): grid point g's analysis (both channels)
 * is the global ETKF with R^-1 tapered by GC(torus distance / (radius / 2)),
 * checked member by member, and its mean and variance equal the tapered
 * Kalman filter (tolerance 1e-9 as in 1D). With a huge radius it equals the
 * global ETKF (1e-7). Distances use torus_dist above, not obs.c. */
static void test_letkf_2d_equals_tapered_kalman(void **state) {
  (void)state;
  enum { Cc = 2, Hh = 4, Ww = 6, n = Cc * Hh * Ww, G = Hh * Ww, K = 60, p = 12 };
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"coarsen\",\"factor\":2}", Cc, Hh, Ww, &err), 0);
  assert_int_equal(op->n_obs, p);
  double *Hd = obs_dense(op);
  double P[n * n], m[n], std[p], y[p];
  prior_cov(P, n, 16);
  for (int c = 0; c < n; c++) m[c] = 0.1 * c - 2.0;
  double hm[p];
  obs_apply(op, m, hm, 1);
  for (int k = 0; k < p; k++) {
    std[k] = 0.4 + 0.05 * k;
    y[k] = hm[k] + (k % 3 ? 1.2 : -0.9);
  }
  y[5] = NAN;
  double *X0 = malloc(sizeof(double) * K * n), *XL = malloc(sizeof(double) * K * n), *XG = malloc(sizeof(double) * K * n);
  tu_exact_ensemble(X0, K, n, m, P, 79, 0);
  const double radii[2] = {2.5, 1e6};
  for (int ri = 0; ri < 2; ri++) {
    double radius = radii[ri];
    for (int path = 0; path < 2; path++) {
      memcpy(XL, X0, sizeof(double) * K * n);
      etkf_path_override = path;
      assert_int_equal(etkf_analysis(XL, K, n, op, y, std, 1.0, radius, &err), 0);
      etkf_path_override = 0;
      double worst_col = 0, worst_mean = 0, worst_var = 0, moved = 0;
      int partial = 0;
      for (int g = 0; g < G; g++) {
        double sl[p], yl[p], ma[n], Pa[n * n];
        for (int k = 0; k < p; k++) {
          int b = k % 6;
          double dd = torus_dist(g / Ww, g % Ww, (b / 3) * 2 + 0.5, (b % 3) * 2 + 0.5, Hh, Ww);
          double taper = dd < radius ? gc_ref(dd / (radius / 2)) : 0.0;
          if (taper == 0.0) partial = 1;
          sl[k] = taper > 0 ? std[k] / sqrt(taper) : INFINITY;
          yl[k] = taper > 0 ? y[k] : NAN;
        }
        memcpy(XG, X0, sizeof(double) * K * n);
        assert_int_equal(etkf_analysis(XG, K, n, op, yl, sl, 1.0, 0.0, &err), 0);
        kalman(m, P, n, Hd, yl, sl, p, ma, Pa);
        for (int c = g; c < n; c += G) {
          double mg = 0, vg = 0;
          for (int i = 0; i < K; i++) {
            worst_col = fmax(worst_col, fabs(XL[i * n + c] - XG[i * n + c]));
            mg += XL[i * n + c] / K;
          }
          for (int i = 0; i < K; i++) vg += (XL[i * n + c] - mg) * (XL[i * n + c] - mg) / (K - 1);
          worst_mean = fmax(worst_mean, fabs(mg - ma[c]));
          worst_var = fmax(worst_var, fabs(vg - Pa[c * n + c]));
          moved = fmax(moved, fabs(mg - m[c]));
        }
      }
      print_message("letkf 2D radius %g path %d: max |member - tapered etkf| %.2g, |mean - kalman| %.2g, |var - kalman| %.2g\n",
                    radius, path, worst_col, worst_mean, worst_var);
      double tol = radius > 100 ? 1e-7 : 1e-9;
      assert_true(worst_col < tol && worst_mean < tol && worst_var < tol);
      assert_true(moved > 0.1);
      assert_int_equal(partial, radius < 100); /* the small radius really drops observations */
    }
  }
  memcpy(XG, X0, sizeof(double) * K * n);
  assert_int_equal(etkf_analysis(XG, K, n, op, y, std, 1.0, 0.0, &err), 0);
  assert_true(max_abs_diff(XL, XG, K * n) < 1e-7);
  memcpy(XL, X0, sizeof(double) * K * n);
  assert_int_equal(etkf_analysis(XL, K, n, op, y, std, 1.0, 2.5, &err), 0);
  assert_true(max_abs_diff(XL, XG, K * n) > 1e-3); /* and a small radius does not */
  free(Hd), free(X0), free(XL), free(XG);
  obs_free(op);
}

// ----------------------------------------------------------------------------
// The bootstrap PF against hand-computed importance weights: particles are
// the documented prior draws (sim_sample_at at the window's first time,
// streams 0..P-1 of the seed), the weight of particle i is
//   prod_t exp(-1/2 sum_k ((y_tk - (H x_i(t))_k) / std_k)^2)
// (no resampling inside the window with resample_threshold 0), and systematic
// resampling of S = P samples gives particle i between floor(S w_i) and
// ceil(S w_i) times (exactly: no tolerance). A likelihood without the noise
// std (std = 2 and 3 here, so weights exp(-2 z^2) instead of exp(-z^2/2)) or a
// reversed sign moves most counts.

static void pf_exact_case(int W, double sd) {
  enum { n = 16, P = 300, no = 3 };
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, "pf", "l96-thesis", n, &err), 0);
  long t = 30;
  obs_op *op;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"stations\",\"indices\":[1,6,11]}", 1, 1, n, &err), 0);
  obs_noise nz;
  assert_int_equal(obs_noise_scalar(&nz, sd, no, &err), 0);
  /* observations of another draw (stream 5000) */
  double truth[n], y[4 * no];
  assert_int_equal(sim_sample_at(e->sim, truth, 1, t - W + 1, 11, 5000, &err), 0);
  for (int w = 0; w < W; w++) {
    if (w) assert_int_equal(e->sim->advance(e->sim, truth, 1, 1, &err), 0);
    obs_apply(op, truth, y + w * no, 1);
    for (int k = 0; k < no; k++) y[w * no + k] += 0.7 * (k - 1) + 0.3 * w; /* a fixed "noise" */
  }
  double *X = malloc(sizeof(double) * P * n), lw[P], hx[no];
  assert_int_equal(sim_sample_at(e->sim, X, P, t - W + 1, 4, 0, &err), 0);
  for (int i = 0; i < P; i++) lw[i] = 0;
  for (int w = 0; w < W; w++) {
    if (w) assert_int_equal(e->sim->advance(e->sim, X, P, 1, &err), 0);
    for (int i = 0; i < P; i++) {
      obs_apply(op, X + i * n, hx, 1);
      for (int k = 0; k < no; k++) lw[i] -= 0.5 * pow((y[w * no + k] - hx[k]) / sd, 2);
    }
  }
  double mx = -INFINITY, sum = 0, wsum[P];
  for (int i = 0; i < P; i++) mx = fmax(mx, lw[i]);
  for (int i = 0; i < P; i++) sum += wsum[i] = exp(lw[i] - mx);
  double ess_den = 0;
  for (int i = 0; i < P; i++) wsum[i] /= sum, ess_den += wsum[i] * wsum[i];
  est_problem pr = {.sim = e->sim, .op = op, .noise = &nz, .window = W, .time_index = t, .y = y};
  json_t *params = json_pack("{s:f}", "resample_threshold", 0.0);
  est_options o = {.n_samples = P, .seed = 4, .params = params};
  est_result r;
  assert_int_equal(est_sample(e, &pr, &o, &r, &err), 0);
  int count[P] = {0}, bad = 0;
  for (int s = 0; s < P; s++) {
    int found = -1;
    for (int i = 0; i < P && found < 0; i++)
      if (!memcmp(r.samples + s * n, X + i * n, sizeof(double) * n)) found = i;
    assert_true(found >= 0);
    count[found]++;
  }
  for (int i = 0; i < P; i++)
    if (count[i] < floor(P * wsum[i] - 1e-9) || count[i] > ceil(P * wsum[i] + 1e-9)) bad++;
  double ess = json_number_value(json_object_get(r.diagnostics, "ess_final"));
  print_message("pf W=%d: %d of %d counts outside floor/ceil of S w; ESS %.2f (hand %.2f)\n", W, bad, P, ess,
                1 / ess_den);
  assert_int_equal(bad, 0);
  assert_true(fabs(ess - 1 / ess_den) < 1e-9 * P);
  assert_true(1 / ess_den < 0.8 * P && 1 / ess_den > 3); /* the weights are informative, not degenerate */
  assert_int_equal(json_integer_value(json_object_get(r.diagnostics, "resampled")), 0);
  est_result_free(&r);
  json_decref(params);
  free(X);
  obs_noise_free(&nz);
  obs_free(op);
  est_free(e);
}

static void test_pf_exact_weights(void **state) {
  (void)state;
  pf_exact_case(1, 2.0);
  pf_exact_case(3, 3.0);
}

/* ensemble_size != n_samples: the S samples are draws from N(mean, A^T A /
 * (K - 1)) of the K analysis members (est_baseline.h). The members come from
 * the same call with S = K (samples are then the members). With S = 6000
 * draws, each component's sample mean is within 4 standard errors of the
 * members' mean, and the summed variance within 4% of theirs (relative
 * standard error between 0.55% and 1.8% depending on the spectrum of the 11
 * anomaly directions; measured 0.9%, and the run is seeded); dividing by K
 * instead of K - 1 (K = 12) makes it 8.3% low. */
static void test_etkf_resampled_moments(void **state) {
  (void)state;
  enum { n = 16, K = 12, S = 6000 };
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, "etkf", "l96-thesis", n, &err), 0);
  double *truth;
  est_problem p;
  tu_truth_problem(e, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 2, 50, 3, 0, &truth, &p);
  json_t *pk = json_pack("{s:i}", "ensemble_size", K);
  est_options ok = {.n_samples = K, .seed = 21}, os = {.n_samples = S, .seed = 21, .params = pk};
  est_result rk, rs;
  assert_int_equal(est_sample(e, &p, &ok, &rk, &err), 0);
  assert_int_equal(est_sample(e, &p, &os, &rs, &err), 0);
  double vk = 0, vs = 0, worst = 0;
  for (int c = 0; c < n; c++) {
    double mk = 0, ms = 0, a = 0, b = 0;
    for (int i = 0; i < K; i++) mk += rk.samples[i * n + c] / K;
    for (int i = 0; i < S; i++) ms += rs.samples[i * n + c] / S;
    for (int i = 0; i < K; i++) a += pow(rk.samples[i * n + c] - mk, 2) / (K - 1);
    for (int i = 0; i < S; i++) b += pow(rs.samples[i * n + c] - ms, 2) / (S - 1);
    vk += a, vs += b;
    worst = fmax(worst, fabs(ms - mk) / sqrt(a / S));
  }
  print_message("etkf K=%d, S=%d: summed variance of the draws / of the members %.4f; worst mean error %.2f se\n", K, S,
                vs / vk, worst);
  assert_true(fabs(vs / vk - 1) < 0.04);
  assert_true(worst < 4);
  est_result_free(&rk);
  est_result_free(&rs);
  json_decref(pk);
  tu_problem_free(&p);
  free(truth);
  est_free(e);
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
  /* LETKF localizes on the torus of a 2D field, with its own defaults */
  assert_int_equal(est_open(&e, "letkf", "kolmogorov", 0, &err), 0);
  assert_int_equal(e->sim->dim, 2048);
  json_t *defs = json_object_get(e->info, "params");
  assert_true(json_real_value(json_object_get(defs, "radius")) < 10.0);
  est_free(e);
  assert_int_equal(est_open(&e, "etkf", "kolmogorov", 0, &err), 0);
  assert_int_equal(e->sim->dim, 2048);
  est_free(e);
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
      cmocka_unit_test(test_etkf_equals_kalman),
      cmocka_unit_test(test_letkf_equals_tapered_kalman),
      cmocka_unit_test(test_etkf_background_equals_kalman),
      cmocka_unit_test(test_torus_locations),
      cmocka_unit_test(test_letkf_2d_equals_tapered_kalman),
      cmocka_unit_test(test_pf_exact_weights),
      cmocka_unit_test(test_etkf_resampled_moments),
      cmocka_unit_test(test_est_open),
      cmocka_unit_test(test_baselines_small),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
