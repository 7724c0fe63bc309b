/* catalog.h: opens an estimator by name or file, the one entry point the
 * tools (sbida) and the daemon (sbidad) use. It sits above every
 * implementation: the baselines (baselines/) by name, the model files of
 * every registered kind (kinds/) by path. */
#ifndef SB_CATALOG_H
#define SB_CATALOG_H

#include "est/est.h"

/* Opens an estimator from a spec: a baseline name ("etkf", "letkf", "pf";
 * needs preset, N = 0 for the preset's default) or the path of a model file
 * (.safetensors; its preset comes from its metadata and preset/N, when
 * given, only have to agree). */
int est_open(estimator **out, const char *spec, const char *preset, int N, sb_error *err);

/* i-th baseline name (0..), NULL past the end. */
const char *catalog_baseline_at(int i);
/* 1 when spec names a model file (ends in .safetensors). */
int catalog_is_model_file(const char *spec);

#endif
