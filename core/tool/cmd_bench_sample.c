/* sbida bench sample: seconds for one estimator call (S samples of one window),
 * the cost a daemon request pays. Median of --reps calls on one simulated window. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tool/cmd.h"
#include "util/cli.h"
#include "catalog/catalog.h"

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int bench_sample(int argc, char **argv) {
  const char *spec = NULL, *preset = NULL, *op_text = NULL;
  int S = 64, reps = 3, threads = 1, window = 10, json = 0;
  double noise = 0; /* 0: the estimator's own noise, else 1 */
  long t_index = -1;
  enum { O_EST = 1, O_PRESET, O_OP, O_SAMPLES, O_REPS, O_THREADS, O_WINDOW, O_TINDEX, O_NOISE, O_JSON, O_HELP };
  static const struct option opts[] = {
      {"estimator", required_argument, NULL, O_EST},   {"preset", required_argument, NULL, O_PRESET},
      {"operator", required_argument, NULL, O_OP},     {"samples", required_argument, NULL, O_SAMPLES},
      {"reps", required_argument, NULL, O_REPS},       {"threads", required_argument, NULL, O_THREADS},
      {"window", required_argument, NULL, O_WINDOW},   {"time-index", required_argument, NULL, O_TINDEX},
      {"noise-std", required_argument, NULL, O_NOISE}, {"json", no_argument, NULL, O_JSON},
      {"help", no_argument, NULL, O_HELP},             {NULL, 0, NULL, 0}};
  sb_error cerr = {0};
  long lv = 0;
  int c, bad = 0;
  cli_reset();
  while (!bad && (c = cli_next(argc, argv, "", opts, &cerr)) != -1) {
    switch (c) {
    case O_HELP:
      printf("usage: sbida bench sample --estimator SPEC [--preset P] [--samples S] [--reps R] [--threads T]\n"
             "                          [--window W] [--time-index T] [--operator JSON] [--noise-std S] [--json]\n"
             "  Median seconds of one estimator call drawing S samples (default 64) for one window.\n"
             "  Operator and noise default to the ones a model was trained for, else identity and 1.\n");
      return 0;
    case O_JSON: json = 1; break;
    case O_EST: spec = optarg; break;
    case O_PRESET: preset = optarg; break;
    case O_OP: op_text = optarg; break;
    case O_SAMPLES: bad = cli_long(optarg, 1, 1000000, &lv), S = (int)lv; break;
    case O_REPS: bad = cli_long(optarg, 1, 100, &lv), reps = (int)lv; break;
    case O_THREADS: bad = cli_long(optarg, 1, SB_THREADS_MAX, &lv), threads = (int)lv; break;
    case O_WINDOW: bad = cli_long(optarg, 1, 1024, &lv), window = (int)lv; break;
    case O_TINDEX: bad = cli_long(optarg, 0, 1000000000L, &t_index); break;
    case O_NOISE: bad = cli_double(optarg, &noise) || noise < 0; break;
    default:
      fprintf(stderr, "sbida bench sample: %s (see --help)\n", cerr.msg);
      return 2;
    }
    if (bad) {
      fprintf(stderr, "sbida bench sample: %s: bad value '%s'\n", argv[optind - 1], optarg);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "sbida bench sample: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (!spec || S < 1 || reps < 1 || reps > 100 || threads < 1 || window < 1 || noise < 0) {
    fprintf(stderr, "sbida bench sample: --estimator is required; samples, reps, threads, window, noise must be positive\n");
    return 2;
  }
  openblas_set_num_threads(1);
  sb_error err = {0};
  estimator *e = NULL;
  obs_op *op = NULL;
  obs_noise nz = {0};
  double *x = NULL, *y = NULL, *times = NULL;
  int status = 1;
  int is_model = catalog_is_model_file(spec);
  if (est_open(&e, spec, preset ? preset : (is_model ? NULL : "l96-sakov"), 0, &err)) goto fail;
  if (e->window > 0) window = e->window;
  if (t_index < 0) t_index = e->sim->stationary ? window - 1 : 500;
  if (!op_text && e->fixed_op) { /* the operator the model was trained for */
    json_t *j = obs_to_json(e->fixed_op);
    int rc = obs_from_json(&op, j, e->sim->channels, e->sim->height, e->sim->width, &err);
    json_decref(j);
    if (rc) goto fail;
  } else if (obs_from_string(&op, op_text ? op_text : "{\"type\":\"identity\"}", e->sim->channels, e->sim->height,
                             e->sim->width, &err)) {
    goto fail;
  }
  if (noise == 0 && e->fixed_noise && e->fixed_noise->n == op->n_obs) {
    json_t *j = obs_noise_to_json(e->fixed_noise);
    int rc = obs_noise_from_json(&nz, j, op->n_obs, &err);
    json_decref(j);
    if (rc) goto fail;
  } else if (obs_noise_scalar(&nz, noise > 0 ? noise : 1.0, op->n_obs, &err)) {
    goto fail;
  }
  int N = e->sim->dim;
  x = malloc(sizeof(double) * N);
  y = malloc(sizeof(double) * (size_t)window * op->n_obs);
  times = malloc(sizeof(double) * reps);
  if (!x || !y || !times) {
    sb_fail(&err, SB_ENOMEM, "out of memory");
    goto fail;
  }
  if (sim_sample_at(e->sim, x, 1, t_index - window + 1, 42, 0, &err)) goto fail;
  for (int w = 0; w < window; w++) {
    if (w && e->sim->advance(e->sim, x, 1, 1, &err)) goto fail;
    obs_apply(op, x, y + (size_t)w * op->n_obs, 1);
  }
  obs_add_noise(&nz, y, window, 43, 0);
  est_problem p = {e->sim, op, &nz, window, t_index, y};
  for (int r = 0; r < reps; r++) {
    est_options o = {.n_samples = S, .seed = (uint64_t)r, .threads = threads};
    est_result res;
    double t0 = mono();
    if (est_sample(e, &p, &o, &res, &err)) goto fail;
    times[r] = mono() - t0;
    est_result_free(&res);
  }
  qsort(times, reps, sizeof *times, cmp_d);
  if (json)
    printf("{\"bench\": \"sample\", \"estimator\": \"%s\", \"kind\": \"%s\", \"samples\": %d, \"threads\": %d, "
           "\"reps\": %d, \"median_s\": %.4f, \"min_s\": %.4f}\n", e->name, e->kind, S, threads, reps, times[reps / 2], times[0]);
  else
    printf("%s (%s): %d samples in %.3f s (median of %d, %d thread%s)\n", e->name, e->kind, S, times[reps / 2], reps,
           threads, threads > 1 ? "s" : "");
  status = 0;
  goto done;
fail:
  fprintf(stderr, "sbida bench sample: %s\n", err.msg);
done:
  free(x); free(y); free(times);
  obs_free(op);
  obs_noise_free(&nz);
  est_free(e);
  return status;
}
