/* train_pool.c: the training pool (see train_pool.h). */
#include "train/train_pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Slot `slot` gets a new trajectory: from s->init on stream `stream`, or
 * (cont = 1, chained pools) continuing the slot's previous trajectory one
 * interval after its last state. */
static int simulate_slot(train_pool *p, int slot, uint64_t stream, int cont, sb_error *err) {
  double *x = malloc(sizeof(double) * (size_t)p->N);
  if (!x) return sb_fail(err, SB_ENOMEM, "out of memory");
  float *dst = p->x + (size_t)slot * p->T * p->N;
  int rc = SB_OK;
  if (cont) {
    for (int n = 0; n < p->N; n++) x[n] = dst[(size_t)(p->T - 1) * p->N + n];
    rc = p->s->advance(p->s, x, 1, 1, err);
  } else {
    rc = p->s->init(p->s, x, 1, p->seed, stream, err);
  }
  for (int t = 0; !rc && t < p->T; t++) {
    if (t > 0) rc = p->s->advance(p->s, x, 1, 1, err);
    for (int n = 0; n < p->N; n++) dst[(size_t)t * p->N + n] = (float)x[n];
  }
  free(x);
  return rc;
}

/* Simulates n slots from next_slot on (round robin, n <= P so no slot
 * twice): each rank the slots whose stream index is its rank modulo the
 * job size, then every slot is broadcast from the rank that simulated it,
 * so every rank holds the same pool (alone: all slots, no broadcast). */
static int simulate_slots(train_pool *p, int n, int cont, sb_error *err) {
  const int rank = p->dist ? p->dist->rank : 0, size = p->dist ? p->dist->size : 1;
  const size_t per = (size_t)p->T * p->N;
  int rc = SB_OK;
  for (int i = 0; i < n && !rc; i++) {
    uint64_t stream = p->next_stream + (uint64_t)i;
    if ((int)(stream % (uint64_t)size) == rank) rc = simulate_slot(p, (p->next_slot + i) % p->P, stream, cont, err);
  }
  for (int i = 0; i < n && !rc && size > 1; i++) {
    uint64_t stream = p->next_stream + (uint64_t)i;
    rc = train_dist_bcast(p->dist, p->x + (size_t)((p->next_slot + i) % p->P) * per, sizeof(float) * per,
                          (int)(stream % (uint64_t)size), err);
  }
  p->next_stream += (uint64_t)n;
  p->next_slot = (p->next_slot + n) % p->P;
  return rc;
}

int train_pool_init(train_pool *p, const sim *s, int P, int W, int traj_len, uint64_t seed, const train_dist *dist,
                    sb_error *err) {
  memset(p, 0, sizeof *p);
  long T = s->t_max + 1 < 1024 ? s->t_max + 1 : 1024;
  if (traj_len > 0 && traj_len < T) T = traj_len;
  if (P < 1 || W < 1 || W > T) return sb_fail(err, SB_EINVAL, "pool: need P >= 1 and 1 <= W <= %ld", T);
  p->chain = traj_len > 0 && s->stationary;
  p->s = s;
  p->dist = dist;
  p->P = P;
  p->T = (int)T;
  p->N = s->dim;
  p->W = W;
  p->seed = seed;
  p->x = malloc(sizeof(float) * (size_t)P * p->T * p->N);
  if (!p->x) return sb_fail(err, SB_ENOMEM, "pool: out of memory for %d trajectories", P);
  return simulate_slots(p, P, 0, err);
}

int train_pool_refresh(train_pool *p, int R, sb_error *err) {
  int rc = SB_OK;
  for (int done = 0; done < R && !rc; done += p->P) rc = simulate_slots(p, R - done < p->P ? R - done : p->P, p->chain, err);
  return rc;
}

void train_pool_draw(const train_pool *p, rng *r, int B, float *out, long *t) {
  const size_t win = (size_t)p->W * p->N;
  for (int b = 0; b < B; b++) {
    int slot = (int)rng_below(r, (uint64_t)p->P);
    long end = p->W - 1 + (long)rng_below(r, (uint64_t)(p->T - p->W + 1));
    memcpy(out + (size_t)b * win, p->x + ((size_t)slot * p->T + (size_t)(end - p->W + 1)) * p->N, sizeof(float) * win);
    if (t) t[b] = end;
  }
}

void train_pool_moments(const train_pool *p, double *mean, double *std) {
  for (int n = 0; n < p->N; n++) {
    double s1 = 0, s2 = 0;
    long cnt = 0;
    for (int i = 0; i < p->P; i++)
      for (int t = p->W - 1; t < p->T; t++) {
        double v = p->x[((size_t)i * p->T + t) * p->N + n];
        s1 += v;
        s2 += v * v;
        cnt++;
      }
    mean[n] = s1 / cnt;
    double var = s2 / cnt - mean[n] * mean[n];
    std[n] = sqrt(var > 1e-12 ? var : 1e-12);
  }
}

void train_pool_free(train_pool *p) {
  free(p->x);
  memset(p, 0, sizeof *p);
}
