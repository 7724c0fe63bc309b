#include "sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/kolmogorov.h"
#include "sim/l96.h"
#include "sim/lingauss.h"
#include "util/rng.h"

const char *const sim_presets[] = {"l96-sakov", "l96-thesis", "kolmogorov", "kolmogorov-t", "linear-gauss", NULL};

#define KNOWN "l96-sakov, l96-thesis, kolmogorov, kolmogorov-t, linear-gauss"

/* kolmogorov: intervals of 0.2 from the random initial field onto the attractor
 * (docs/kolmogorov.md: the ensemble energy and enstrophy are stationary after it);
 * kolmogorov-t: largest time index (128 states, as SDA's trajectories) */
#define KOLMO_SPINUP 64
#define KOLMO_T_MAX 127

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

static void l96_step_vjp(const sim *s, const double *x, const double *u, double *y, double *xbar, double *work) {
  l96_rk4_vjp(x, u, y, xbar, s->dim, s->param[P_F], s->param[P_DT_INT], (int)s->param[P_STEPS], work);
}

static void plain_free(sim *s) { free(s); }

// ----------------------------------------------------------------------------
// Kolmogorov flow (kolmogorov.h): state (u, v) on 32 x 32, solver 64 x 64

enum { P_KF_SPINUP = 0 };

static int kolmo_advance(const sim *s, double *x, size_t B, long n, sb_error *err) {
  return kf_advance(s->impl, x, B, n, err);
}

static int kolmo_init(const sim *s, double *x, size_t B, uint64_t seed, uint64_t stream0, sb_error *err) {
  int rc = kf_init_random(s->impl, x, B, seed, stream0, err);
  if (!rc && s->param[P_KF_SPINUP] > 0) rc = kf_advance(s->impl, x, B, (long)s->param[P_KF_SPINUP], err);
  return rc;
}

static void kolmo_free(sim *s) {
  kf_free(s->impl);
  free(s);
}

static int kolmo_create(sim *s, const char *preset, int N, sb_error *err) {
  if (N > 0 && N != 32)
    return sb_fail(err, SB_ERANGE, "%s: the state grid is 32 x 32 (N = 32 or unset), got N = %d", preset, N);
  kf_config c;
  kf_config_default(&c);
  int rc = kf_create((kf_solver **)&s->impl, &c, err);
  if (rc) return rc;
  snprintf(s->system, sizeof s->system, "kolmogorov");
  s->init = kolmo_init;
  s->advance = kolmo_advance;
  s->free = kolmo_free;
  s->channels = 2;
  s->height = c.m;
  s->width = c.m;
  s->dim = 2 * c.m * c.m;
  s->dt = c.interval;
  if (strcmp(preset, "kolmogorov") == 0) {
    s->stationary = 1;
    s->t_max = 1000000000L;
    s->param[P_KF_SPINUP] = KOLMO_SPINUP;
  } else {
    s->stationary = 0;
    s->t_max = KOLMO_T_MAX;
    s->param[P_KF_SPINUP] = 0;
  }
  return SB_OK;
}

int sim_create(sim **out, const char *preset, int N, sb_error *err) {
  *out = NULL;
  if (!preset) return sb_fail(err, SB_EINVAL, "no preset given (known: %s)", KNOWN);
  if (strcmp(preset, "linear-gauss") == 0) return lingauss_create(out, N, err);
  sim *s = calloc(1, sizeof *s);
  if (!s) return sb_fail(err, SB_ENOMEM, "out of memory");
  if (strcmp(preset, "kolmogorov") == 0 || strcmp(preset, "kolmogorov-t") == 0) {
    int rc = kolmo_create(s, preset, N, err);
    if (rc) {
      free(s);
      return rc;
    }
    snprintf(s->preset, sizeof s->preset, "%s", preset);
    /* per IF-RK4 step about 4 stages of 6 FFTs of 64 x 64 (5 n log2 n each),
     * at least 10 steps per interval */
    s->flops_step = 10 * 4 * 6 * 5.0 * 4096 * 12;
    s->flops_init = s->flops_step * s->param[P_KF_SPINUP] + 10.0 * s->dim;
    *out = s;
    return SB_OK;
  }
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
    return sb_fail(err, SB_EINVAL, "unknown preset '%s' (known: %s)", preset, KNOWN);
  }
  snprintf(s->preset, sizeof s->preset, "%s", preset);
  s->width = N;
  s->dim = N;
  /* one RK4 step: 4 stages of about 10 operations per node */
  s->flops_step = 40.0 * N * s->param[P_STEPS];
  s->flops_init = 40.0 * N * s->param[P_SPINUP] + 10.0 * N;
  s->step_vjp = l96_step_vjp;
  s->step_vjp_work = l96_rk4_vjp_work(N, (int)s->param[P_STEPS]);
  *out = s;
  return SB_OK;
}

int sim_state_shape(const sim *s, size_t shape[3]) {
  if (s->height == 1 && s->channels == 1) {
    shape[0] = (size_t)s->width;
    return 1;
  }
  if (s->height == 1) {
    shape[0] = (size_t)s->channels;
    shape[1] = (size_t)s->width;
    return 2;
  }
  shape[0] = (size_t)s->channels;
  shape[1] = (size_t)s->height;
  shape[2] = (size_t)s->width;
  return 3;
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
