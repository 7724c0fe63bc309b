/* sbida model: shows a model file's metadata, or changes the default sampler
 * settings of a diffusion model (its sbida.sampler; the weights are untouched). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/cmd.h"
#include "util/cli.h"
#include "catalog/catalog.h"
#include "kinds/kinds.h"

static void usage(FILE *f) {
  fprintf(f, "usage: sbida model PATH.safetensors                 print the estimator's metadata as JSON\n"
             "       sbida model PATH.safetensors --set-sampler JSON\n"
             "             change the default sampler settings stored in the file (the request params\n"
             "             of docs/score-models.md), e.g. '{\"sampler\": \"dpm2m\", \"steps\": 12}' or\n"
             "             '{\"sampler\": \"pc\", \"steps\": 64, \"corrections\": 1, \"tau_l\": 1.0, \"gamma\": 0.01}'\n");
}

int cmd_model(int argc, char **argv) {
  const char *set = NULL;
  const cli_flag flags[] = {{"set-sampler", CLI_STR, &set, 0, 0, NULL}, {NULL, 0, NULL, 0, 0, NULL}};
  int first, rc0 = cli_parse(argc, argv, "sbida model", flags, usage, 1, &first);
  if (rc0) return rc0 < 0 ? 0 : rc0;
  if (first != argc - 1) {
    usage(stderr);
    return 2;
  }
  const char *path = argv[first];
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
  model sm;
  if (model_load(&sm, path, &err)) {
    fprintf(stderr, "sbida model: %s\n", err.msg);
    json_decref(s);
    return 1;
  }
  if (!sm.kind->meta_key || strcmp(sm.kind->meta_key, "sbida.sampler")) {
    fprintf(stderr, "sbida model: %s is an %s model; it has no diffusion sampler to set\n", path, sm.kind->name);
    model_free(&sm);
    json_decref(s);
    return 2;
  }
  int status = 0;
  if (params_check(s, sm.kind->config_params, "sampler setting ", &err) || sm.kind->from_config(&sm, s, NULL, &err)) {
    fprintf(stderr, "sbida model: %s\n", err.msg);
    status = 2;
  }
  /* the file holds the EMA weights as its parameters: write them back as they are */
  if (!status && model_save(&sm, 0, path, &err)) {
    fprintf(stderr, "sbida model: %s\n", err.msg);
    status = 1;
  }
  model_free(&sm);
  json_decref(s);
  return status;
}
