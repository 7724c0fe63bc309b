/* l96.h: the Lorenz96 model, double precision, batched.
 *   dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F,  periodic in i.
 * States are row-major [B][N]. */
#ifndef SB_L96_H
#define SB_L96_H

#include <stddef.h>

/* dx = f(x) for one state of N nodes (N >= 4). */
void l96_tendency(const double *x, double *dx, int N, double F);

/* Advances B states in place by nsteps classical RK4 steps of size dt.
 * work must hold 5*N doubles (caller-owned, reused across calls). */
void l96_rk4(double *x, size_t B, int N, double F, double dt, int nsteps, double *work);

/* (df/dx)^T w at x: the adjoint of the tendency's Jacobian, for one state. */
void l96_tendency_adjoint(const double *x, const double *w, double *out, int N);

/* One state advanced nsteps RK4 steps (y = M(x), y may be NULL) and, when u
 * is not NULL, xbar = (dM/dx)^T u, the vector-Jacobian product of the whole
 * advance (the discrete adjoint of the RK4 steps). work: l96_rk4_vjp_work
 * doubles. x, y, u and xbar must not alias. */
size_t l96_rk4_vjp_work(int N, int nsteps);
void l96_rk4_vjp(const double *x, const double *u, double *y, double *xbar, int N, double F, double dt, int nsteps,
                 double *work);

#endif
