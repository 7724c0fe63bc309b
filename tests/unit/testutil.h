/* testutil.h: helpers shared by the cmocka unit tests (run from the repo root). */
#ifndef SB_TESTUTIL_H
#define SB_TESTUTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "diff/diff.h"
#include "est/est.h"

/* Loads a JSON file relative to the repository root; fails the test if absent. */
json_t *tu_load_json(const char *path);
/* Copies a JSON array of numbers into a malloc'd double array (n set). */
double *tu_doubles(const json_t *arr, size_t *n);
/* Copies a JSON array of equal-length arrays into one row-major double array. */
double *tu_matrix(const json_t *arr, size_t *rows, size_t *cols);
/* Max |a-b| / (atol + rtol |b|) over n values: <= 1 means within tolerance. */
double tu_max_scaled_err(const double *a, const double *b, size_t n, double atol, double rtol);
/* Small dense linear algebra for exact reference answers (row-major, n x n):
 * lower Cholesky factor L of an SPD matrix a (L zero above the diagonal;
 * fails the test if a is not positive definite), and the inverse of an SPD
 * matrix in place. Written independently of core/ (plain textbook loops). */
void tu_cholesky(const double *a, int n, double *L);
void tu_spd_inverse(double *a, int n);
/* c [m][p] = a [m][k] b [k][p]; ta / tb: use a^T ([k][m]) / b^T ([p][k]). */
void tu_matmul(const double *a, const double *b, double *c, int m, int k, int p, int ta, int tb);
/* An ensemble X [K][n] whose sample mean is exactly m [n] and whose sample
 * covariance (1/(K-1)) is exactly P [n][n] (to rounding), K > n, from
 * whitened Gaussian draws of stream (seed, stream). */
void tu_exact_ensemble(double *X, int K, int n, const double *m, const double *P, uint64_t seed, uint64_t stream);
/* Sample mean [n] and covariance [n][n] (1/(K-1)) of X [K][n]. */
void tu_ensemble_moments(const double *X, int K, int n, double *mean, double *cov);

/* The exact denoiser of a diagonal Gaussian prior N(pm, diag pc) over dim
 * standardized values (diff.h's v-parametrisation), for the guidance tests:
 * a diff_denoiser {dim, &gauss, tu_gauss_v, tu_gauss_vjp}. The VJP calls the
 * cotangent callback once for all samples, as a network would per group. */
typedef struct tu_gauss {
  int dim;
  const double *pm, *pc;
} tu_gauss;
double tu_gauss_xhat(const tu_gauss *g, double tau, int j, double xt);
int tu_gauss_v(void *ctx, const float *x, double tau, int B, float *v, sb_error *err);
int tu_gauss_vjp(void *ctx, const float *x, double tau, int B, float *v, diff_cot_fn cot_fn, void *cot_ctx,
                 float *cot, float *g, sb_error *err);
/* The guided eps of B samples x [B][dim] against eps_hat - sigma d/dx log p by
 * central differences (step 1e-5 in double) of logp(x, ctx) through the
 * exact x_hat: returns the largest |eps - want| / (1 + |want|). */
double tu_gauss_eps_fd_error(const tu_gauss *g, const float *x, const float *eps, int B, double tau,
                             double (*logp)(const double *x, void *ctx), void *ctx);

/* SDA's log likelihood sum_k sum_i -1/2 r^2 / (sy_i^2 + gr2 sum_j A_ij^2 S_kj^2),
 * r = y_ki - (A x_k)_i, over nb blocks of ns physical values x, a dense A
 * [no][ns], y [nb][no] (NaN: missing), gr2 = gamma (sigma/mu)^2: the
 * reference the guidance tests differentiate by hand. */
double tu_sda_loglik(const double *A, int no, int ns, int nb, const double *y, const double *sy, const double *x,
                     const double *S, double gr2);

/* A scratch directory under build/ for files a test writes. */
const char *tu_tmpdir(void);

/* Trains a model from cfg (reference stolen) into out; fails the test on an
 * error; returns the final validation loss. */
double tu_train(json_t *cfg, const char *out);
/* A problem for e: a window of W observations of a 1x16 state through
 * op_json with noise std `noise` (every 5th value missing, the others
 * 0.3 * (i % 7)) at time index t; tu_problem_free releases it. */
void tu_problem(estimator *e, const char *op_json, double noise, int W, long t, est_problem *p);
void tu_problem_free(est_problem *p);
/* Runs e on tu_problem(...) with options o; returns est_sample's code (a
 * failure must come with a message). */
int tu_sample(estimator *e, const char *op_json, double noise, int W, long t, const est_options *o, est_result *r);

/* A problem with a known truth: the truth window truth [W][dim] is drawn
 * from e's simulator at time t (sim_sample_at(t - W + 1), stream `stream` of
 * `seed`, advanced one interval per window time) and observed through
 * op_json with Gaussian noise of std `noise` (obs_add_noise, same seed,
 * stream 1000 + stream). truth is malloc'd; free it and tu_problem_free(p). */
void tu_truth_problem(estimator *e, const char *op_json, double noise, int W, long t, uint64_t seed, uint64_t stream,
                      double **truth, est_problem *p);
/* RMSE over components of the mean of S samples (stride between samples
 * `stride` doubles, dim values from `x`) against truth [dim]; the mean std
 * of the samples (S - 1) into *spread when not NULL. */
double tu_rmse_of_mean(const double *x, int S, size_t stride, int dim, const double *truth, double *spread);

/* The linear-gauss preset (core/sim/lingauss.h), written out again here
 * from its documented definition: the stationary covariance Sigma0 [N][N]
 * of x_0 = sqrt(1 - nu) C z + sqrt(nu) z' with the circulant kernel
 * c_d ~ exp(-d^2 / (2 L^2)) (periodic distance, sum c^2 = 1). */
void tu_lingauss_cov(int N, double L, double nu, double *cov);
/* The exact posterior N(mean, cov) of x_t given a window y [W][n_obs]
 * (oldest first, NaN = missing) of y_k = H x_k + N(0, diag(std^2)) when the
 * states move by a circular shift of `shift` nodes per interval
 * (x_{k+1}[i] = x_k[i - shift]) and x_t ~ N(0, cov0): direct Gaussian
 * conditioning on x_t with x_k = A^{k-t} x_t, in covariance form (only the
 * observation-space matrix is inverted), double precision. cov may be NULL. */
void tu_shift_posterior(const double *cov0, int N, int shift, const obs_op *op, const double *std, const double *y,
                        int W, double *mean, double *cov);

#endif
