/* train_pool.h: a pool of simulated trajectories that training draws windows
 * from, refreshed continuously with new simulations (fresh data every batch
 * at a fraction of the cost of simulating every window from scratch). */
#ifndef SB_TRAIN_POOL_H
#define SB_TRAIN_POOL_H

#include <stdint.h>

#include "sim/sim.h"
#include "train/train_dist.h"
#include "util/rng.h"

typedef struct train_pool {
  const sim *s;
  int P, T, N, W;    /* trajectories, states per trajectory (times 0..T-1), nodes, window */
  float *x;          /* [P][T][N] physical states */
  uint64_t seed, next_stream;
  int next_slot;     /* round-robin slot replaced next */
  int chain;         /* 1: a refresh continues the slot's trajectory (no new spin-up) */
  const train_dist *dist; /* NULL or the processes that share the simulations */
} train_pool;

/* Simulates P trajectories of T = min(t_max + 1, 1024) states, or of
 * traj_len states when 0 < traj_len < that. For a stationary system with
 * traj_len set the pool is chained: a refresh continues the slot's
 * trajectory from its last state instead of drawing a new one from s->init,
 * so fresh windows cost one interval per state and no spin-up (the
 * Kolmogorov flow's s->init costs 64 intervals).
 * Trajectory k of the run (initial or refresh) uses random stream k of the
 * seed; with dist (NULL: alone) rank r simulates the trajectories with
 * k mod size = r and broadcasts them, so every rank holds the same pool, the
 * pool of a single process, whatever the job's size. */
int train_pool_init(train_pool *p, const sim *s, int P, int W, int traj_len, uint64_t seed, const train_dist *dist,
                    sb_error *err);
/* Replaces R trajectories (round robin) by new simulations (chained: their
 * continuations). A collective when dist is set: every rank calls it. */
int train_pool_refresh(train_pool *p, int R, sb_error *err);
/* Copies B random windows into out [B][W][N]; t[b] is the window's last time
 * index (W-1..T-1). */
void train_pool_draw(const train_pool *p, rng *r, int B, float *out, long *t);
/* Per-node mean and std over every stored state with time >= W-1. */
void train_pool_moments(const train_pool *p, double *mean, double *std);
void train_pool_free(train_pool *p);

#endif
