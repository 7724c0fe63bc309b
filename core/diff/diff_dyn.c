/* diff_dyn.c: the dynamics term of the guidance (see diff_dyn.h). */
#include "diff/diff_dyn.h"

size_t diff_dyn_scratch(const diff_dynamics *d, int nb) {
  (void)nb;
  return 2 * (size_t)d->s->dim + d->s->step_vjp_work;
}

double diff_dyn_residual2(const sim *s, int nb, const double *x, double *scr) {
  const int ns = s->dim;
  double *y = scr, *work = scr + 2 * (size_t)ns, sum = 0.0;
  for (int k = 0; k + 1 < nb; k++) {
    s->step_vjp(s, x + (size_t)k * ns, NULL, y, NULL, work);
    for (int i = 0; i < ns; i++) {
      double r = x[(size_t)(k + 1) * ns + i] - y[i];
      sum += r * r;
    }
  }
  return sum;
}

double diff_dyn_grad(const diff_dynamics *d, int nb, const double *x, const double *scale, double ratio2,
                     double *grad, double *scr) {
  const int ns = d->s->dim;
  double *y = scr, *u = scr + ns, *work = scr + 2 * (size_t)ns;
  double val = 0.0;
  for (int k = 0; k + 1 < nb; k++) {
    const double *xk = x + (size_t)k * ns, *xn = x + (size_t)(k + 1) * ns;
    d->s->step_vjp(d->s, xk, NULL, y, NULL, work); /* y = M(x_k) */
    for (int i = 0; i < ns; i++) {
      double sk = scale ? scale[(size_t)k * ns + i] : 1.0, sn = scale ? scale[(size_t)(k + 1) * ns + i] : 1.0;
      double q = d->q + d->gamma * ratio2 * (sk * sk + sn * sn);
      double r = xn[i] - y[i];
      val -= 0.5 * r * r / q;
      u[i] = r / q;
      grad[(size_t)(k + 1) * ns + i] -= u[i];
    }
    /* d/dx_k of -1/2 r^T Q^-1 r with r = x_{k+1} - M(x_k): J^T Q^-1 r */
    d->s->step_vjp(d->s, xk, u, NULL, y, work);
    for (int i = 0; i < ns; i++) grad[(size_t)k * ns + i] += y[i];
  }
  return val;
}
