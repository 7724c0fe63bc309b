/* diff_bg.c: the background term of the guidance (see diff_bg.h). */
#include "diff/diff_bg.h"

#include <math.h>
#include <stdlib.h>

int diff_bg_inv_init(diff_bg_inv *v, const diff_background *b, const double *extra, sb_error *err) {
  const int n = b->n_members, N = b->dim;
  v->b = b;
  v->mem = malloc(sizeof(double) * ((size_t)N + (size_t)n * n + 1));
  if (!v->mem) return sb_fail(err, SB_ENOMEM, "out of memory for a background of %d members", n);
  v->dinv = v->mem;
  v->chol = v->mem + N;
  for (int i = 0; i < N; i++) v->dinv[i] = 1.0 / (b->diag[i] + (extra ? extra[i] : 0.0));
  /* M = I + U diag(dinv) U^T, then its Cholesky factor in place (lower) */
  double *L = v->chol;
  for (int a = 0; a < n; a++)
    for (int c = 0; c <= a; c++) {
      const double *ua = b->anom + (size_t)a * N, *uc = b->anom + (size_t)c * N;
      double s = a == c ? 1.0 : 0.0;
      for (int i = 0; i < N; i++) s += ua[i] * v->dinv[i] * uc[i];
      L[(size_t)a * n + c] = s;
    }
  for (int a = 0; a < n; a++) {
    for (int c = 0; c <= a; c++) {
      double s = L[(size_t)a * n + c];
      for (int k = 0; k < c; k++) s -= L[(size_t)a * n + k] * L[(size_t)c * n + k];
      if (a == c) {
        if (!(s > 0)) {
          diff_bg_inv_free(v);
          return sb_fail(err, SB_ENUMERIC, "background: I + U D^-1 U^T is not positive definite (%g)", s);
        }
        L[(size_t)a * n + a] = sqrt(s);
      } else {
        L[(size_t)a * n + c] = s / L[(size_t)c * n + c];
      }
    }
  }
  return SB_OK;
}

void diff_bg_inv_free(diff_bg_inv *v) {
  free(v->mem);
  v->mem = v->dinv = v->chol = NULL;
}

/* Woodbury: C^{-1} r = D^{-1} r - D^{-1} U^T M^{-1} U D^{-1} r, M = I + U D^{-1} U^T */
void diff_bg_solve(const diff_bg_inv *v, const double *r, double *out, double *tmp) {
  const diff_background *b = v->b;
  const int n = b->n_members, N = b->dim;
  const double *L = v->chol;
  for (int i = 0; i < N; i++) out[i] = v->dinv[i] * r[i];
  if (!n) return;
  for (int a = 0; a < n; a++) {
    const double *ua = b->anom + (size_t)a * N;
    double s = 0.0;
    for (int i = 0; i < N; i++) s += ua[i] * out[i];
    tmp[a] = s;
  }
  for (int a = 0; a < n; a++) { /* L z = t */
    double s = tmp[a];
    for (int k = 0; k < a; k++) s -= L[(size_t)a * n + k] * tmp[k];
    tmp[a] = s / L[(size_t)a * n + a];
  }
  for (int a = n - 1; a >= 0; a--) { /* L^T z = z */
    double s = tmp[a];
    for (int k = a + 1; k < n; k++) s -= L[(size_t)k * n + a] * tmp[k];
    tmp[a] = s / L[(size_t)a * n + a];
  }
  for (int a = 0; a < n; a++) {
    const double *ua = b->anom + (size_t)a * N;
    for (int i = 0; i < N; i++) out[i] -= v->dinv[i] * ua[i] * tmp[a];
  }
}

/* log det C = log det D + log det M (matrix determinant lemma) */
double diff_bg_logpdf(const diff_bg_inv *v, const double *x, double *tmp) {
  const diff_background *b = v->b;
  const int n = b->n_members, N = b->dim;
  double *r = tmp, *out = tmp + n, *rr = tmp + n + N, q = 0.0, logdet = 0.0;
  for (int i = 0; i < N; i++) rr[i] = b->mean[i] - x[i];
  diff_bg_solve(v, rr, out, r);
  for (int i = 0; i < N; i++) q += rr[i] * out[i], logdet -= log(v->dinv[i]);
  for (int a = 0; a < n; a++) logdet += 2.0 * log(v->chol[(size_t)a * n + a]);
  return -0.5 * q - 0.5 * logdet - 0.5 * N * log(2.0 * M_PI);
}
