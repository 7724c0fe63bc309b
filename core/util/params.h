/* params.h: the one way to read named parameters from a JSON object (request
 * params of every estimator, training configs, the daemon's submissions).
 *
 * A spec is an array of params_spec ending with {NULL}. params_check
 * rejects what is not in the spec (naming the valid ones), wrong types and
 * values out of range, with a message that says which field and what is
 * allowed; after it passed, the getters only read (absent: the default). */
#ifndef SB_PARAMS_H
#define SB_PARAMS_H

#include <jansson.h>

#include "util/sb_error.h"

typedef enum { PARAM_INT = 1, PARAM_NUM, PARAM_STR, PARAM_ANY } param_type;

typedef struct params_spec {
  const char *name;
  param_type type;
  double lo, hi;  /* PARAM_INT, PARAM_NUM: inclusive range */
  int lo_open;    /* 1: lo itself is excluded (a positive number) */
} params_spec;

/* Checks obj (a JSON object, or NULL = nothing given) against spec. `what`
 * prefixes every message and names the object, e.g. "params." gives
 * "params.inflation must be a number in 1..10" and "params: unknown field
 * 'x' (valid: inflation, ensemble_size)". */
int params_check(const json_t *obj, const params_spec *spec, const char *what, sb_error *err);
/* The spec entry called name, or NULL. */
const params_spec *params_find(const params_spec *spec, const char *name);
/* "a, b, c": the names of spec into buf. */
const char *params_names(const params_spec *spec, char *buf, size_t size);

/* Values of a checked object (obj may be NULL); absent: dflt. */
double params_num(const json_t *obj, const char *name, double dflt);
long params_int(const json_t *obj, const char *name, long dflt);
const char *params_str(const json_t *obj, const char *name, const char *dflt);

#endif
