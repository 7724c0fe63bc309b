/* est_score.h: opens a learned model file (score-based or npe) as an estimator. */
#ifndef SB_EST_SCORE_H
#define SB_EST_SCORE_H

#include "est.h"

/* Loads a posterior-score, composed-score or npe model file; the estimator's name
 * is the file stem. */
int est_score_open(estimator **out, const char *path, sb_error *err);

#endif
