/* cycle_stats.c: a cycle's spread and observation-space RMSE (see the header). */
#include "cycle_stats.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "util/sb_error.h"

void cycle_stats_compute(const double *mean, const double *std, int d, const obs_op *op, const double *y, int m,
                         cycle_stats *out) {
  out->spread = out->obs_rmse = NAN;
  out->obs_count = 0;
  if (d < 1) return;
  double s = 0;
  for (int i = 0; i < d; i++) s += std[i];
  out->spread = s / d;
  if (!op || !y || op->state_dim != d || op->n_obs != m || m < 1) return;
  double *hx = malloc(sizeof *hx * (size_t)m);
  if (!hx) return;
  obs_apply(op, mean, hx, 1);
  double sq = 0;
  int n = 0;
  for (int i = 0; i < m; i++) {
    if (isnan(y[i])) continue; /* missing */
    double r = hx[i] - y[i];
    sq += r * r;
    n++;
  }
  free(hx);
  if (n && isfinite(sq)) {
    out->obs_rmse = sqrt(sq / n);
    out->obs_count = n;
  }
}

/* a JSON array of numbers (null: NaN) into a malloc'd array; NULL when j is
 * not an array (*n = 0) or on allocation failure (*n = -1) */
static double *cycle_stats_doubles(const json_t *j, int *n) {
  *n = 0;
  if (!json_is_array(j) || !json_array_size(j)) return NULL;
  size_t k = json_array_size(j);
  double *v = malloc(sizeof *v * k);
  if (!v) {
    *n = -1;
    return NULL;
  }
  for (size_t i = 0; i < k; i++) {
    const json_t *e = json_array_get(j, i);
    v[i] = json_is_number(e) ? json_number_value(e) : NAN;
  }
  *n = (int)k;
  return v;
}

int cycle_stats_from_json(const char *result, const char *row, const obs_op *op, cycle_stats *out) {
  out->spread = out->obs_rmse = NAN;
  out->obs_count = 0;
  json_t *r = result ? json_loads(result, 0, NULL) : NULL;
  json_t *y = row ? json_loads(row, JSON_DECODE_ANY, NULL) : NULL;
  int d = 0, ds = 0, m = 0, rc = 0;
  double *mean = cycle_stats_doubles(json_object_get(r, "mean"), &d);
  double *std = cycle_stats_doubles(json_object_get(r, "std"), &ds);
  double *yv = cycle_stats_doubles(y, &m);
  if (d < 0 || ds < 0 || m < 0)
    rc = SB_ENOMEM;
  else if (mean && std && d == ds)
    cycle_stats_compute(mean, std, d, op, yv, m, out);
  free(mean);
  free(std);
  free(yv);
  json_decref(r);
  json_decref(y);
  return rc;
}
