/* diff_dyn.h: a weak-constraint dynamics term for a guided window. The
 * learned window prior knows the system's transition only approximately
 * (its samples drift from the dynamics along a window: docs/cycling.md); when
 * the simulator has an adjoint (sim.h: step_vjp) the guidance can add, next
 * to the likelihood and the background,
 *
 *   sum_k log N(x_hat_{k+1} | M(x_hat_k), Q_k),
 *   Q_k = q I + gamma_d (sigma/mu)^2 (S_k^2 + S_{k+1}^2)       (diagonal)
 *
 * over consecutive states k, k + 1 of the window, in physical units, with
 * M one observation interval of the simulator and x_hat the Tweedie
 * estimates (as in SDA's likelihood: gamma_d (sigma/mu)^2 S^2 is x_hat's
 * Tweedie covariance, taken for M(x_hat_k) as for x_hat_k). q is the
 * model-error variance the request allows (weak constraint, as in
 * weak-constraint 4D-Var); the prior already holds the dynamics roughly, so
 * the term is a product of experts that sharpens the transition. Its
 * gradient with respect to x_hat costs W - 1 forward steps and adjoints of
 * the simulator per sample and evaluation, no extra network pass. */
#ifndef SB_DIFF_DYN_H
#define SB_DIFF_DYN_H

#include <stddef.h>

#include "sim/sim.h"
#include "util/sb_error.h"

typedef struct diff_dynamics {
  const sim *s;  /* its step_vjp is set; s->dim is the state size of a block */
  double q;      /* model-error variance per component, > 0 */
  double gamma;  /* the Tweedie factor gamma_d, >= 0 */
} diff_dynamics;

/* doubles of scratch diff_dyn_cot needs for a window of nb states */
size_t diff_dyn_scratch(const diff_dynamics *d, int nb);

/* One sample: grad [nb][ns] += d/dx (sum_k log N(x_{k+1} | M(x_k), Q_k)) at
 * the physical states x [nb][ns] (ns = d->s->dim), with Q_k's Tweedie part
 * from ratio2 = (sigma/mu)^2 and scale [nb][ns] (NULL: 1). Returns the
 * term's value (for tests; without the log-determinant's constant). */
double diff_dyn_grad(const diff_dynamics *d, int nb, const double *x, const double *scale, double ratio2,
                     double *grad, double *scr);

/* Sum over k of |x_{k+1} - M(x_k)|^2 for one window x [nb][s->dim] of
 * physical states (s->step_vjp set); scr: diff_dyn_scratch doubles. The
 * dynamical residual a result reports (how far a sampled trajectory is from
 * the system's dynamics), with or without the term. */
double diff_dyn_residual2(const sim *s, int nb, const double *x, double *scr);

#endif
