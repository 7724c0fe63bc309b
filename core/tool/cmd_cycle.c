/* cmd_cycle.c: `sbida cycle`: an in-process analysis-forecast cycle
 * (eval_cycle.h) for research and tuning; no daemon. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "eval/eval_cycle.h"
#include "tool/cmd.h"
#include "util/cli.h"

static void cycle_usage(FILE *f) {
  fprintf(f,
          "usage: sbida cycle --estimator NAME|FILE [flags]\n\n"
          "Cycles an estimator in process: a truth run of its system, an observation at every\n"
          "step, and at each cycle t the window of the last W observations analysed with a\n"
          "background for its first state x_{t-W+1}: the analysis samples of cycle t-W\n"
          "advanced one step (no observation is used twice; the first W cycles start from\n"
          "climatology). With --window 1 and an ETKF this is the classical cycled ETKF (the\n"
          "ensemble is the S samples). Prints the RMSE of the sample mean against the truth,\n"
          "the spread (RMS of the sample std), spread/RMSE and CRPS, averaged over the cycles\n"
          "after spin-up, the seconds per cycle, then a JSON summary. docs/cycling.md.\n\n"
          "  --estimator SPEC    etkf, letkf (with --preset), a served name such as l96-sakov-etkf,\n"
          "                      or a model file (composed-score, local-score) (required)\n"
          "  --preset NAME       system of a baseline (default l96-sakov)\n"
          "  --N N               state size (baselines; local-score models: any N they serve)\n"
          "  --operator JSON     observation operator (default '{\"type\":\"identity\"}')\n"
          "  --noise-std S       observation noise std, > 0 (default 1.0)\n"
          "  --window W          observations per analysis, 1..1024 (default 1, or the model's window)\n"
          "  --cycles C          analyses (default 1000)\n"
          "  --spinup K          first cycles left out of the averages (default 100, < C)\n"
          "  --samples S         samples (ensemble members) per analysis, >= 2 (default 64)\n"
          "  --seed N            seed of the truth, the observations and the estimator (default 1)\n"
          "  --params JSON       estimator parameters, e.g. '{\"inflation\":1.02}', or for score models\n"
          "                      '{\"sampler\":\"pc\",\"steps\":64,\"gamma\":0.1}' (docs/cycling.md)\n"
          "  --threads T         worker threads inside each analysis, 1..256 (default 1)\n"
          "  --no-background     every window from climatology (the comparison without cycling)\n"
          "  --jsonl FILE        one JSON line per cycle (cycle, t, background, rmse, spread, crps, seconds)\n"
          "  --window-stats      add to each --jsonl line window_rmse and window_spread (per window\n"
          "                      position, oldest first) and background_rmse, background_spread (the\n"
          "                      background's members at the window's first state; null without one)\n"
          "  --json FILE         write the summary JSON there instead of stdout\n"
          "  --quiet             no progress line on a terminal\n"
          "  --help              this text\n");
}

static int bad(const char *msg, const char *val) {
  fprintf(stderr, "sbida cycle: %s%s%s%s (see sbida cycle --help)\n", msg, val ? " '" : "", val ? val : "",
          val ? "'" : "");
  return 2;
}

typedef struct cycle_out {
  FILE *jsonl;
  int progress, cycles, window;
  double rmse_sum;
  int n;
} cycle_out;

static void on_cycle(void *ctx, const eval_cycle_step *s) {
  cycle_out *o = ctx;
  if (o->jsonl) {
    fprintf(o->jsonl, "{\"cycle\":%d,\"t\":%ld,\"background\":%s,\"rmse\":%.6g,\"spread\":%.6g,\"crps\":%.6g,"
            "\"seconds\":%.6g", s->cycle, s->t, s->background ? "true" : "false", s->rmse, s->spread, s->crps,
            s->seconds);
    if (s->window_rmse) {
      fputs(",\"window_rmse\":[", o->jsonl);
      for (int w = 0; w < o->window; w++) fprintf(o->jsonl, "%s%.6g", w ? "," : "", s->window_rmse[w]);
      fputs("],\"window_spread\":[", o->jsonl);
      for (int w = 0; w < o->window; w++) fprintf(o->jsonl, "%s%.6g", w ? "," : "", s->window_spread[w]);
      if (s->background)
        fprintf(o->jsonl, "],\"background_rmse\":%.6g,\"background_spread\":%.6g", s->background_rmse,
                s->background_spread);
      else
        fputs("],\"background_rmse\":null,\"background_spread\":null", o->jsonl);
    }
    fputs("}\n", o->jsonl);
    fflush(o->jsonl);
  }
  o->rmse_sum += s->rmse, o->n++;
  if (o->progress && (s->cycle % 10 == 9 || s->cycle + 1 == o->cycles)) {
    fprintf(stderr, "\rcycle %d/%d  rmse %.3f (running mean %.3f)   ", s->cycle + 1, o->cycles, s->rmse,
            o->rmse_sum / o->n);
    if (s->cycle + 1 == o->cycles) fprintf(stderr, "\r%*s\r", 60, "");
    fflush(stderr);
  }
}

/* "etkf", or a served baseline name "<preset>-<kind>" (l96-sakov-etkf): the
 * kind into kind, the preset into preset (when the name carries one). */
