#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l96.h"
#include "lingauss.h"
#include "rng.h"

const char *const sim_presets[] = {"l96-sakov", "l96-thesis", "linear-gauss", NULL};

/* param layout for Lorenz96 presets */
enum { P_F = 0, P_DT_INT = 1, P_STEPS = 2, P_SPINUP = 3 };

static int l96_advance(const sim *s, double *x, size_t B, long n, sb_error *err) {
  if (n < 0) return sb_fail(err, SB_EINVAL, "cannot advance by a negative number of intervals (%ld)", n);
  int N = s->dim;
  double *work = malloc(sizeof(double) * 5 * (size_t)N);
  if (!work) return sb_fail(err, SB_ENOMEM, "out of memory");
  long steps = n * (long)s->param[P_STEPS];
  for (size_t b = 0; b < B; b++)
    l96_rk4(x + b * (size_t)N, 1, N, s->param[P_F], s->param[P_DT_INT], (int)steps, work);
  free(work);
  return SB_OK;
}

static int l96_init(const sim *s, double *x, size_t B, uint64_t seed, uint64_t stream0, sb_error *err) {
  int N = s->dim;
  for (size_t b = 0; b < B; b++) {
    rng r;
    rng_init(&r, seed, stream0 + b);
    rng_fill_normal(&r, x + b * (size_t)N, (size_t)N);
  }
  long spin = (long)s->param[P_SPINUP];
  if (spin > 0) {
    double *work = malloc(sizeof(double) * 5 * (size_t)N);
    if (!work) return sb_fail(err, SB_ENOMEM, "out of memory");
    l96_rk4(x, B, N, s->param[P_F], s->param[P_DT_INT], (int)spin, work);
    free(work);
  }
  return SB_OK;
}

static void plain_free(sim *s) { free(s); }

int sim_create(sim **out, const char *preset, int N, sb_error *err) {
  *out = NULL;
  if (!preset) return sb_fail(err, SB_EINVAL, "no preset given (known: l96-sakov, l96-thesis, linear-gauss)");
  if (strcmp(preset, "linear-gauss") == 0) return lingauss_create(out, N, err);
  sim *s = calloc(1, sizeof *s);
  if (!s) return sb_fail(err, SB_ENOMEM, "out of memory");
  snprintf(s->system, sizeof s->system, "lorenz96");
  s->init = l96_init;
  s->advance = l96_advance;
  s->free = plain_free;
  s->channels = 1;
  s->height = 1;
  s->param[P_F] = 8.0;
  s->param[P_DT_INT] = 0.05;
  s->param[P_STEPS] = 1;
  s->dt = 0.05;
  if (strcmp(preset, "l96-sakov") == 0) {
    if (N <= 0) N = 40;
    if (N < 4 || N > 1024) {
      free(s);
      return sb_fail(err, SB_ERANGE, "l96-sakov: N must be in 4..1024, got %d", N);
    }
    s->stationary = 1;
    s->t_max = 1000000000L;
    s->param[P_SPINUP] = 1000; /* steps from N(0, I) onto the attractor */
  } else if (strcmp(preset, "l96-thesis") == 0) {
    if (N <= 0) N = 32;
    if (N < 8 || N > 256 || N % 4 != 0) {
      free(s);
      return sb_fail(err, SB_ERANGE, "l96-thesis: N must be a multiple of 4 in 8..256, got %d", N);
    }
    s->stationary = 0;
    s->t_max = 1023;
    s->param[P_SPINUP] = 0; /* x_0 ~ N(0, I): the prior changes with t */
  } else {
    free(s);
    return sb_fail(err, SB_EINVAL, "unknown preset '%s' (known: l96-sakov, l96-thesis, linear-gauss)", preset);
  }
  snprintf(s->preset, sizeof s->preset, "%s", preset);
  s->width = N;
  s->dim = N;
  *out = s;
  return SB_OK;
}

void sim_free(sim *s) {
  if (s && s->free) s->free(s);
}

int sim_sample_at(const sim *s, double *x, size_t B, long t, uint64_t seed, uint64_t stream0,
                  sb_error *err) {
  if (t < 0 || t > s->t_max)
    return sb_fail(err, SB_ERANGE, "%s: time index %ld outside 0..%ld", s->preset, t, s->t_max);
  int rc = s->init(s, x, B, seed, stream0, err);
  if (rc) return rc;
  return s->advance(s, x, B, t, err);
}
