/* score_pool.h: a pool of simulated trajectories that training draws windows
 * from, refreshed continuously with new simulations (fresh data every batch
 * at a fraction of the cost of simulating every window from scratch). */
#ifndef SB_SCORE_POOL_H
#define SB_SCORE_POOL_H

#include <stdint.h>

#include "rng.h"
#include "sim.h"

typedef struct score_pool {
  const sim *s;
  int P, T, N, W;    /* trajectories, states per trajectory (times 0..T-1), nodes, window */
  float *x;          /* [P][T][N] physical states */
  uint64_t seed, next_stream;
  int next_slot;     /* round-robin slot replaced next */
} score_pool;

/* Simulates P trajectories of T = min(t_max + 1, 1024) states. */
int score_pool_init(score_pool *p, const sim *s, int P, int W, uint64_t seed, sb_error *err);
/* Replaces R trajectories (round robin) by new simulations. */
int score_pool_refresh(score_pool *p, int R, sb_error *err);
/* Copies B random windows into out [B][W][N]; t[b] is the window's last time
 * index (W-1..T-1). */
void score_pool_draw(const score_pool *p, rng *r, int B, float *out, long *t);
/* Per-node mean and std over every stored state with time >= W-1. */
void score_pool_moments(const score_pool *p, double *mean, double *std);
void score_pool_free(score_pool *p);

#endif
