/* testutil.h: helpers shared by the cmocka unit tests (run from the repo root). */
#ifndef SB_TESTUTIL_H
#define SB_TESTUTIL_H

#include <jansson.h>
#include <stddef.h>

#include "est/est.h"

/* Loads a JSON file relative to the repository root; fails the test if absent. */
json_t *tu_load_json(const char *path);
/* Copies a JSON array of numbers into a malloc'd double array (n set). */
double *tu_doubles(const json_t *arr, size_t *n);
/* Copies a JSON array of equal-length arrays into one row-major double array. */
double *tu_matrix(const json_t *arr, size_t *rows, size_t *cols);
/* Max |a-b| / (atol + rtol |b|) over n values: <= 1 means within tolerance. */
double tu_max_scaled_err(const double *a, const double *b, size_t n, double atol, double rtol);
/* A scratch directory under build/ for files a test writes. */
const char *tu_tmpdir(void);

/* Trains a model from cfg (reference stolen) into out; fails the test on an
 * error; returns the final validation loss. */
double tu_train(json_t *cfg, const char *out);
/* A problem for e: a window of W observations of a 1x16 state through
 * op_json with noise std `noise` (every 5th value missing, the others
 * 0.3 * (i % 7)) at time index t; tu_problem_free releases it. */
void tu_problem(estimator *e, const char *op_json, double noise, int W, long t, est_problem *p);
void tu_problem_free(est_problem *p);
/* Runs e on tu_problem(...) with options o; returns est_sample's code (a
 * failure must come with a message). */
int tu_sample(estimator *e, const char *op_json, double noise, int W, long t, const est_options *o, est_result *r);

#endif
