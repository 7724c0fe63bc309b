/* kinds.h: the registry of model kinds (one line per kind in kinds.c), and
 * what needs it: reading a model file of any kind and opening one as an
 * estimator. Nothing else names a kind. */
#ifndef SB_KINDS_H
#define SB_KINDS_H

#include "est/est.h"
#include "model/kind.h"

/* The kind called name, or NULL. */
const model_kind *model_kind_find(const char *name);
/* The kind called name, or SB_EINVAL with the list of kinds in err. */
int model_kind_get(const char *name, const model_kind **out, sb_error *err);
/* i-th registered kind (0..), NULL past the end. */
const model_kind *model_kind_at(int i);
/* The kinds' names as a list, "posterior-score, composed-score, ... or
 * local-score", into buf (truncated to size). */
const char *model_kind_list(char *buf, size_t size);

/* Reads a model file of any registered kind (model_read with the registry). */
int model_load(model *m, const char *path, sb_error *err);
/* Opens a model file as an estimator named after the file stem; the
 * estimator owns the model. */
int model_open_estimator(estimator **out, const char *path, sb_error *err);

#endif