static void split_spec(const char *spec, char *kind, size_t nk, char *preset, size_t np) {
  snprintf(kind, nk, "%s", spec);
  preset[0] = 0;
  const char *kinds[3] = {"letkf", "etkf", "pf"};
  size_t len = strlen(spec);
  for (int i = 0; i < 3; i++) {
    size_t kl = strlen(kinds[i]);
    if (len > kl + 1 && spec[len - kl - 1] == '-' && !strcmp(spec + len - kl, kinds[i])) {
      snprintf(kind, nk, "%s", kinds[i]);
      snprintf(preset, np, "%.*s", (int)(len - kl - 1), spec);
      return;
    }
  }
}

int cmd_cycle(int argc, char **argv) {
  const char *spec = NULL, *preset = NULL, *op_text = "{\"type\":\"identity\"}", *params_text = NULL;
  const char *jsonl_path = NULL, *json_path = NULL;
  long N = 0, window = 1, cycles = 1000, spinup = 100, samples = 64, threads = 1, seed = 1;
  double noise = 1.0;
  int quiet = 0, window_given = 0, no_bg = 0, window_stats = 0;
  const cli_flag flags[] = {
      {"estimator", CLI_STR, &spec, 0, 0, NULL},       {"preset", CLI_STR, &preset, 0, 0, NULL},
      {"operator", CLI_STR, &op_text, 0, 0, NULL},     {"params", CLI_STR, &params_text, 0, 0, NULL},
      {"jsonl", CLI_STR, &jsonl_path, 0, 0, NULL},     {"json", CLI_STR, &json_path, 0, 0, NULL},
      {"N", CLI_LONG, &N, 4, 1024, NULL},              {"window", CLI_LONG, &window, 1, 1024, &window_given},
      {"cycles", CLI_LONG, &cycles, 1, 10000000, NULL}, {"spinup", CLI_LONG, &spinup, 0, 10000000, NULL},
      {"samples", CLI_LONG, &samples, 2, 100000, NULL}, {"threads", CLI_LONG, &threads, 1, 256, NULL},
      {"seed", CLI_LONG, &seed, 0, 9e18, NULL},        {"noise-std", CLI_DOUBLE, &noise, 0, 1e300, NULL},
      {"no-background", CLI_BOOL, &no_bg, 0, 0, NULL}, {"quiet", CLI_BOOL, &quiet, 0, 0, NULL},
      {"window-stats", CLI_BOOL, &window_stats, 0, 0, NULL},
      {NULL, 0, NULL, 0, 0, NULL}};
  int first, rc0 = cli_parse(argc, argv, "sbida cycle", flags, cycle_usage, 0, &first);
  if (rc0) return rc0 < 0 ? 0 : rc0;
  if (!spec) return bad("--estimator is required", NULL);
  if (!(noise > 0)) return bad("--noise-std must be a positive number", NULL);
  if (spinup >= cycles) return bad("--spinup must be smaller than --cycles", NULL);
  json_t *params = NULL;
  if (params_text) {
    json_error_t je;
    params = json_loads(params_text, 0, &je);
    if (!params || !json_is_object(params)) {
      json_decref(params);
      fprintf(stderr, "sbida cycle: --params must be a JSON object: %s (see sbida cycle --help)\n",
              params ? "not an object" : je.text);
      return 2;
    }
  }
  char kind[128], spec_preset[128];
  split_spec(spec, kind, sizeof kind, spec_preset, sizeof spec_preset);
  int is_model = catalog_is_model_file(spec);
  if (is_model) snprintf(kind, sizeof kind, "%s", spec);
  if (spec_preset[0] && preset && strcmp(preset, spec_preset)) {
    json_decref(params);
    return bad("--preset contradicts the estimator's name", spec);
  }
  const char *use_preset = spec_preset[0] ? spec_preset : preset ? preset : is_model ? NULL : "l96-sakov";
  sb_error err = {0};
  estimator *e = NULL;
  obs_op *op = NULL;
  obs_noise nz = {0};
  FILE *jl = NULL;
  int status = 1, rc;
  if ((rc = est_open(&e, kind, use_preset, (int)N, &err))) {
    fprintf(stderr, "sbida cycle: %s\n", err.msg);
    status = rc == SB_EINVAL || rc == SB_ERANGE ? 2 : 1;
    goto done;
  }
  if (!window_given && e->window > 0) window = e->window;
  if (!window_given && e->window == 0 && e->window_min > 1) window = e->window_min;
  if ((rc = obs_from_string(&op, op_text, e->sim->channels, e->sim->height, e->sim->width, &err))) {
    fprintf(stderr, "sbida cycle: --operator: %s\n", err.msg);
    status = 2;
    goto done;
  }
  if ((rc = obs_noise_scalar(&nz, noise, op->n_obs, &err))) {
    fprintf(stderr, "sbida cycle: --noise-std: %s\n", err.msg);
    status = 2;
    goto done;
  }
  if (jsonl_path && !(jl = fopen(jsonl_path, "w"))) {
    fprintf(stderr, "sbida cycle: cannot write %s: %s\n", jsonl_path, strerror(errno));
    goto done;
  }
  if (window_stats && !jl) {
    status = bad("--window-stats needs --jsonl (the statistics are per cycle)", NULL);
    goto done;
  }
  cycle_out co = {jl, !quiet && isatty(2), (int)cycles, (int)window, 0, 0};
  eval_cycle_config cfg = {(int)window, (int)cycles, (int)spinup, (int)samples, (int)threads, (uint64_t)seed,
                           params, no_bg, NULL, on_cycle, &co, window_stats};
  eval_cycle_summary sum;
  if ((rc = eval_cycle_run(e, op, &nz, &cfg, &sum, &err))) {
    fprintf(stderr, "sbida cycle: %s\n", err.msg);
    status = rc == SB_EINVAL || rc == SB_ERANGE ? 2 : 1;
    goto done;
  }
  printf("%s: W=%ld, %ld cycles (%d after spin-up), %ld samples: rmse %.4f  spread %.4f  spread/rmse %.3f  "
         "crps %.4f  max rmse %.3f  %.3f s/cycle\n",
         e->name, window, cycles, sum.counted, samples, sum.rmse, sum.spread, sum.spread_skill, sum.crps, sum.rmse_max,
         sum.seconds_per_cycle);
  json_t *j = eval_cycle_to_json(&sum, e, op, &nz, &cfg);
  if (!j) {
    fprintf(stderr, "sbida cycle: out of memory\n");
    goto done;
  }
  if (json_path) {
    if (json_dump_file(j, json_path, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) != 0) {
      fprintf(stderr, "sbida cycle: cannot write %s: %s\n", json_path, strerror(errno));
      json_decref(j);
      goto done;
    }
  } else {
    json_dumpf(j, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
  }
  json_decref(j);
  status = 0;
done:
  if (jl && fclose(jl) != 0 && status == 0) {
    fprintf(stderr, "sbida cycle: cannot write %s: %s\n", jsonl_path, strerror(errno));
    status = 1;
  }
  obs_noise_free(&nz);
  obs_free(op);
  est_free(e);
  json_decref(params);
  return status;
}
