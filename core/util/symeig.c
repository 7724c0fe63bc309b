#include "util/symeig.h"

#include <math.h>

/* Householder reduction to tridiagonal form. On exit V holds the orthogonal
 * transform, d the diagonal and e the subdiagonal (e[0] = 0). */
static void tred2(double *V, double *d, double *e, int n) {
#define A(i, j) V[(size_t)(i) * (size_t)n + (size_t)(j)]
  for (int j = 0; j < n; j++) d[j] = A(n - 1, j);
  for (int i = n - 1; i > 0; i--) {
    double scale = 0.0, h = 0.0;
    for (int k = 0; k < i; k++) scale += fabs(d[k]);
    if (scale == 0.0) {
      e[i] = d[i - 1];
      for (int j = 0; j < i; j++) {
        d[j] = A(i - 1, j);
        A(i, j) = 0.0;
        A(j, i) = 0.0;
      }
    } else {
      for (int k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      double f = d[i - 1];
      double g = sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h = h - f * g;
      d[i - 1] = f - g;
      for (int j = 0; j < i; j++) e[j] = 0.0;
      for (int j = 0; j < i; j++) {
        f = d[j];
        A(j, i) = f;
        g = e[j] + A(j, j) * f;
        for (int k = j + 1; k <= i - 1; k++) {
          g += A(k, j) * d[k];
          e[k] += A(k, j) * f;
        }
        e[j] = g;
      }
      f = 0.0;
      for (int j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      double hh = f / (h + h);
      for (int j = 0; j < i; j++) e[j] -= hh * d[j];
      for (int j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        for (int k = j; k <= i - 1; k++) A(k, j) -= (f * e[k] + g * d[k]);
        d[j] = A(i - 1, j);
        A(i, j) = 0.0;
      }
    }
    d[i] = h;
  }
  for (int i = 0; i < n - 1; i++) {
    A(n - 1, i) = A(i, i);
    A(i, i) = 1.0;
    double h = d[i + 1];
    if (h != 0.0) {
      for (int k = 0; k <= i; k++) d[k] = A(k, i + 1) / h;
      for (int j = 0; j <= i; j++) {
        double g = 0.0;
        for (int k = 0; k <= i; k++) g += A(k, i + 1) * A(k, j);
        for (int k = 0; k <= i; k++) A(k, j) -= g * d[k];
      }
    }
    for (int k = 0; k <= i; k++) A(k, i + 1) = 0.0;
  }
  for (int j = 0; j < n; j++) {
    d[j] = A(n - 1, j);
    A(n - 1, j) = 0.0;
  }
  A(n - 1, n - 1) = 1.0;
  e[0] = 0.0;
#undef A
}

/* Implicit QL on the tridiagonal (d, e). Vt is the TRANSPOSE of the tred2
 * transform (row k = column k of V), so each rotation touches two contiguous
 * rows. Returns nonzero if an eigenvalue needs more than 64 iterations. */
static int tql2(double *Vt, double *d, double *e, int n) {
  for (int i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0.0;
  double f = 0.0, tst1 = 0.0;
  const double eps = 0x1p-52;
  for (int l = 0; l < n; l++) {
    double t = fabs(d[l]) + fabs(e[l]);
    if (t > tst1) tst1 = t;
    int m = l;
    while (m < n - 1) {
      if (fabs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      int iter = 0;
      do {
        if (++iter > 64) return -1;
        double g = d[l];
        double p = (d[l + 1] - g) / (2.0 * e[l]);
        double r = hypot(p, 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        double dl1 = d[l + 1];
        double h = g - d[l];
        for (int i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        double c = 1.0, c2 = c, c3 = c;
        double el1 = e[l + 1];
        double s = 0.0, s2 = 0.0;
        for (int i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          double *vi = Vt + (size_t)i * (size_t)n, *vi1 = vi + n;
          for (int k = 0; k < n; k++) {
            h = vi1[k];
            vi1[k] = s * vi[k] + c * h;
            vi[k] = c * vi[k] - s * h;
          }
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (fabs(e[l]) > eps * tst1);
    }
    d[l] = d[l] + f;
    e[l] = 0.0;
  }
  return 0;
}

static void transpose_inplace(double *a, int n) {
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) {
      double t = a[(size_t)i * n + j];
      a[(size_t)i * n + j] = a[(size_t)j * n + i];
      a[(size_t)j * n + i] = t;
    }
}

int symeig(double *a, double *w, double *work, int n, sb_error *err) {
  if (n < 1) return sb_fail(err, SB_EINVAL, "symeig: matrix size %d < 1", n);
  for (size_t i = 0; i < (size_t)n * (size_t)n; i++)
    if (!isfinite(a[i])) return sb_fail(err, SB_ENUMERIC, "symeig: non-finite matrix entry");
  if (n == 1) {
    w[0] = a[0];
    a[0] = 1.0;
    return SB_OK;
  }
  tred2(a, w, work, n);
  transpose_inplace(a, n);
  if (tql2(a, w, work, n))
    return sb_fail(err, SB_ENUMERIC, "symeig: QL iteration did not converge (n = %d)", n);
  /* selection sort ascending, swapping rows of Vt */
  for (int i = 0; i < n - 1; i++) {
    int k = i;
    for (int j = i + 1; j < n; j++)
      if (w[j] < w[k]) k = j;
    if (k != i) {
      double t = w[i];
      w[i] = w[k];
      w[k] = t;
      double *ri = a + (size_t)i * n, *rk = a + (size_t)k * n;
      for (int j = 0; j < n; j++) {
        t = ri[j];
        ri[j] = rk[j];
        rk[j] = t;
      }
    }
  }
  transpose_inplace(a, n);
  return SB_OK;
}
