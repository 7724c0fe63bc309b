#include "sim/l96.h"

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
