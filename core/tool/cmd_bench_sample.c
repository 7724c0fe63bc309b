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

static void usage(FILE *f) {
  fputs("usage: sbida bench sample --estimator SPEC [--preset P] [--N N] [--samples S] [--reps R] [--threads T]\n"
        "                          [--window W] [--time-index T] [--operator JSON] [--noise-std S] [--json]\n"
        "                          [--params JSON] [--baseline JSON]\n"
        "  Median seconds of one estimator call drawing S samples (default 64) for one window.\n"
        "  Operator and noise default to the ones a model was trained for, else identity and 1.\n"
        "  --N: the state size (baselines; models that run at any size, e.g. local-score).\n"
        "  --params is the estimator's params object, as in a request (e.g. '{\"sampler\":\"dpm2m\",\"steps\":12}').\n"
        "  --baseline times a second params object in the same run (reps interleaved, same window)\n"
        "  and prints the ratio of the medians, params / baseline (e.g. --baseline '{\"sampler\":\"pc\"}').\n",
        f);
}

int bench_sample(int argc, char **argv) {
  const char *spec = NULL, *preset = NULL, *op_text = NULL;
  const char *params_text = NULL, *base_text = NULL;
  long lN = 0, lS = 64, lreps = 3, lthreads = 1, lwindow = 10;
  int json = 0;
  double noise = 0; /* 0: the estimator's own noise, else 1 */
  long t_index = -1;
  const cli_flag flags[] = {
      {"estimator", CLI_STR, &spec, 0, 0, NULL},          {"preset", CLI_STR, &preset, 0, 0, NULL},
      {"operator", CLI_STR, &op_text, 0, 0, NULL},        {"samples", CLI_LONG, &lS, 1, 1000000, NULL},
      {"reps", CLI_LONG, &lreps, 1, 100, NULL},           {"threads", CLI_LONG, &lthreads, 1, SB_THREADS_MAX, NULL},
      {"N", CLI_LONG, &lN, 4, 1024, NULL},
      {"window", CLI_LONG, &lwindow, 1, 1024, NULL},      {"time-index", CLI_LONG, &t_index, 0, 1e9, NULL},
      {"noise-std", CLI_DOUBLE, &noise, 0, 1e300, NULL},  {"json", CLI_BOOL, &json, 0, 0, NULL},
      {"params", CLI_STR, &params_text, 0, 0, NULL},      {"baseline", CLI_STR, &base_text, 0, 0, NULL},
      {NULL, 0, NULL, 0, 0, NULL}};
  int first, rc0 = cli_parse(argc, argv, "sbida bench sample", flags, usage, 0, &first);
  if (rc0) return rc0 < 0 ? 0 : rc0;
  int S = (int)lS, reps = (int)lreps, threads = (int)lthreads, window = (int)lwindow;
  if (!spec || S < 1 || reps < 1 || reps > 100 || threads < 1 || window < 1 || noise < 0) {
    fprintf(stderr, "sbida bench sample: --estimator is required; samples, reps, threads, window, noise must be positive\n");
    return 2;
  }
  json_t *pj[2] = {NULL, NULL}; /* 0: --params, 1: --baseline */
  const char *texts[2] = {params_text, base_text};
  for (int k = 0; k < 2; k++) {
    json_error_t je;
    if (texts[k] && !json_is_object(pj[k] = json_loads(texts[k], 0, &je))) {
      fprintf(stderr, "sbida bench sample: --%s must be a JSON object: %s\n", k ? "baseline" : "params",
              pj[k] ? "not an object" : je.text);
      json_decref(pj[0]);
      json_decref(pj[1]);
      return 2;
    }
  }
  const int n_cfg = base_text ? 2 : 1;
  openblas_set_num_threads(1);
  sb_error err = {0};
  estimator *e = NULL;
  obs_op *op = NULL;
  obs_noise nz = {0};
  double *x = NULL, *y = NULL, *times = NULL;
  int status = 1;
  int is_model = catalog_is_model_file(spec);
  if (est_open(&e, spec, preset ? preset : (is_model ? NULL : "l96-sakov"), (int)lN, &err)) goto fail;
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
  times = malloc(sizeof(double) * reps * 2);
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
  est_problem p = {e->sim, op, &nz, window, t_index, y, NULL};
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < n_cfg; k++) { /* interleaved: both see the same machine load */
      est_options o = {.n_samples = S, .seed = (uint64_t)r, .threads = threads, .params = pj[k]};
      est_result res;
      double t0 = mono();
      if (est_sample(e, &p, &o, &res, &err)) goto fail;
      times[k * reps + r] = mono() - t0;
      est_result_free(&res);
    }
  for (int k = 0; k < n_cfg; k++) qsort(times + k * reps, reps, sizeof *times, cmp_d);
  const double med = times[reps / 2], base_med = times[reps + reps / 2];
  if (json) {
    printf("{\"bench\": \"sample\", \"estimator\": \"%s\", \"kind\": \"%s\", \"samples\": %d, \"threads\": %d, "
           "\"reps\": %d, \"N\": %d, \"window\": %d, \"params\": %s, \"median_s\": %.4f, \"min_s\": %.4f", e->name,
           e->kind, S, threads, reps, N, window, params_text ? params_text : "{}", med, times[0]);
    if (n_cfg > 1)
      printf(", \"baseline\": %s, \"baseline_median_s\": %.4f, \"ratio\": %.4f", base_text, base_med, med / base_med);
    printf("}\n");
  } else {
    printf("%s (%s)%s%s: %d samples in %.3f s (median of %d, %d thread%s)\n", e->name, e->kind,
           params_text ? " " : "", params_text ? params_text : "", S, med, reps, threads, threads > 1 ? "s" : "");
    if (n_cfg > 1)
      printf("  baseline %s: %.3f s; ratio %.3f (same run, interleaved)\n", base_text, base_med, med / base_med);
  }
  status = 0;
  goto done;
fail:
  fprintf(stderr, "sbida bench sample: %s\n", err.msg);
done:
  free(x); free(y); free(times);
  json_decref(pj[0]);
  json_decref(pj[1]);
  obs_free(op);
  obs_noise_free(&nz);
  est_free(e);
  return status;
}
