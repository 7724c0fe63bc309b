/* cmd_eval.c: `sbida eval`: scores one estimator on a seeded test set. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tool/cmd.h"
#include "util/cli.h"
#include "util/version.h"
#include "catalog/catalog.h"
#include "eval/eval.h"


static void eval_usage(FILE *f) {
  fprintf(f,
          "usage: sbida eval --estimator etkf|letkf|pf|MODEL.safetensors [flags]\n\n"
          "Scores an estimator on a seeded test set of windows (truth + noisy observations).\n"
          "The test set depends only on the problem flags and --seed, never on the estimator,\n"
          "so two estimators evaluated with the same flags see the very same cases.\n\n"
          "problem:\n"
          "  --estimator SPEC    etkf, letkf, pf (baselines) or a model file (required)\n"
          "  --preset NAME       l96-sakov (default for baselines), l96-thesis, kolmogorov or kolmogorov-t\n"
          "                      (2 x 32 x 32); a model file brings its own\n"
          "  --N N               state size (default: the preset's, 40 for l96-sakov, 32 for l96-thesis;\n"
          "                      the Kolmogorov presets have a fixed state)\n"
          "  --window W          observations per window, 1..1024 (default 10, or the model's window)\n"
          "  --operator JSON     observation operator (default '{\"type\":\"identity\"}')\n"
          "  --noise-std S       observation noise std, > 0 (default 1.0)\n"
          "  --time-index T      time index of the window's last state (default W-1)\n"
          "  --time-range A:B    draw each case's time index uniformly in A..B instead\n"
          "test set and sampling:\n"
          "  --cases C           number of test windows (default 300)\n"
          "  --samples S         posterior samples per case (default 100)\n"
          "  --seed N            seed of the test set and of the estimator (default 1)\n"
          "  --first-case F      run cases F..F+C-1 of the seed's test set (default 0): a long\n"
          "                      evaluation split into parts (each case is the same as in one\n"
          "                      run from 0; pool the parts with tests/eval/combine_evals.py)\n"
          "  --params JSON       estimator parameters, e.g. '{\"inflation\":1.02}' (etkf/letkf:\n"
          "                      inflation, ensemble_size, radius; pf: particles, jitter,\n"
          "                      resample_threshold; score models: sampler, steps, corrections,\n"
          "                      tau_l, schedule, rho, sigma_max, gamma, e.g.\n"
          "                      '{\"sampler\":\"dpm2m\",\"steps\":12}', docs/samplers.md)\n"
          "  --threads T         worker threads across cases, 1..256 (default 1); the result\n"
          "                      is identical for any T\n"
          "output:\n"
          "  --json FILE         write the result as JSON (schema/eval.schema.json); without it\n"
          "                      the JSON goes to stdout\n"
          "  --svg-dir DIR       write coverage.svg, ranks.svg and example.svg into DIR\n"
          "  --plots-dir DIR     2D states: per case caseNN-vorticity.png (vorticity of truth, posterior\n"
          "                      mean, posterior std, error) and caseNN-spectrum.svg into DIR\n"
          "  --plot-cases N      how many cases --plots-dir draws (default 4, the first N)\n"
          "  --quiet             no progress line on a terminal\n"
          "  --help              this text\n");
}

typedef struct progress_state {
  int enabled;
  double t0, last;
  const char *name;
} progress_state;

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void show_progress(void *ctx, int done, int total) {
  progress_state *p = ctx;
  if (!p->enabled) return;
  double t = mono();
  if (done < total && t - p->last < 0.1) return;
  p->last = t;
  double el = t - p->t0, eta = done > 0 ? el * (total - done) / done : 0;
  fprintf(stderr, "\r%s: %d/%d cases %3.0f%%  %.1fs elapsed, ~%.0fs left   ", p->name, done, total,
          100.0 * done / total, el, eta);
  if (done == total) fprintf(stderr, "\r%*s\r", 70, "");
  fflush(stderr);
}

static int bad(const char *msg, const char *val) {
  fprintf(stderr, "sbida eval: %s%s%s%s (see sbida eval --help)\n", msg, val ? " '" : "", val ? val : "",
          val ? "'" : "");
  return 2;
}

int cmd_eval(int argc, char **argv) {
  const char *spec = NULL, *preset = NULL, *op_text = "{\"type\":\"identity\"}", *params_text = NULL;
  const char *json_path = NULL, *svg_dir = NULL, *plots_dir = NULL;
  long plot_cases = 4;
  long N = 0, window = 10, cases = 300, samples = 100, threads = 1, t_index = -1, t_lo = -1, t_hi = -1, seed = 1;
  long first_case = 0;
  double noise = 1.0;
  int quiet = 0, window_given = 0;
  const char *trange = NULL;
  const cli_flag flags[] = {
      {"estimator", CLI_STR, &spec, 0, 0, NULL},      {"preset", CLI_STR, &preset, 0, 0, NULL},
      {"operator", CLI_STR, &op_text, 0, 0, NULL},    {"params", CLI_STR, &params_text, 0, 0, NULL},
      {"json", CLI_STR, &json_path, 0, 0, NULL},      {"svg-dir", CLI_STR, &svg_dir, 0, 0, NULL},
      {"N", CLI_LONG, &N, 4, 1024, NULL},             {"window", CLI_LONG, &window, 1, 1024, &window_given},
      {"cases", CLI_LONG, &cases, 1, 10000000, NULL}, {"samples", CLI_LONG, &samples, 1, 1000000, NULL},
      {"first-case", CLI_LONG, &first_case, 0, 100000000000, NULL},
      {"threads", CLI_LONG, &threads, 1, 256, NULL},  {"seed", CLI_LONG, &seed, 0, 9e18, NULL},
      {"time-index", CLI_LONG, &t_index, 0, 1e9, NULL}, {"time-range", CLI_STR, &trange, 0, 0, NULL},
      {"noise-std", CLI_DOUBLE, &noise, 0, 1e300, NULL}, {"quiet", CLI_BOOL, &quiet, 0, 0, NULL},
      {"plots-dir", CLI_STR, &plots_dir, 0, 0, NULL},  {"plot-cases", CLI_LONG, &plot_cases, 1, 1000, NULL},
      {NULL, 0, NULL, 0, 0, NULL}};
  int first, rc0 = cli_parse(argc, argv, "sbida eval", flags, eval_usage, 0, &first);
  if (rc0) return rc0 < 0 ? 0 : rc0;
  if (!(noise > 0)) return bad("--noise-std must be a positive number", NULL);
  if (trange) {
    char *end;
    errno = 0;
    t_lo = strtol(trange, &end, 10);
    if (errno || end == trange || *end != ':' || t_lo < 0) return bad("--time-range must be A:B, got", trange);
    const char *b = end + 1;
    t_hi = strtol(b, &end, 10);
    if (errno || end == b || *end || t_hi < t_lo) return bad("--time-range must be A:B with A <= B, got", trange);
  }
  if (!spec) return bad("--estimator is required", NULL);
  if (t_index >= 0 && t_lo >= 0) return bad("give either --time-index or --time-range, not both", NULL);

  json_t *params = NULL;
  if (params_text) {
    json_error_t je;
    params = json_loads(params_text, 0, &je);
    if (!params || !json_is_object(params)) {
      json_decref(params);
      fprintf(stderr, "sbida eval: --params must be a JSON object: %s (see sbida eval --help)\n",
              params ? "not an object" : je.text);
      return 2;
    }
  }
  sb_error err = {0};
  estimator *e = NULL;
  obs_op *op = NULL;
  obs_noise nz = {0};
  eval_cases cs = {0};
  eval_summary sum;
  memset(&sum, 0, sizeof sum);
  int status = 1, rc;
  /* a model file knows its preset and window; baselines default to l96-sakov */
  int is_model = catalog_is_model_file(spec);
  if ((rc = est_open(&e, spec, preset ? preset : (is_model ? NULL : "l96-sakov"), (int)N, &err))) {
    fprintf(stderr, "sbida eval: %s\n", err.msg);
    status = rc == SB_EINVAL || rc == SB_ERANGE ? 2 : 1;
    goto done;
  }
  if (!window_given && e->window > 0) window = e->window;
  if (plots_dir && (e->sim->channels != 2 || e->sim->height < 3)) {
    fprintf(stderr, "sbida eval: --plots-dir draws 2D velocity fields (the kolmogorov presets); %s has a %d x %d x %d "
            "state (use --svg-dir)\n", e->sim->preset, e->sim->channels, e->sim->height, e->sim->width);
    status = 2;
    goto done;
  }
  if ((rc = obs_from_string(&op, op_text, e->sim->channels, e->sim->height, e->sim->width, &err))) {
    fprintf(stderr, "sbida eval: --operator: %s\n", err.msg);
    status = 2;
    goto done;
  }
  if ((rc = obs_noise_scalar(&nz, noise, op->n_obs, &err))) {
    fprintf(stderr, "sbida eval: --noise-std: %s\n", err.msg);
    status = 2;
    goto done;
  }
  if (t_lo < 0) t_lo = t_hi = t_index >= 0 ? t_index : window - 1;
  if ((rc = eval_make_cases_at(&cs, e->sim, op, &nz, (int)window, (int)cases, first_case, t_lo, t_hi, (uint64_t)seed,
                               &err))) {
    fprintf(stderr, "sbida eval: %s\n", err.msg);
    status = rc == SB_ERANGE || rc == SB_EINVAL ? 2 : 1;
    goto done;
  }
  /* cases run on their own threads: keep OpenBLAS from adding threads of its own */
  if (threads > 1) openblas_set_num_threads(1);
  progress_state ps = {.enabled = !quiet && isatty(2), .t0 = mono(), .last = 0, .name = e->name};
  eval_config cfg = {.n_samples = (int)samples, .threads = (int)threads, .seed = (uint64_t)seed, .params = params,
                     .progress = show_progress, .progress_ctx = &ps, .plot_cases = plots_dir ? (int)plot_cases : 0};
  if ((rc = eval_run(e, &cs, op, &nz, &cfg, &sum, &err))) {
    fprintf(stderr, "sbida eval: %s\n", err.msg);
    status = rc == SB_EINVAL || rc == SB_ERANGE ? 2 : 1;
    goto done;
  }
  json_t *j = eval_to_json(&sum, e, op, &nz, t_lo, t_hi, (uint64_t)seed, params, SBIDA_VERSION);
  if (j && first_case > 0 && json_object_set_new(j, "first_case", json_integer(first_case))) { /* absent: 0 */
    json_decref(j);
    j = NULL;
  }
  if (!j) {
    fprintf(stderr, "sbida eval: out of memory while writing the result\n");
    goto done;
  }
  if (json_path) {
    if (json_dump_file(j, json_path, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) != 0) {
      fprintf(stderr, "sbida eval: cannot write %s: %s\n", json_path, strerror(errno));
      json_decref(j);
      goto done;
    }
    /* rank p is a test over cases x components pooled ranks: with thousands of them it is
     * tiny for any visible deviation, so print the size (coverage error) first and say so */
    printf("%s: rmse %.4f  spread %.4f  crps %.4f  coverage max err %.3f  (%d cases x %d samples, "
           "%.2f s, %.0f samples/s) -> %s\n"
           "  rank-uniformity p %.3g: a test over all pooled ranks; with this many it flags even small "
           "deviations, so judge calibration by the coverage error above (docs/evaluation.md)\n",
           e->name, sum.rmse, sum.spread, sum.crps, sum.coverage_max_abs_error, sum.n_cases, sum.n_samples,
           sum.seconds, sum.samples_per_second, json_path, sum.rank_p);
    const json_t *rt = json_object_get(sum.diagnostics, "dynamics_retried");
    if (json_array_size(rt)) { /* to stderr: a caveat on the numbers above */
      fflush(stdout);
      fprintf(stderr, "  note: %zu case(s) diverged and ran again with a larger dynamics_gamma (params "
              "dynamics_retries; docs/local-score.md):", json_array_size(rt));
      size_t i;
      const json_t *v;
      json_array_foreach(rt, i, v)
          fprintf(stderr, " case %lld (%g)", (long long)json_integer_value(json_object_get(v, "case")),
                  json_number_value(json_object_get(v, "dynamics_gamma")));
      fputc('\n', stderr);
    }
  } else {
    json_dumpf(j, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
  }
  json_decref(j);
  if (svg_dir && (rc = eval_write_svgs(&sum, op, svg_dir, e->name, &err))) {
    fprintf(stderr, "sbida eval: %s\n", err.msg);
    goto done;
  }
  if (plots_dir && (rc = eval_write_plots(&sum, plots_dir, e->name, &err))) {
    fprintf(stderr, "sbida eval: %s\n", err.msg);
    goto done;
  }
  status = 0;
done:
  eval_summary_free(&sum);
  eval_cases_free(&cs);
  obs_noise_free(&nz);
  obs_free(op);
  est_free(e);
  json_decref(params);
  return status;
}
