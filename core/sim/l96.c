#include "sim/l96.h"

#include <string.h>

void l96_tendency(const double *x, double *dx, int N, double F) {
  /* Edges handled separately so the interior loop has no modulo. */
  dx[0] = (x[1] - x[N - 2]) * x[N - 1] - x[0] + F;
  dx[1] = (x[2] - x[N - 1]) * x[0] - x[1] + F;
  for (int i = 2; i < N - 1; i++) dx[i] = (x[i + 1] - x[i - 2]) * x[i - 1] - x[i] + F;
  dx[N - 1] = (x[0] - x[N - 3]) * x[N - 2] - x[N - 1] + F;
}

static void rk4_one(double *x, int N, double F, double dt, double *w) {
  double *k1 = w, *k2 = w + N, *k3 = w + 2 * N, *k4 = w + 3 * N, *tmp = w + 4 * N;
  l96_tendency(x, k1, N, F);
  for (int i = 0; i < N; i++) tmp[i] = x[i] + 0.5 * dt * k1[i];
  l96_tendency(tmp, k2, N, F);
  for (int i = 0; i < N; i++) tmp[i] = x[i] + 0.5 * dt * k2[i];
  l96_tendency(tmp, k3, N, F);
  for (int i = 0; i < N; i++) tmp[i] = x[i] + dt * k3[i];
  l96_tendency(tmp, k4, N, F);
  for (int i = 0; i < N; i++) x[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
}

void l96_rk4(double *x, size_t B, int N, double F, double dt, int nsteps, double *work) {
  for (size_t b = 0; b < B; b++)
    for (int s = 0; s < nsteps; s++) rk4_one(x + b * (size_t)N, N, F, dt, work);
}

/* f_i = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F, so (J^T w)_j = w_{j-1} x_{j-2}
 * + w_{j+1} (x_{j+2} - x_{j-1}) - w_{j+2} x_{j+1} - w_j (indices mod N). */
void l96_tendency_adjoint(const double *x, const double *w, double *out, int N) {
  for (int j = 0; j < N; j++) {
    int jm2 = (j + N - 2) % N, jm1 = (j + N - 1) % N, jp1 = (j + 1) % N, jp2 = (j + 2) % N;
    out[j] = w[jm1] * x[jm2] + w[jp1] * (x[jp2] - x[jm1]) - w[jp2] * x[jp1] - w[j];
  }
}

size_t l96_rk4_vjp_work(int N, int nsteps) { return (size_t)N * ((size_t)nsteps + 1 + 10); }

/* The backward pass of one RK4 step from x: xbar = (dy/dx)^T ybar, with the
 * stages recomputed (t2 = x + h/2 k1, t3 = x + h/2 k2, t4 = x + h k3). */
static void rk4_one_adjoint(const double *x, const double *ybar, double *xbar, int N, double F, double h,
                            double *w) {
  double *k1 = w, *k2 = w + N, *k3 = w + 2 * N, *t2 = w + 3 * N, *t3 = w + 4 * N, *t4 = w + 5 * N;
  double *kb = w + 6 * N, *tb = w + 7 * N, *acc = w + 8 * N;
  l96_tendency(x, k1, N, F);
  for (int i = 0; i < N; i++) t2[i] = x[i] + 0.5 * h * k1[i];
  l96_tendency(t2, k2, N, F);
  for (int i = 0; i < N; i++) t3[i] = x[i] + 0.5 * h * k2[i];
  l96_tendency(t3, k3, N, F);
  for (int i = 0; i < N; i++) t4[i] = x[i] + h * k3[i];
  /* y = x + h/6 (k1 + 2 k2 + 2 k3 + k4): kbar_4 = h/6 ybar, kbar_3 = h/3 ybar + h tbar_4, ... */
  for (int i = 0; i < N; i++) acc[i] = ybar[i], kb[i] = h / 6.0 * ybar[i];
  l96_tendency_adjoint(t4, kb, tb, N); /* tbar_4 */
  for (int i = 0; i < N; i++) acc[i] += tb[i], kb[i] = h / 3.0 * ybar[i] + h * tb[i];
  l96_tendency_adjoint(t3, kb, tb, N); /* tbar_3 */
  for (int i = 0; i < N; i++) acc[i] += tb[i], kb[i] = h / 3.0 * ybar[i] + 0.5 * h * tb[i];
  l96_tendency_adjoint(t2, kb, tb, N); /* tbar_2 */
  for (int i = 0; i < N; i++) acc[i] += tb[i], kb[i] = h / 6.0 * ybar[i] + 0.5 * h * tb[i];
  l96_tendency_adjoint(x, kb, tb, N); /* through k1 = f(x) */
  for (int i = 0; i < N; i++) xbar[i] = acc[i] + tb[i];
}

void l96_rk4_vjp(const double *x, const double *u, double *y, double *xbar, int N, double F, double dt, int nsteps,
                 double *work) {
  double *states = work, *w = work + (size_t)N * ((size_t)nsteps + 1); /* 9 N after the states */
  memcpy(states, x, sizeof(double) * (size_t)N);
  for (int s = 0; s < nsteps; s++) {
    double *next = states + (size_t)(s + 1) * N;
    memcpy(next, states + (size_t)s * N, sizeof(double) * (size_t)N);
    rk4_one(next, N, F, dt, w);
  }
  if (y) memcpy(y, states + (size_t)nsteps * N, sizeof(double) * (size_t)N);
  if (!u) return;
  /* backward through the steps; xbar carries the running cotangent */
  double *cur = w + 9 * N; /* the tenth N of w */
  memcpy(cur, u, sizeof(double) * (size_t)N);
  for (int s = nsteps - 1; s >= 0; s--) {
    rk4_one_adjoint(states + (size_t)s * N, cur, xbar, N, F, dt, w);
    memcpy(cur, xbar, sizeof(double) * (size_t)N);
  }
  if (nsteps == 0) memcpy(xbar, u, sizeof(double) * (size_t)N);
}
