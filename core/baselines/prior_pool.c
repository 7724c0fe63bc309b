/* prior_pool.c: the baselines' prior ensemble at the window's first time, and
 * the climatology pool that makes it cheap for the Kolmogorov flow.
 *
 * A stationary Kolmogorov draw costs 64 intervals of spin-up (about 0.3 s), so
 * an ensemble of 32 straight from s->init costs ~9 s per window, 80% of a W = 5
 * LETKF case (docs/kolmogorov.md, "Climatology pool"). For that preset the
 * members are instead K distinct states of a pool drawn once per process:
 * POOL_TRAJ trajectories from s->init (seed POOL_SEED, streams 0..), each
 * kept at POOL_PER states POOL_GAP intervals apart, i.e. POOL_TRAJ * POOL_PER
 * climatological states (correlated within a trajectory, 0.8 time units
 * apart). Which states a window gets depends only on its seed (stream 2^41),
 * so results do not depend on threads. With SBIDA_POOL_DIR set, the pool is
 * read from / written to DIR/<preset>-pool-64x16.npy (float64, so a cached pool
 * gives bit-identical results to a fresh one). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baselines/baselines.h"
#include "util/npy.h"
#include "util/rng.h"

enum { POOL_GAP = 4 };
#define POOL_SEED 0xC11A7Eu

static int POOL_TRAJ = 64, POOL_PER = 16, POOL_N = 64 * 16; /* est_prior_pool_reset changes them (tests) */

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static double *pool_x;      /* [POOL_N][dim], built once (per preset asking) */
static char pool_preset[32];
static int pool_dim;

int est_prior_uses_pool(const sim *s) { return s->stationary && !strcmp(s->system, "kolmogorov"); }

static size_t est_chunk(double flops_per_member) {
  double c = flops_per_member > 0 ? EST_CHUNK_FLOPS / flops_per_member : 1e9;
  return c < 1 ? 1 : c > 1e9 ? (size_t)1e9 : (size_t)c;
}

/* s->init for members [0, K) of X in cancellable chunks (member k from stream k) */
static int prior_init_chunked(const sim *s, double *X, size_t K, uint64_t seed, const sb_cancel *cancel,
                              sb_error *err) {
  size_t chunk = est_chunk(s->flops_init), n = (size_t)s->dim;
  for (size_t k = 0; k < K; k += chunk) {
    if (sb_cancelled(cancel)) return sb_fail(err, SB_ECANCEL, "cancelled");
    size_t b = K - k < chunk ? K - k : chunk;
    int rc = s->init(s, X + k * n, b, seed, k, err);
    if (rc) return rc;
  }
  return SB_OK;
}

static int advance_chunked(const sim *s, double *X, size_t K, int intervals, const sb_cancel *cancel,
                           sb_error *err) {
  size_t chunk = est_chunk(intervals * s->flops_step), n = (size_t)s->dim;
  for (size_t k = 0; k < K; k += chunk) {
    if (sb_cancelled(cancel)) return sb_fail(err, SB_ECANCEL, "cancelled");
    size_t b = K - k < chunk ? K - k : chunk;
    int rc = s->advance(s, X + k * n, b, intervals, err);
    if (rc) return rc;
  }
  return SB_OK;
}

int est_advance_members(const sim *s, double *X, int K, const sb_cancel *cancel, sb_error *err) {
  return advance_chunked(s, X, (size_t)K, 1, cancel, err);
}

static int pool_build(const sim *s, double *x, const sb_cancel *cancel, sb_error *err) {
  size_t n = (size_t)s->dim;
  double *traj = malloc(sizeof(double) * POOL_TRAJ * n);
  if (!traj) return sb_fail(err, SB_ENOMEM, "out of memory for the climatology pool");
  int rc = prior_init_chunked(s, traj, (size_t)POOL_TRAJ, POOL_SEED, cancel, err);
  for (int k = 0; !rc && k < POOL_PER; k++) {
    if (k > 0) rc = advance_chunked(s, traj, (size_t)POOL_TRAJ, POOL_GAP, cancel, err);
    for (int b = 0; !rc && b < POOL_TRAJ; b++)
      memcpy(x + ((size_t)b * POOL_PER + k) * n, traj + (size_t)b * n, sizeof(double) * n);
  }
  free(traj);
  return rc;
}

/* The pool for s, built (or read from SBIDA_POOL_DIR) on first use; call
 * with pool_lock held (the pool may be replaced when another preset asks). */
