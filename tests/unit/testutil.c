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
#include "util/rng.h"

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
  *p = (est_problem){e->sim, op, nz, W, t, y, NULL};
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

void tu_cholesky(const double *a, int n, double *L) {
  for (int i = 0; i < n * n; i++) L[i] = 0.0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++) {
      double s = a[i * n + j];
      for (int k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      if (i == j) {
        if (!(s > 0)) fail_msg("tu_cholesky: matrix not positive definite (pivot %d = %g)", i, s);
        L[i * n + i] = sqrt(s);
      } else {
        L[i * n + j] = s / L[j * n + j];
      }
    }
}

void tu_spd_inverse(double *a, int n) {
  double *L = malloc(sizeof(double) * n * n), *inv = calloc((size_t)n * n, sizeof(double)),
         *z = malloc(sizeof(double) * n);
  tu_cholesky(a, n, L);
  for (int col = 0; col < n; col++) {
    for (int i = 0; i < n; i++) { /* L z = e_col */
      double s = i == col;
      for (int k = 0; k < i; k++) s -= L[i * n + k] * z[k];
      z[i] = s / L[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) { /* L^T x = z */
      double s = z[i];
      for (int k = i + 1; k < n; k++) s -= L[k * n + i] * inv[k * n + col];
      inv[i * n + col] = s / L[i * n + i];
    }
  }
  memcpy(a, inv, sizeof(double) * n * n);
  free(L);
  free(inv);
  free(z);
}

void tu_matmul(const double *a, const double *b, double *c, int m, int k, int p, int ta, int tb) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < p; j++) {
      double s = 0;
      for (int l = 0; l < k; l++) s += (ta ? a[l * m + i] : a[i * k + l]) * (tb ? b[j * k + l] : b[l * p + j]);
      c[i * p + j] = s;
    }
}

void tu_ensemble_moments(const double *X, int K, int n, double *mean, double *cov) {
  for (int c = 0; c < n; c++) {
    double s = 0;
    for (int i = 0; i < K; i++) s += X[i * n + c];
    mean[c] = s / K;
  }
  for (int a = 0; a < n; a++)
    for (int b = 0; b < n; b++) {
      double s = 0;
      for (int i = 0; i < K; i++) s += (X[i * n + a] - mean[a]) * (X[i * n + b] - mean[b]);
      cov[a * n + b] = s / (K - 1);
    }
}

void tu_exact_ensemble(double *X, int K, int n, const double *m, const double *P, uint64_t seed, uint64_t stream) {
  assert_true(K > n);
  double *Z = malloc(sizeof(double) * K * n), *C = malloc(sizeof(double) * n * n), *G = malloc(sizeof(double) * n * n),
         *mu = malloc(sizeof(double) * n), *L = malloc(sizeof(double) * n * n);
  rng r;
  rng_init(&r, seed, stream);
  for (int i = 0; i < K * n; i++) Z[i] = rng_normal(&r);
  /* centre, then whiten: Z <- Z G^-T with G G^T = cov(Z), so cov(Z) = I */
  tu_ensemble_moments(Z, K, n, mu, C);
  for (int i = 0; i < K; i++)
    for (int c = 0; c < n; c++) Z[i * n + c] -= mu[c];
  tu_cholesky(C, n, G);
  for (int i = 0; i < K; i++) /* solve G w = z_i (forward substitution), row i <- w */
    for (int c = 0; c < n; c++) {
      double s = Z[i * n + c];
      for (int k = 0; k < c; k++) s -= G[c * n + k] * Z[i * n + k];
      Z[i * n + c] = s / G[c * n + c];
    }
  tu_cholesky(P, n, L);
  for (int i = 0; i < K; i++)
    for (int c = 0; c < n; c++) {
      double s = m[c];
      for (int k = 0; k <= c; k++) s += L[c * n + k] * Z[i * n + k];
      X[i * n + c] = s;
    }
  free(Z);
  free(C);
  free(G);
  free(mu);
  free(L);
}

