/* registry.h: the estimators the daemon serves, loaded once at start and
 * read-only afterwards (so lookups need no lock). */
#ifndef SB_REGISTRY_H
#define SB_REGISTRY_H

#include <jansson.h>

#include "est/est.h"

typedef struct registry {
  estimator **items;
  int count, cap;
  int failed;  /* model files that could not be loaded */
} registry;

/* Opens the baselines (etkf, letkf, pf) of every preset, then every
 * *.safetensors in models_dir (missing dir: none). Failures are logged and
 * skipped; returns 0 unless memory runs out. */
int reg_load(registry *r, const char *models_dir, sb_error *err);
/* Adds an estimator (takes ownership); SB_EINVAL on a duplicate name. */
int reg_add(registry *r, estimator *e, sb_error *err);
estimator *reg_find(const registry *r, const char *name);
/* Describes an estimator for GET /v1/estimators/{name} (new reference). */
json_t *reg_describe(const estimator *e);
void reg_free(registry *r);

#endif