static int pool_get(const sim *s, const double **out, const sb_cancel *cancel, sb_error *err) {
  int rc = SB_OK;
  if (pool_x && (strcmp(pool_preset, s->preset) || pool_dim != s->dim)) {
    free(pool_x); /* another preset: only one pool is kept */
    pool_x = NULL;
  }
  if (!pool_x) {
    size_t n = (size_t)s->dim, shape[2] = {(size_t)POOL_N, n};
    double *x = malloc(sizeof(double) * POOL_N * n);
    if (!x) rc = sb_fail(err, SB_ENOMEM, "out of memory for the climatology pool");
    const char *dir = getenv("SBIDA_POOL_DIR");
    char path[4096] = "";
    if (dir && *dir) snprintf(path, sizeof path, "%s/%s-pool-%dx%d.npy", dir, s->preset, POOL_TRAJ, POOL_PER);
    int loaded = 0;
    npy_array a;
    if (!rc && *path && !npy_read(path, &a, &(sb_error){0})) {
      if (a.dtype == NPY_F64 && a.ndim == 2 && a.shape[0] == (size_t)POOL_N && a.shape[1] == n) {
        memcpy(x, a.data, sizeof(double) * POOL_N * n);
        loaded = 1;
      }
      npy_free(&a);
    }
    if (!rc && !loaded) {
      rc = pool_build(s, x, cancel, err); /* a cancelled build keeps no pool: the next request builds it */
      if (!rc && *path) npy_write(path, NPY_F64, 2, shape, x, &(sb_error){0}); /* a cache: failure is harmless */
    }
    if (rc) {
      free(x);
    } else {
      pool_x = x;
      pool_dim = s->dim;
      snprintf(pool_preset, sizeof pool_preset, "%s", s->preset);
    }
  }
  *out = pool_x;
  return rc;
}

void est_prior_pool_reset(int traj, int per) {
  pthread_mutex_lock(&pool_lock);
  free(pool_x);
  pool_x = NULL;
  POOL_TRAJ = traj > 0 ? traj : 64;
  POOL_PER = per > 0 ? per : 16;
  POOL_N = POOL_TRAJ * POOL_PER;
  pthread_mutex_unlock(&pool_lock);
}

/* pool_lock, or SB_ECANCEL while another request builds the pool (up to ~30 s):
 * a waiting request stays cancellable */
static int pool_lock_cancellable(const sb_cancel *cancel, sb_error *err) {
  while (pthread_mutex_trylock(&pool_lock)) {
    if (sb_cancelled(cancel)) return sb_fail(err, SB_ECANCEL, "cancelled");
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  return SB_OK;
}

int est_prior_ensemble(const sim *s, double *X, int K, long t0, uint64_t seed, const sb_cancel *cancel,
                       sb_error *err) {
  if (!s->stationary) {
    /* time-varying: sim_sample_at(t0) in chunks of members (stream k for member k) */
    double per = s->flops_init + (double)t0 * s->flops_step;
    size_t chunk = est_chunk(per), n = (size_t)s->dim;
    for (size_t k = 0; k < (size_t)K; k += chunk) {
      if (sb_cancelled(cancel)) return sb_fail(err, SB_ECANCEL, "cancelled");
      size_t b = (size_t)K - k < chunk ? (size_t)K - k : chunk;
      int rc = sim_sample_at(s, X + k * n, b, t0, seed, k, err);
      if (rc) return rc;
    }
    return SB_OK;
  }
  if (!est_prior_uses_pool(s)) return prior_init_chunked(s, X, (size_t)K, seed, cancel, err);
  const double *pool;
  int lrc = pool_lock_cancellable(cancel, err);
  if (lrc) return lrc;
  int *perm = malloc(sizeof(int) * (size_t)POOL_N);
  int rc = perm ? pool_get(s, &pool, cancel, err) : sb_fail(err, SB_ENOMEM, "out of memory");
  if (rc) {
    pthread_mutex_unlock(&pool_lock);
    free(perm);
    return rc;
  }
  /* K distinct pool states (partial Fisher-Yates); with replacement beyond the pool */
  for (int i = 0; i < POOL_N; i++) perm[i] = i;
  rng r;
  rng_init(&r, seed, (uint64_t)1 << 41);
  size_t n = (size_t)s->dim;
  for (int i = 0; i < K; i++) {
    int pick;
    if (i < POOL_N) {
      int k = i + (int)rng_below(&r, (uint64_t)(POOL_N - i));
      int t = perm[i];
      perm[i] = perm[k];
      perm[k] = t;
      pick = perm[i];
    } else {
      pick = (int)rng_below(&r, POOL_N);
    }
    memcpy(X + (size_t)i * n, pool + (size_t)pick * n, sizeof(double) * n);
  }
  pthread_mutex_unlock(&pool_lock);
  free(perm);
  return SB_OK;
}
