/* eval_metrics.h: per-case scores of a sample-based posterior against a known
 * truth, and the statistics that combine them (pure functions, no I/O).
 *
 * Coverage from ranks (DESIGN §4). Let r = #{s : x_s < x*} be the rank of
 * the truth among the S samples of one component (ties count half). If the
 * posterior is calibrated, x* and the S samples are exchangeable and r is
 * uniform on {0, ..., S}. Then u = (r + U) / (S + 1), U ~ U(0,1) independent,
 * is exactly U(0,1), and "the truth lies in the central alpha-interval" is
 * the event |u - 1/2| <= alpha/2. Taking the expectation over U instead of
 * drawing it, one component contributes
 *     c(r, alpha) = | [r, r+1] ∩ [(S+1)(1-alpha)/2, (S+1)(1+alpha)/2] |  (in [0, 1])
 * and the coverage at alpha is the mean of c over components and cases.
 * Since sum_{r=0..S} c(r, alpha) = (S+1) alpha, a calibrated posterior has
 * expected coverage exactly alpha for every S (no small-S narrowing, unlike
 * sample quantiles), and over-confident posteriors (truth ranks pile up at 0
 * and S) show coverage below alpha. */
#ifndef SB_EVAL_METRICS_H
#define SB_EVAL_METRICS_H

#include <stddef.h>

#include "util/sb_error.h"

#define EVAL_N_LEVELS 19 /* alpha = 0.05, 0.10, ..., 0.95 */

/* alpha of level i (0.05 * (i + 1)). */
double eval_level(int i);

/* c(r, alpha) above: the probability that the randomized PIT of rank r of S
 * falls in the central alpha-interval. */
double eval_rank_coverage(double r, int S, double alpha);

/* Scores of one case. */
typedef struct eval_case_stats {
  double rmse;     /* spatial RMS of (sample mean - truth) */
  double spread;   /* sqrt(mean over components of sample variance (S-1)) */
  double crps;     /* mean over components of E|X-x*| - E|X-X'|/2 (1/S^2 form) */
  double coverage[EVAL_N_LEVELS]; /* SUM over components of c(r, alpha) */
} eval_case_stats;

/* Scores the samples [S][n] of one case against truth [n]. Adds each
 * component's rank (0..S) to rank_hist [S+1] when non-NULL; fills mean and
 * std [n] when non-NULL. work must hold S doubles. */
void eval_score_case(const double *samples, int S, int n, const double *truth, eval_case_stats *out,
                     long *rank_hist, double *mean, double *std, double *work);

/* Ensemble CRPS of sorted samples xs[S] (ascending) at the value x:
 * E|X - x| - E|X - X'|/2 with E over the empirical distribution; O(S). */
double eval_crps_sorted(const double *xs, int S, double x);

/* Regularized upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a). */
double eval_gamma_q(double a, double x);

/* Chi-square test that the ranks 0..S in hist [S+1] are uniform. The ranks
 * are grouped into *bins_used equal-probability-ish groups (at most 20, at
 * least 5 expected counts each) with exact expected counts; returns the
 * p-value (1 when there is nothing to test). Note: components of one case
 * are not independent, so with spatially correlated errors the p-value is
 * too small; read it as a diagnostic. */
double eval_rank_uniformity_p(const long *hist, int S, int *bins_used);

/* HPD expected coverage from the credibility of the truth per case:
 * level[c] = fraction of samples s with log q(x_s) >= log q(x*_c). Fills
 * coverage[i] = fraction of cases with level <= alpha_i. */
void eval_hpd_coverage(const double *level, int n_cases, double *coverage);

#endif