void tu_truth_problem(estimator *e, const char *op_json, double noise, int W, long t, uint64_t seed, uint64_t stream,
                      double **truth, est_problem *p) {
  sb_error err = {0};
  int n = e->sim->dim;
  obs_op *op;
  if (obs_from_string(&op, op_json, e->sim->channels, e->sim->height, e->sim->width, &err)) fail_msg("%s", err.msg);
  obs_noise *nz = malloc(sizeof *nz);
  assert_int_equal(obs_noise_scalar(nz, noise, op->n_obs, &err), 0);
  double *x = malloc(sizeof(double) * (size_t)W * n), *y = malloc(sizeof(double) * (size_t)W * op->n_obs);
  if (sim_sample_at(e->sim, x, 1, t - W + 1, seed, stream, &err)) fail_msg("%s", err.msg);
  for (int w = 1; w < W; w++) {
    memcpy(x + (size_t)w * n, x + (size_t)(w - 1) * n, sizeof(double) * n);
    if (e->sim->advance(e->sim, x + (size_t)w * n, 1, 1, &err)) fail_msg("%s", err.msg);
  }
  obs_apply(op, x, y, (size_t)W);
  obs_add_noise(nz, y, (size_t)W, seed, 1000 + stream);
  *truth = x;
  *p = (est_problem){e->sim, op, nz, W, t, y, NULL};
}

double tu_rmse_of_mean(const double *x, int S, size_t stride, int dim, const double *truth, double *spread) {
  double se = 0, var = 0;
  for (int c = 0; c < dim; c++) {
    double m = 0, v = 0;
    for (int s = 0; s < S; s++) m += x[(size_t)s * stride + c] / S;
    for (int s = 0; s < S; s++) v += (x[(size_t)s * stride + c] - m) * (x[(size_t)s * stride + c] - m) / (S - 1);
    se += (m - truth[c]) * (m - truth[c]);
    var += v;
  }
  if (spread) *spread = sqrt(var / dim);
  return sqrt(se / dim);
}

void tu_lingauss_cov(int N, double L, double nu, double *cov) {
  double *c = malloc(sizeof(double) * N), ss = 0;
  for (int d = 0; d < N; d++) {
    int dd = d < N - d ? d : N - d;
    c[d] = exp(-(double)dd * dd / (2 * L * L));
    ss += c[d] * c[d];
  }
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double v = 0; /* (C C^T)[i][j] = sum_m c(i - m) c(j - m) */
      for (int m = 0; m < N; m++) v += c[((i - m) % N + N) % N] * c[((j - m) % N + N) % N];
      cov[i * N + j] = (1 - nu) * v / ss + (i == j ? nu : 0.0);
    }
  free(c);
}

void tu_shift_posterior(const double *cov0, int N, int shift, const obs_op *op, const double *std, const double *y,
                        int W, double *mean, double *cov) {
  const int no = op->n_obs;
  double *H = obs_dense(op);
  assert_non_null(H);
  /* rows of G (observed entries only): y_w,i = sum_j H[i][j] x_w[j] and
   * x_w[j] = x_t[j + m], m = (W-1-w) shift, so G[r][j] = H[i][j - m] */
  double *G = calloc((size_t)W * no * N, sizeof(double)), *yv = malloc(sizeof(double) * W * no),
         *rv = malloc(sizeof(double) * W * no);
  int q = 0;
  for (int w = 0; w < W; w++) {
    int m = (W - 1 - w) * shift;
    for (int i = 0; i < no; i++) {
      if (isnan(y[w * no + i])) continue;
      for (int j = 0; j < N; j++) G[q * N + j] = H[i * N + ((j - m) % N + N) % N];
      yv[q] = y[w * no + i];
      rv[q] = std[i] * std[i];
      q++;
    }
  }
  double *SG = malloc(sizeof(double) * N * (q ? q : 1)), *Sy = malloc(sizeof(double) * (q ? q * q : 1)),
         *K = malloc(sizeof(double) * N * (q ? q : 1));
  /* SG = Sigma0 G^T [N][q]; Sy = G Sigma0 G^T + R [q][q]; K = SG Sy^-1 */
  tu_matmul(cov0, G, SG, N, N, q, 0, 1);
  tu_matmul(G, SG, Sy, q, N, q, 0, 0);
  for (int r = 0; r < q; r++) Sy[r * q + r] += rv[r];
  if (q) tu_spd_inverse(Sy, q);
  tu_matmul(SG, Sy, K, N, q, q, 0, 0);
  for (int i = 0; i < N; i++) {
    double s = 0;
    for (int r = 0; r < q; r++) s += K[i * q + r] * yv[r];
    mean[i] = s;
  }
  if (cov) /* P = Sigma0 - K (Sigma0 G^T)^T */
    for (int i = 0; i < N; i++)
      for (int j = 0; j < N; j++) {
        double s = cov0[i * N + j];
        for (int r = 0; r < q; r++) s -= K[i * q + r] * SG[j * q + r];
        cov[i * N + j] = s;
      }
  free(H), free(G), free(yv), free(rv), free(SG), free(Sy), free(K);
}

