/* diff_bg.h: a Gaussian background for the first state of a guided window
 * (cycling; DESIGN.md section 8). The background enters the guidance like an
 * observation of the first state x_1 with the identity operator:
 *
 *   log N(m_b | x_hat_1, C),  C = U^T U + diag(d) + gamma (sigma/mu)^2 S^2
 *
 * in physical units, where U [n_members][dim] are the background anomalies
 * already divided by sqrt(S_b - 1) (so U^T U is the ensemble covariance;
 * n_members = 0 for a diagonal background), d the diagonal part (the jitter
 * delta of an ensemble, or std^2), and S the guidance scale of x_1 (the
 * Tweedie covariance of x_hat is gamma (sigma/mu)^2 in standardized units).
 * C^{-1} is applied with Woodbury in O(S_b dim) per sample after an
 * O(S_b^2 dim + S_b^3) preparation per noise level; never a dense dim x dim
 * inverse. */
#ifndef SB_DIFF_BG_H
#define SB_DIFF_BG_H

#include "util/sb_error.h"

typedef struct diff_background {
  int dim;               /* the first state's size */
  int n_members;         /* rows of anom; 0: diagonal background */
  const double *mean;    /* [dim] m_b */
  const double *anom;    /* [n_members][dim] (x_j - m_b) / sqrt(S_b - 1), or NULL */
  const double *diag;    /* [dim] d > 0 */
  double gamma;          /* Tweedie factor of this term's gamma (sigma/mu)^2 S^2; 0: the guidance's gamma */
} diff_background;

/* C^{-1} of one noise level, ready to apply: dinv [dim] = 1 / (d + extra),
 * chol [n][n] = the Cholesky factor (lower) of I + U diag(dinv) U^T. */
typedef struct diff_bg_inv {
  const diff_background *b;
  double *mem, *dinv, *chol;
} diff_bg_inv;

/* Prepares C^{-1} with C = U^T U + diag(d + extra) (extra [dim], may be
 * NULL for 0). Free with diff_bg_inv_free. */
int diff_bg_inv_init(diff_bg_inv *v, const diff_background *b, const double *extra, sb_error *err);
void diff_bg_inv_free(diff_bg_inv *v);
/* out [dim] = C^{-1} r; tmp has n_members doubles. out may not alias r. */
void diff_bg_solve(const diff_bg_inv *v, const double *r, double *out, double *tmp);
/* log N(m_b | x, C) (for tests): -1/2 r^T C^{-1} r - 1/2 log det C
 * - dim/2 log 2 pi with r = m_b - x; tmp has 2 dim + n_members doubles. */
double diff_bg_logpdf(const diff_bg_inv *v, const double *x, double *tmp);

#endif
