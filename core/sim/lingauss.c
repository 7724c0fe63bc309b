/* lingauss.c: the linear-Gaussian preset (see lingauss.h). */
#include "sim/lingauss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/rng.h"

/* param layout */
enum { P_LEN = 0, P_NUGGET = 1, P_SHIFT = 2 };

/* kernel c [N]: c[d] for the periodic distance of offset d, sum c^2 = 1 */
static void kernel(const sim *s, double *c) {
  int N = s->dim;
  double L = s->param[P_LEN], ss = 0;
  for (int d = 0; d < N; d++) {
    int dd = d < N - d ? d : N - d;
    c[d] = exp(-(double)dd * dd / (2 * L * L));
    ss += c[d] * c[d];
  }
  for (int d = 0; d < N; d++) c[d] /= sqrt(ss);
}

static int lg_init(const sim *s, double *x, size_t B, uint64_t seed, uint64_t stream0, sb_error *err) {
  int N = s->dim;
  double *c = malloc(sizeof(double) * 2 * (size_t)N);
  if (!c) return sb_fail(err, SB_ENOMEM, "out of memory");
  double *z = c + N, a = sqrt(1 - s->param[P_NUGGET]), b = sqrt(s->param[P_NUGGET]);
  kernel(s, c);
  for (size_t k = 0; k < B; k++) {
    rng r;
    rng_init(&r, seed, stream0 + k);
    rng_fill_normal(&r, z, (size_t)N);
    double *xk = x + k * (size_t)N;
    for (int i = 0; i < N; i++) {
      double v = 0;
      for (int m = 0; m < N; m++) v += c[(i - m + N) % N] * z[m];
      xk[i] = a * v;
    }
    for (int i = 0; i < N; i++) xk[i] += b * rng_normal(&r);
  }
  free(c);
  return SB_OK;
}

static int lg_advance(const sim *s, double *x, size_t B, long n, sb_error *err) {
  if (n < 0) return sb_fail(err, SB_EINVAL, "cannot advance by a negative number of intervals (%ld)", n);
  int N = s->dim;
  long sh = (long)((n % N) * (long)s->param[P_SHIFT] % N);
  if (sh == 0) return SB_OK;
  double *tmp = malloc(sizeof(double) * (size_t)N);
  if (!tmp) return sb_fail(err, SB_ENOMEM, "out of memory");
  for (size_t k = 0; k < B; k++) {
    double *xk = x + k * (size_t)N;
    for (int i = 0; i < N; i++) tmp[(i + sh) % N] = xk[i]; /* x'[i] = x[i - sh] */
    memcpy(xk, tmp, sizeof(double) * (size_t)N);
  }
  free(tmp);
  return SB_OK;
}

static void lg_free(sim *s) { free(s); }

int lingauss_create(sim **out, int N, sb_error *err) {
  *out = NULL;
  if (N <= 0) N = 16;
  if (N < 4 || N > 1024) return sb_fail(err, SB_ERANGE, "linear-gauss: N must be in 4..1024, got %d", N);
  sim *s = calloc(1, sizeof *s);
  if (!s) return sb_fail(err, SB_ENOMEM, "out of memory");
  snprintf(s->preset, sizeof s->preset, "linear-gauss");
  snprintf(s->system, sizeof s->system, "linear-gaussian");
  s->channels = 1;
  s->height = 1;
  s->width = N;
  s->dim = N;
  s->dt = 1.0;
  s->stationary = 1;
  s->t_max = 1000000000L;
  s->init = lg_init;
  s->advance = lg_advance;
  s->free = lg_free;
  s->param[P_LEN] = 2.0;
  s->param[P_NUGGET] = 0.1;
  s->param[P_SHIFT] = 1;
  s->flops_step = 2.0 * N;
  s->flops_init = 2.0 * N * N + 20.0 * N; /* a circulant product */
  *out = s;
  return SB_OK;
}

int lingauss_cov(const sim *s, double *cov, sb_error *err) {
  if (strcmp(s->preset, "linear-gauss") != 0)
    return sb_fail(err, SB_EINVAL, "%s has no closed-form covariance (only linear-gauss)", s->preset);
  int N = s->dim;
  double *c = malloc(sizeof(double) * (size_t)N);
  if (!c) return sb_fail(err, SB_ENOMEM, "out of memory");
  kernel(s, c);
  double nu = s->param[P_NUGGET];
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double v = 0;
      for (int m = 0; m < N; m++) v += c[(i - m + N) % N] * c[(j - m + N) % N];
      cov[(size_t)i * N + j] = (1 - nu) * v + (i == j ? nu : 0.0);
    }
  free(c);
  return SB_OK;
}
