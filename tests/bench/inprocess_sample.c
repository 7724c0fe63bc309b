/* inprocess_sample.c: the sampling of tests/bench/daemon.sh's synchronous
 * assimilation, called in-process (no HTTP, no database): the baseline the
 * daemon's end-to-end latency is compared with. Built by daemon.sh.
 *   inprocess_sample ESTIMATOR PRESET W N_SAMPLES REPEATS  -> median ms */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "catalog/catalog.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: inprocess_sample KIND PRESET W N_SAMPLES REPEATS\n");
    return 2;
  }
  int W = atoi(argv[3]), S = atoi(argv[4]), R = atoi(argv[5]);
  sb_error err = {0};
  estimator *e;
  if (est_open(&e, argv[1], argv[2], 0, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  obs_op *op;
  obs_noise nz;
  if (obs_from_string(&op, "{\"type\":\"identity\"}", e->sim->channels, e->sim->height, e->sim->width, &err) ||
      obs_noise_scalar(&nz, 1.0, op->n_obs, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  /* the same window daemon.sh sends: row w, component i = 0.1 * w + 0.01 * i */
  double *y = malloc((size_t)W * op->n_obs * sizeof *y);
  for (int w = 0; w < W; w++)
    for (int i = 0; i < op->n_obs; i++) y[(size_t)w * op->n_obs + i] = 0.1 * w + 0.01 * i;
  est_problem p = {e->sim, op, &nz, W, W - 1, y, NULL};
  double *t = malloc((size_t)R * sizeof *t);
  for (int r = 0; r < R; r++) {
    est_options o = {.n_samples = S, .seed = (uint64_t)r, .threads = 1};
    est_result res;
    double t0 = now_ms();
    if (est_sample(e, &p, &o, &res, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    t[r] = now_ms() - t0;
    est_result_free(&res);
  }
  qsort(t, (size_t)R, sizeof *t, cmp);
  printf("%.3f\n", t[R / 2]);
  free(t);
  free(y);
  obs_free(op);
  obs_noise_free(&nz);
  est_free(e);
  return 0;
}
