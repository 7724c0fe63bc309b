/* sbida model: shows a model file's metadata, changes the default sampler
 * settings of a diffusion model (its sbida.sampler; the weights are
 * untouched), or writes a composed-score model of a stationary 1D system as
 * a local-score model of the same weights (any N, any W >= its window). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/cmd.h"
#include "util/cli.h"
#include "catalog/catalog.h"
#include "kinds/kinds.h"
#include "kinds/local_score/local_score.h"

static void usage(FILE *f) {
  fprintf(f, "usage: sbida model PATH.safetensors                 print the estimator's metadata as JSON\n"
             "       sbida model PATH.safetensors --set-sampler JSON\n"
             "             change the default sampler settings stored in the file (the request params\n"
             "             of docs/score-models.md), e.g. '{\"sampler\": \"dpm2m\", \"steps\": 12}' or\n"
             "             '{\"sampler\": \"pc\", \"steps\": 64, \"corrections\": 1, \"tau_l\": 1.0, \"gamma\": 0.01}'\n"
             "       sbida model PATH.safetensors --as-local-score OUT.safetensors\n"
             "             write a composed-score model of a stationary 1D system (one normalization for\n"
             "             every node, no time input) as a local-score model of the same weights whose run\n"
             "             is its whole window: it then serves any state size N and any window W >= its\n"
             "             own (one network run per evaluation at W = its window; docs/local-score.md)\n");
}

/* The composed-score prior p(x_{1..L}) of a stationary, homogeneous 1D system
 * (circular convolutions, one normalization) is the same at every place and
 * time, so its network is a local score of run length L over any N. */
static int as_local_score(const char *path, const char *out) {
  sb_error err = {0};
  model sm;
  if (model_load(&sm, path, &err)) {
    fprintf(stderr, "sbida model: %s\n", err.msg);
    return 1;
  }
  const char *why = NULL;
  if (strcmp(sm.kind->name, "composed-score"))
    why = "only a composed-score model can be written as a local-score model";
  else if (sm.sim->channels != 1 || sm.sim->height != 1)
    why = "its system is not 1D";
  else if (!sm.sim->stationary || sm.time_varying)
    why = "its system is not stationary (the window prior must be the same at every time)";
  else if (local_score_check_model(&sm, &err))
    why = err.msg; /* the local-score file's rules: run length, one normalization for every node */
  const model_kind *lk = model_kind_find("local-score");
  if (!why && !lk) why = "this build has no local-score kind";
  if (why) {
    fprintf(stderr, "sbida model: %s: %s (kind %s)\n", path, why, sm.kind->name);
    model_free(&sm);
    return 2;
  }
  sm.kind = lk; /* the same settings struct and sbida.sampler section (kinds/score) */
  if (!sm.training) sm.training = json_object();
  json_object_set_new(sm.training, "as_local_score_of", json_string(path));
  int status = 0;
  if (model_save(&sm, 0, out, &err)) { /* the file's parameters are its EMA weights */
    fprintf(stderr, "sbida model: %s\n", err.msg);
    status = 1;
  }
  model_free(&sm);
  estimator *e = NULL;
  if (!status && est_open(&e, out, NULL, 0, &err)) { /* what the daemon will do with it */
    fprintf(stderr, "sbida model: the written file does not load: %s\n", err.msg);
    remove(out);
    status = 1;
  }
  est_free(e);
  return status;
}

int cmd_model(int argc, char **argv) {
  const char *set = NULL, *as_local = NULL;
  const cli_flag flags[] = {{"set-sampler", CLI_STR, &set, 0, 0, NULL},
                            {"as-local-score", CLI_STR, &as_local, 0, 0, NULL},
                            {NULL, 0, NULL, 0, 0, NULL}};
  int first, rc0 = cli_parse(argc, argv, "sbida model", flags, usage, 1, &first);
  if (rc0) return rc0 < 0 ? 0 : rc0;
  if (first != argc - 1) {
    usage(stderr);
    return 2;
  }
  const char *path = argv[first];
  if (set && as_local) {
    fprintf(stderr, "sbida model: --set-sampler and --as-local-score are separate commands\n");
    return 2;
  }
  if (as_local) return as_local_score(path, as_local);
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
