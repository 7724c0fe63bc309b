/* est_npe.h: sampling and density of an npe model behind the estimator
 * interface (est_score_open opens the file and installs these). */
#ifndef SB_EST_NPE_H
#define SB_EST_NPE_H

#include "est.h"

/* e->impl is a score_model of kind npe. Samples are drawn from u ~ N(0, I),
 * one random stream per sample index, so they are bit-identical for any
 * thread count; log_density is filled (physical units). */
int npe_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err);
/* log q(x | y) of n physical states x [n][N] into out [n]. */
int npe_log_prob(estimator *e, const est_problem *p, const est_options *o, const double *x, int n, double *out,
                 sb_error *err);

#endif
