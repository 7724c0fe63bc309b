/* cycle_stats.h: what a stream's cycle says about itself, computed from
 * stored data only (the job's summary, the cycle's observation row and the
 * stream's operator). The server has no truth, so the error it can give is
 * in observation space: the analysis mean mapped by the operator against
 * the observations the cycle assimilated. Used by the cycles listing (and so
 * the console's stream chart). */
#ifndef SB_CYCLE_STATS_H
#define SB_CYCLE_STATS_H

#include "obs/obs.h"

typedef struct cycle_stats {
  double spread;   /* mean over state components of the analysis std; NAN when none */
  double obs_rmse; /* sqrt(mean over observed i of (H(mean)_i - y_i)^2); NAN when nothing to compare */
  int obs_count;   /* observed (non-missing) values compared; 0 when obs_rmse is NAN */
} cycle_stats;

/* From arrays: mean, std [d]; op may be NULL (no obs_rmse); y [m] with NaN
 * for missing, or NULL (a cycle without observations). obs_rmse is NAN when
 * op is NULL, y is NULL, op's sizes are not (d, m) or no value is observed. */
void cycle_stats_compute(const double *mean, const double *std, int d, const obs_op *op, const double *y, int m,
                         cycle_stats *out);

/* From the stored texts: result is the job's summary JSON ({"mean": [...],
 * "std": [...], ...}; NULL or unreadable: everything NAN), row the cycle's
 * observation row JSON (an array of numbers and nulls, or null). 0, or
 * SB_ENOMEM (out is then all NAN). */
int cycle_stats_from_json(const char *result, const char *row, const obs_op *op, cycle_stats *out);

#endif