double tu_gauss_xhat(const tu_gauss *g, double tau, int j, double xt) {
  double mu = diff_mu(tau), sg = diff_sigma(tau);
  double k = mu * g->pc[j] / (mu * mu * g->pc[j] + sg * sg);
  return g->pm[j] + k * (xt - mu * g->pm[j]);
}

int tu_gauss_v(void *ctx, const float *x, double tau, int B, float *v, sb_error *err) {
  (void)err;
  const tu_gauss *g = ctx;
  const int D = g->dim;
  double mu = diff_mu(tau), sg = diff_sigma(tau);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < D; j++) {
      double xt = x[b * D + j], xh = tu_gauss_xhat(g, tau, j, xt), eh = (xt - mu * xh) / sg;
      v[b * D + j] = (float)(mu * eh - sg * xh);
    }
  return 0;
}

int tu_gauss_vjp(void *ctx, const float *x, double tau, int B, float *v, diff_cot_fn cot_fn, void *cot_ctx,
                 float *cot, float *gr, sb_error *err) {
  const tu_gauss *g = ctx;
  const int D = g->dim;
  tu_gauss_v(ctx, x, tau, B, v, err);
  if (cot_fn) cot_fn(cot_ctx, 0, B);
  double mu = diff_mu(tau), sg = diff_sigma(tau);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < D; j++) {
      double k = mu * g->pc[j] / (mu * mu * g->pc[j] + sg * sg);
      gr[b * D + j] = (float)((mu * (1 - mu * k) / sg - sg * k) * cot[b * D + j]);
    }
  return 0;
}

double tu_gauss_eps_fd_error(const tu_gauss *g, const float *x, const float *eps, int B, double tau,
                             double (*logp)(const double *x, void *ctx), void *ctx) {
  const int D = g->dim;
  double mu = diff_mu(tau), sg = diff_sigma(tau), worst = 0;
  double *xd = malloc(sizeof(double) * 3 * D), *xp = xd + D, *xm = xp + D;
  for (int b = 0; b < B; b++) {
    for (int j = 0; j < D; j++) xd[j] = x[b * D + j];
    for (int j = 0; j < D; j++) {
      const double h = 1e-5;
      memcpy(xp, xd, sizeof(double) * D);
      memcpy(xm, xd, sizeof(double) * D);
      xp[j] += h, xm[j] -= h;
      double grad = (logp(xp, ctx) - logp(xm, ctx)) / (2 * h);
      double xh = tu_gauss_xhat(g, tau, j, xd[j]), want = (xd[j] - mu * xh) / sg - sg * grad;
      worst = fmax(worst, fabs(eps[b * D + j] - want) / (1 + fabs(want)));
    }
  }
  free(xd);
  return worst;
}

double tu_sda_loglik(const double *A, int no, int ns, int nb, const double *y, const double *sy, const double *x,
                     const double *S, double gr2) {
  double ll = 0;
  for (int k = 0; k < nb; k++)
    for (int i = 0; i < no; i++) {
      if (isnan(y[k * no + i])) continue;
      double ax = 0, dd = 0;
      for (int j = 0; j < ns; j++) {
        ax += A[i * ns + j] * x[k * ns + j];
        dd += A[i * ns + j] * A[i * ns + j] * S[k * ns + j] * S[k * ns + j];
      }
      double var = sy[i] * sy[i] + gr2 * dd, r = y[k * no + i] - ax;
      ll += -0.5 * r * r / var;
    }
  return ll;
}
