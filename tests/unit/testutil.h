/* testutil.h: helpers shared by the cmocka unit tests (run from the repo root). */
#ifndef SB_TESTUTIL_H
#define SB_TESTUTIL_H

#include <jansson.h>
#include <stddef.h>

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

#endif
