/* sbida model: shows a model file's metadata, or changes its default sampler
 * settings (the weights are untouched). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "est.h"
#include "score_model.h"

static void usage(FILE *f) {
  fprintf(f, "usage: sbida model PATH.safetensors                 print the estimator's metadata as JSON\n"
             "       sbida model PATH.safetensors --set-sampler JSON\n"
             "             change the default sampler settings stored in the file, e.g.\n"
             "             '{\"steps\": 64, \"corrections\": 1, \"tau_l\": 1.0, \"gamma\": 0.01}'\n");
}

int cmd_model(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *path = argv[1], *set = NULL;
  if (argc == 4 && !strcmp(argv[2], "--set-sampler")) set = argv[3];
  else if (argc != 2) {
    usage(stderr);
    return 2;
  }
  sb_error err = {0};
  if (!set) {
    estimator *e;
    if (est_open(&e, path, NULL, 0, &err)) {
      fprintf(stderr, "sbida model: %s\n", err.msg);
      return 1;
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:O}", "name", e->name, "kind", e->kind, "preset", e->sim->preset,
                          "N", e->sim->dim, "window", e->window, "info", e->info);
    json_dumpf(j, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(j);
    est_free(e);
    return 0;
  }
  json_error_t je;
  json_t *s = json_loads(set, 0, &je);
  if (!json_is_object(s)) {
    fprintf(stderr, "sbida model: --set-sampler needs a JSON object\n");
    json_decref(s);
    return 2;
  }
  score_model sm;
  if (score_model_load(&sm, path, &err)) {
    fprintf(stderr, "sbida model: %s\n", err.msg);
    json_decref(s);
    return 1;
  }
  if (sm.kind == SCORE_NPE || sm.kind == SCORE_NRE) {
    fprintf(stderr, "sbida model: %s is an %s model; it has no diffusion sampler to set\n", path, score_kind_name(sm.kind));
    score_model_free(&sm);
    json_decref(s);
    return 2;
  }
  int status = 0;
  const char *k;
  json_t *v;
  json_object_foreach(s, k, v) {
    double x = json_number_value(v);
    if (!json_is_number(v)) status = 2;
    else if (!strcmp(k, "steps") && x >= 1 && x <= 4096) sm.sampler.steps = (int)x;
    else if (!strcmp(k, "corrections") && x >= 0 && x <= 16) sm.sampler.corrections = (int)x;
    else if (!strcmp(k, "tau_l") && x >= 0 && x <= 10) sm.sampler.tau_l = x;
    else if (!strcmp(k, "gamma") && x >= 0 && x <= 1e6) sm.gamma = x;
    else status = 2;
    if (status) {
      fprintf(stderr, "sbida model: sampler setting '%s' is unknown or out of range\n", k);
      break;
    }
  }
  /* the file holds the EMA weights as its parameters: write them back as they are */
  if (!status && score_model_save(&sm, 0, path, &err)) {
    fprintf(stderr, "sbida model: %s\n", err.msg);
    status = 1;
  }
  score_model_free(&sm);
  json_decref(s);
  return status;
}
