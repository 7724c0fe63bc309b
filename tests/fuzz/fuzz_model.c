/* fuzz_model.c: model metadata (core/model/model.c, the kinds' sections,
 * the nn.* network description of core/nn/nn_ckpt.c), opened as the daemon
 * does at start (model_open_estimator).
 *
 * An input is a JSON object of metadata: string values are taken as they
 * are, other values as their JSON text (so a mutated number stays a number).
 * It is written with the tensors of the tiny model of its sbida.kind
 * (tests/data/golden/tiny-<kind>.safetensors; tiny-npe for unknown kinds)
 * into a model file, which is then opened. Invariants: a refused file has a
 * message; an opened one is a usable estimator (a system, a name, a state
 * shape that matches its operator). Leaks are findings too (LeakSanitizer). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kinds/kinds.h"
#include "util/safetensors.h"

static const char *const kinds[] = {"npe", "nre", "posterior-score", "composed-score"};
#define N_KINDS 4
static st_file templates[N_KINDS];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  for (int k = 0; k < N_KINDS; k++) {
    char rel[128], path[4096];
    sb_error err = {0};
    snprintf(rel, sizeof rel, "tests/data/golden/tiny-%s.safetensors", kinds[k]);
    if (st_read(fuzz_src_path(rel, path, sizeof path), &templates[k], &err)) fuzz_fail("%s", err.msg);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_t *meta = json_loadb((const char *)data, size, 0, NULL);
  if (!json_is_object(meta)) {
    json_decref(meta);
    return 0;
  }
  const char *kind = json_string_value(json_object_get(meta, "sbida.kind"));
  const char *nc = json_string_value(json_object_get(meta, "nn.config"));
  if (fuzz_known_defects() && nc) {
    /* issue 18 defect 7: the network is allocated from nn.config before any bound
     * or shape check; a number of 5 digits or more can ask for gigabytes */
    int digits = 0, big = 0;
    for (const char *c = nc; *c; c++) {
      digits = *c >= '0' && *c <= '9' ? digits + 1 : 0;
      big |= digits >= 5;
    }
    if (big) {
      json_decref(meta);
      return 0;
    }
  }
  int t = 0;
  for (int k = 0; k < N_KINDS; k++)
    if (kind && !strcmp(kind, kinds[k])) t = k;
  st_file f;
  st_init(&f);
  sb_error err = {0};
  const st_file *tp = &templates[t];
  for (int i = 0; i < tp->n_tensors; i++) {
    const st_tensor *x = &tp->tensors[i];
    if (st_add(&f, x->name, x->dtype, x->ndim, x->shape, x->data, &err)) fuzz_fail("st_add: %s", err.msg);
  }
  const char *key;
  json_t *v;
  json_object_foreach(meta, key, v) {
    char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    const char *s = json_is_string(v) ? json_string_value(v) : text;
    if (s && st_set_meta(&f, key, s, &err)) fuzz_fail("st_set_meta: %s", err.msg);
    free(text);
  }
  char path[512];
  fuzz_tmp_path("fuzz-model.safetensors", path, sizeof path);
  if (st_write(&f, path, &err)) fuzz_fail("st_write: %s", err.msg);
  st_free(&f);
  json_decref(meta);

  estimator *e = NULL;
  if (model_open_estimator(&e, path, &err)) {
    FUZZ_CHECK(err.msg[0], "model_open_estimator failed without a message");
    return 0;
  }
  FUZZ_CHECK(e && e->sim && !strcmp(e->name, "fuzz-model"), "an opened model is not a usable estimator");
  FUZZ_CHECK(!e->fixed_op || e->fixed_op->state_dim == e->sim->channels * e->sim->height * e->sim->width,
             "the model's operator does not fit its system");
  FUZZ_CHECK(!e->fixed_noise || !e->fixed_op || e->fixed_noise->n == e->fixed_op->n_obs,
             "the model's noise does not fit its operator");
  est_free(e);
  return 0;
}
