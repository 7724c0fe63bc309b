/* The Kolmogorov-flow solver (core/sim/kolmogorov.c) and its presets.
 * Tolerances:
 *  - exact solutions (Taylor-Green vortex, a single Fourier mode, the laminar Kolmogorov
 *    flow): 1e-12 absolute on O(1) velocities; the integrating factor makes them exact
 *    up to round-off;
 *  - a Taylor-Green vortex carried by a decaying uniform flow: 1e-8 (the advection by the
 *    mean flow goes through RK4, not the integrating factor);
 *  - divergence of the solver-grid velocity: 1e-13 of max |grad u|;
 *  - energy budget E(T) - E(0) = int (P - D - drag) dt over 2 time units: 1e-6 of
 *    int (|P| + D + drag) (Simpson's rule on 200 steps of 0.01). The mismatch is the time
 *    discretization: measured 1.2e-5, 4.1e-7, 1.2e-8 at steps 0.02, 0.01, 0.005;
 *  - step convergence: observed order log2(e(dt) / e(dt/2)) in 3.6..4.4 (IF-RK4);
 *  - the numpy solver (tests/data/reference/kolmogorov_numpy.npy, 1 and 3 intervals):
 *    1e-10 absolute (the two differ in the order of floating-point operations only). */
#include <complex.h>
#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sim/kolmogorov.h"
#include "util/npy.h"
#include "sim/sim.h"

#define M 32
#define D (2 * M * M)

static kf_solver *make(int n, double amp, int nsub, double cfl) {
  kf_config c;
  kf_config_default(&c);
  c.n = n;
  c.amp = amp;
  c.nsub_min = nsub;
  c.cfl = cfl;
  kf_solver *s = NULL;
  sb_error err;
  if (kf_create(&s, &c, &err)) fail_msg("kf_create: %s", err.msg);
  return s;
}

/* block means (factor f) of a velocity field given at the solver points (2 pi i / n) */
static void coarse_of(int n, void (*fn)(double x, double y, double *u, double *v), double *out) {
  int f = n / M;
  memset(out, 0, sizeof(double) * D);
  for (int j = 0; j < n; j++)
    for (int i = 0; i < n; i++) {
      double u, v;
      fn(2 * M_PI * i / n, 2 * M_PI * j / n, &u, &v);
      out[(j / f) * M + i / f] += u / (f * f);
      out[M * M + (j / f) * M + i / f] += v / (f * f);
    }
}

static void taylor_green(double x, double y, double *u, double *v) {
  *u = 1.3 * sin(x) * cos(y);
  *v = -1.3 * cos(x) * sin(y);
}
/* psi = cos(3x + 2y): u = psi_y, v = -psi_x, k^2 = 13 */
static void single_mode(double x, double y, double *u, double *v) {
  *u = -2 * 0.4 * sin(3 * x + 2 * y);
  *v = 3 * 0.4 * sin(3 * x + 2 * y);
}

static double max_abs_diff(const double *a, const double *b, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i]));
  return e;
}

static void test_exact_decay(void **state) {
  (void)state;
  kf_solver *s = make(64, 0.0, 10, 3.0);
  const double nu = 1e-3, alpha = 0.1;
  void (*fields[2])(double, double, double *, double *) = {taylor_green, single_mode};
  const double k2[2] = {2, 13};
  double *x0 = malloc(sizeof(double) * D), *x = malloc(sizeof(double) * D), *ex = malloc(sizeof(double) * D);
  sb_error err;
  for (int c = 0; c < 2; c++) {
    coarse_of(64, fields[c], x0);
    memcpy(x, x0, sizeof(double) * D);
    const long n = 25; /* 5 time units */
    assert_int_equal(kf_advance(s, x, 1, n, &err), 0);
    double a = exp(-(nu * k2[c] + alpha) * 0.2 * n);
    for (int i = 0; i < D; i++) ex[i] = a * x0[i];
    double e = max_abs_diff(x, ex, D);
    print_message("unforced mode k^2 = %g: decay %.6f after 5 time units, max error %.2e\n", k2[c], a, e);
    assert_true(e < 1e-12);
  }
  kf_free(s);
  /* with forcing: the laminar flow u = A sin(kf y) / (nu kf^2 + alpha) is steady */
  s = make(64, 1.0, 10, 3.0);
  const double U = 1.0 / (nu * 16 + alpha);
  memset(x0, 0, sizeof(double) * D);
  for (int j = 0; j < 64; j++)
    for (int i = 0; i < 64; i++) x0[(j / 2) * M + i / 2] += U * sin(4 * 2 * M_PI * j / 64) / 4;
  memcpy(x, x0, sizeof(double) * D);
  assert_int_equal(kf_advance(s, x, 1, 10, &err), 0);
  double e = max_abs_diff(x, x0, D);
  print_message("laminar Kolmogorov flow (amplitude %.3f): max change over 2 time units %.2e\n", U, e);
  assert_true(e < 1e-12);
  free(x0); free(x); free(ex);
  kf_free(s);
}

/* a Taylor-Green vortex carried by a uniform flow (U0, V0), which the drag slows:
 * the vortex decays as exp(-(2 nu + alpha) t) and moves by U0 (1 - exp(-alpha t)) / alpha
 * (checks the sign and size of the advection term, which the energy budget cannot see) */
static double shift_x, shift_y, tg_amp;
static void moved_tg(double x, double y, double *u, double *v) {
  taylor_green(x - shift_x, y - shift_y, u, v);
  *u *= tg_amp;
  *v *= tg_amp;
}

static void test_advection_by_mean_flow(void **state) {
  (void)state;
  kf_solver *s = make(64, 0.0, 10, 3.0);
  const double U0 = 0.6, V0 = -0.35, nu = 1e-3, alpha = 0.1;
  double *x = malloc(sizeof(double) * D), *ex = malloc(sizeof(double) * D);
  shift_x = shift_y = 0;
  tg_amp = 1;
  coarse_of(64, moved_tg, x);
  for (int i = 0; i < M * M; i++) x[i] += U0, x[M * M + i] += V0;
  sb_error err;
  const long n = 25;
  assert_int_equal(kf_advance(s, x, 1, n, &err), 0);
  double t = 0.2 * n, g = exp(-alpha * t);
  shift_x = U0 * (1 - g) / alpha;
  shift_y = V0 * (1 - g) / alpha;
  tg_amp = exp(-(2 * nu + alpha) * t);
  coarse_of(64, moved_tg, ex);
  for (int i = 0; i < M * M; i++) ex[i] += U0 * g, ex[M * M + i] += V0 * g;
  double e = max_abs_diff(x, ex, D);
  print_message("Taylor-Green vortex carried %.3f, %.3f by a uniform flow over 5 time units: max error %.2e\n",
                shift_x, shift_y, e);
  assert_true(e < 1e-8);
  free(x);
  free(ex);
  kf_free(s);
}

/* a fine state on the attractor: random field, chain spin-up, prolongation */
static void attractor_fine(kf_solver *s, double *w, double uv[2], long spin) {
  double *x = malloc(sizeof(double) * D);
  sb_error err;
  assert_int_equal(kf_init_random(s, x, 1, 11, 3, &err), 0);
  assert_int_equal(kf_advance(s, x, 1, spin, &err), 0);
  assert_int_equal(kf_prolong(s, x, w, uv, &err), 0);
  free(x);
}

static void test_divergence_free(void **state) {
  (void)state;
  const int n = 64;
  kf_solver *s = make(n, 1.0, 10, 3.0);
  size_t S = kf_spec_size(s);
  double *w = fftw_malloc(sizeof(double) * 2 * S), uv[2];
  attractor_fine(s, w, uv, 10);
  sb_error err;
  assert_int_equal(kf_steps(s, w, uv, 0.02, 10, &err), 0);
  double *u = fftw_malloc(sizeof(double) * n * n), *v = fftw_malloc(sizeof(double) * n * n);
  assert_int_equal(kf_velocity(s, w, uv, u, v, &err), 0);
  fftw_complex *uh = fftw_malloc(sizeof(fftw_complex) * S), *vh = fftw_malloc(sizeof(fftw_complex) * S);
  fftw_plan pu = fftw_plan_dft_r2c_2d(n, n, u, uh, FFTW_ESTIMATE), pv = fftw_plan_dft_r2c_2d(n, n, v, vh, FFTW_ESTIMATE);
  fftw_execute(pu);
  fftw_execute(pv);
  double dmax = 0, gmax = 0;
  for (int j = 0; j < n; j++)
    for (int i = 0; i <= n / 2; i++) {
      int ky = j <= n / 2 ? j : j - n;
      size_t q = (size_t)j * (n / 2 + 1) + i;
      double complex a = uh[q], b = vh[q]; /* complex.h before fftw3.h: fftw_complex is double complex */
      dmax = fmax(dmax, cabs(I * i * a + I * ky * b));
      gmax = fmax(gmax, fmax(cabs(I * i * a), cabs(I * ky * b)));
    }
  print_message("solver-grid velocity: max |div u| / max |du/dx| = %.2e (spectral)\n", dmax / gmax);
  assert_true(dmax < 1e-13 * gmax);
  fftw_destroy_plan(pu);
  fftw_destroy_plan(pv);
  fftw_free(uh); fftw_free(vh); fftw_free(u); fftw_free(v); fftw_free(w);
  kf_free(s);
}

static double budget_rate(const kf_stats *st) { return st->forcing - st->dissipation - st->drag; }

static void test_energy_balance(void **state) {
  (void)state;
  kf_solver *s = make(64, 1.0, 10, 3.0);
  size_t S = kf_spec_size(s);
  double *w = malloc(sizeof(double) * 2 * S), uv[2];
  attractor_fine(s, w, uv, 20);
  uv[0] = 0.2; /* a mean flow, which the drag removes */
  const int K = 200;
  const double dt = 2.0 / K;
  double *rate = calloc((size_t)K + 1, sizeof(double)), E0 = 0, scale = 0;
  assert_non_null(rate);
  kf_stats st;
  sb_error err;
  for (int k = 0; k <= K; k++) {
    if (k) assert_int_equal(kf_steps(s, w, uv, dt, 1, &err), 0);
    kf_fine_stats(s, w, uv, &st);
    if (!k) E0 = st.energy;
    rate[k] = budget_rate(&st);
    scale += (fabs(st.forcing) + st.dissipation + st.drag) * dt;
  }
  double integral = rate[0] + rate[K];
  for (int k = 1; k < K; k++) integral += (k % 2 ? 4 : 2) * rate[k];
  integral *= dt / 3;
  double dE = st.energy - E0, rel = fabs(dE - integral) / scale;
  print_message("energy budget over 2 time units: E %.5f -> %.5f, dE %.6e, int(P - D - drag) %.6e, "
                "relative mismatch %.2e (of int |terms| %.3f); P %.4f D %.4f drag %.4f at the end\n",
                E0, st.energy, dE, integral, rel, scale, st.forcing, st.dissipation, st.drag);
  assert_true(rel < 1e-6);
  free(rate);
  free(w);
  kf_free(s);
}

static void test_step_convergence(void **state) {
  (void)state;
  kf_solver *s = make(64, 1.0, 10, 3.0);
  size_t S = kf_spec_size(s);
  double *w0 = malloc(sizeof(double) * 2 * S), *w = malloc(sizeof(double) * 2 * S),
         *ref = malloc(sizeof(double) * 2 * S), uv0[2], uv[2];
  attractor_fine(s, w0, uv0, 20);
  sb_error err;
  const double T = 0.2;
  memcpy(ref, w0, sizeof(double) * 2 * S);
  memcpy(uv, uv0, sizeof uv);
  assert_int_equal(kf_steps(s, ref, uv, T / 256, 256, &err), 0);
  double e[4];
  const long ns[4] = {8, 16, 32, 64};
  double norm = 0;
  for (size_t i = 0; i < 2 * S; i++) norm = fmax(norm, fabs(ref[i]));
  for (int k = 0; k < 4; k++) {
    memcpy(w, w0, sizeof(double) * 2 * S);
    memcpy(uv, uv0, sizeof uv);
    assert_int_equal(kf_steps(s, w, uv, T / ns[k], ns[k], &err), 0);
    e[k] = max_abs_diff(w, ref, 2 * S) / norm;
  }
  print_message("IF-RK4 over 0.2: relative errors %.2e %.2e %.2e %.2e at 8, 16, 32, 64 steps; orders %.2f %.2f %.2f\n",
                e[0], e[1], e[2], e[3], log2(e[0] / e[1]), log2(e[1] / e[2]), log2(e[2] / e[3]));
  for (int k = 0; k < 2; k++) {
    double order = log2(e[k] / e[k + 1]);
    assert_true(order > 3.6 && order < 4.4);
  }
  free(w0); free(w); free(ref);
  kf_free(s);
}

static void test_numpy_reference(void **state) {
  (void)state;
  npy_array a;
  sb_error err;
  assert_int_equal(npy_read("tests/data/reference/kolmogorov_numpy.npy", &a, &err), 0);
  assert_int_equal(npy_to_f64(&a, &err), 0);
  assert_int_equal(a.ndim, 5);
  size_t C = a.shape[0];
  assert_int_equal(a.shape[1], 3);
  assert_int_equal(a.shape[2] * a.shape[3] * a.shape[4], D);
  const double *ref = a.data;
  kf_solver *s = make(64, 1.0, 10, 0.0); /* the fixture's fixed 10 steps per interval */
  double *x = malloc(sizeof(double) * C * D);
  for (size_t c = 0; c < C; c++) memcpy(x + c * D, ref + (c * 3) * D, sizeof(double) * D);
  assert_int_equal(kf_advance(s, x, C, 1, &err), 0);
  for (size_t c = 0; c < C; c++) {
    double e = max_abs_diff(x + c * D, ref + (c * 3 + 1) * D, D);
    print_message("numpy reference case %zu, 1 interval: max error %.2e\n", c, e);
    assert_true(e < 1e-10);
  }
  assert_int_equal(kf_advance(s, x, C, 2, &err), 0);
  for (size_t c = 0; c < C; c++) {
    double e = max_abs_diff(x + c * D, ref + (c * 3 + 2) * D, D);
    print_message("numpy reference case %zu, 3 intervals: max error %.2e\n", c, e);
    assert_true(e < 1e-10);
  }
  free(x);
  npy_free(&a);
  kf_free(s);
}

static void test_chain_and_batch(void **state) {
  (void)state;
  sim *s;
  sb_error err;
  assert_int_equal(sim_create(&s, "kolmogorov-t", 0, &err), 0);
  const size_t B = 11; /* two plan-many chunks of 4 and 3 alone */
  double *x = malloc(sizeof(double) * B * D), *y = malloc(sizeof(double) * B * D), *one = malloc(sizeof(double) * D);
  assert_int_equal(s->init(s, x, B, 5, 20, &err), 0);
  assert_int_equal(s->advance(s, x, B, 6, &err), 0); /* off the initial field */
  memcpy(y, x, sizeof(double) * B * D);
  assert_int_equal(s->advance(s, x, B, 2, &err), 0);
  assert_int_equal(s->advance(s, y, B, 1, &err), 0);
  assert_int_equal(s->advance(s, y, B, 1, &err), 0);
  assert_memory_equal(x, y, sizeof(double) * B * D);
  /* member 9 alone (stream 29) equals member 9 of the batch */
  assert_int_equal(sim_sample_at(s, one, 1, 8, 5, 29, &err), 0);
  assert_memory_equal(one, x + 9 * D, sizeof(double) * D);
  assert_int_equal(sim_sample_at(s, one, 1, 8, 5, 22, &err), 0);
  assert_memory_equal(one, x + 2 * D, sizeof(double) * D);
  free(x); free(y); free(one);
  sim_free(s);
}

/* one simulator, two threads advancing their own batches at once: the same bits as serially */
typedef struct par_job {
  const sim *s;
  double *x;
  size_t B;
  int rc;
} par_job;

static void *par_advance(void *arg) {
  par_job *j = arg;
  sb_error err;
  j->rc = j->s->advance(j->s, j->x, j->B, 3, &err);
  return NULL;
}

static void test_threads_share_a_simulator(void **state) {
  (void)state;
  sim *s;
  sb_error err;
  assert_int_equal(sim_create(&s, "kolmogorov-t", 0, &err), 0);
  const size_t B = 5;
  double *a = malloc(sizeof(double) * 2 * B * D), *b = malloc(sizeof(double) * 2 * B * D);
  assert_int_equal(s->init(s, a, 2 * B, 8, 0, &err), 0);
  memcpy(b, a, sizeof(double) * 2 * B * D);
  assert_int_equal(s->advance(s, b, 2 * B, 3, &err), 0);
  par_job jobs[2] = {{s, a, B, -1}, {s, a + B * D, B, -1}};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, par_advance, &jobs[1]), 0);
  par_advance(&jobs[0]);
  pthread_join(th, NULL);
  assert_int_equal(jobs[0].rc, 0);
  assert_int_equal(jobs[1].rc, 0);
  assert_memory_equal(a, b, sizeof(double) * 2 * B * D);
  free(a);
  free(b);
  sim_free(s);
}

static void test_round_trip(void **state) {
  (void)state;
  kf_solver *s = make(64, 1.0, 10, 3.0);
  size_t S = kf_spec_size(s);
  double *x = malloc(sizeof(double) * D), *y = malloc(sizeof(double) * D), *w = malloc(sizeof(double) * 2 * S),
         uv[2];
  sb_error err;
  /* a random initial field has no coarse Nyquist content: restrict(prolong(x)) = x */
  assert_int_equal(kf_init_random(s, x, 1, 3, 0, &err), 0);
  assert_int_equal(kf_prolong(s, x, w, uv, &err), 0);
  assert_int_equal(kf_restrict(s, w, uv, y, &err), 0);
  double e = max_abs_diff(x, y, D);
  print_message("restrict(prolong(x)) - x: %.2e\n", e);
  assert_true(e < 1e-13);
  /* the initial field: largest speed 3 on the solver grid, zero mean */
  assert_int_equal(kf_random_fine(s, w, uv, 3, 0, &err), 0);
  double *u = malloc(sizeof(double) * 64 * 64), *v = malloc(sizeof(double) * 64 * 64), mx = 0, mu = 0;
  assert_int_equal(kf_velocity(s, w, uv, u, v, &err), 0);
  for (int i = 0; i < 64 * 64; i++) mx = fmax(mx, hypot(u[i], v[i])), mu += u[i];
  assert_true(fabs(mx - 3.0) < 1e-12);
  assert_true(fabs(mu / 4096) < 1e-13);
  free(x); free(y); free(w); free(u); free(v);
  kf_free(s);
}

static void test_presets(void **state) {
  (void)state;
  sim *s;
  sb_error err;
  assert_int_equal(sim_create(&s, "kolmogorov", 0, &err), 0);
  assert_string_equal(s->system, "kolmogorov");
  assert_int_equal(s->channels, 2);
  assert_int_equal(s->height, 32);
  assert_int_equal(s->width, 32);
  assert_int_equal(s->dim, 2048);
  assert_true(s->stationary);
  assert_true(fabs(s->dt - 0.2) < 1e-15);
  sim_free(s);
  assert_int_equal(sim_create(&s, "kolmogorov-t", 32, &err), 0);
  assert_false(s->stationary);
  assert_int_equal(s->t_max, 127);
  double x[D];
  assert_int_equal(sim_sample_at(s, x, 1, 128, 1, 0, &err), SB_ERANGE);
  sim_free(s);
  assert_int_equal(sim_create(&s, "kolmogorov", 64, &err), SB_ERANGE);
  assert_null(s);
  assert_non_null(strstr(err.msg, "32"));
  assert_int_equal(sim_create(&s, "kolmogorov-x", 0, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "kolmogorov-t"));
}

static void test_spectrum(void **state) {
  (void)state;
  kf_solver *s = make(64, 1.0, 10, 3.0);
  double *x = malloc(sizeof(double) * 2 * D), spec[M / 2 + 1] = {0};
  coarse_of(64, taylor_green, x);
  coarse_of(64, single_mode, x + D);
  double e[2] = {0, 0};
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < D; i++) e[b] += 0.5 * x[b * D + i] * x[b * D + i] / (M * M);
  sb_error err;
  assert_int_equal(kf_coarse_spectrum(s, x, 2, spec, &err), 0);
  /* Taylor-Green: |k| = sqrt 2 -> shell 1; cos(3x + 2y): sqrt 13 = 3.6 -> shell 4 */
  assert_true(fabs(spec[1] - e[0]) < 1e-14);
  assert_true(fabs(spec[4] - e[1]) < 1e-14);
  double rest = 0;
  for (int k = 0; k <= M / 2; k++) rest += (k == 1 || k == 4) ? 0 : spec[k];
  assert_true(rest < 1e-28);
  free(x);
  kf_free(s);
}

static void test_errors(void **state) {
  (void)state;
  kf_solver *s = make(64, 1.0, 10, 3.0);
  double *x = calloc(2 * D, sizeof(double));
  sb_error err;
  assert_int_equal(kf_advance(s, x, 2, -1, &err), SB_EINVAL);
  x[D + 5] = NAN;
  assert_int_equal(kf_advance(s, x, 2, 1, &err), SB_ENUMERIC);
  assert_non_null(strstr(err.msg, "state 1 is not finite"));
  x[D + 5] = 1e6;
  assert_int_equal(kf_advance(s, x, 2, 1, &err), SB_ERANGE);
  assert_non_null(strstr(err.msg, "too fast"));
  kf_config c;
  kf_config_default(&c);
  c.n = 48; /* not a multiple of 32 */
  kf_solver *bad = NULL;
  assert_int_equal(kf_create(&bad, &c, &err), SB_EINVAL);
  assert_null(bad);
  free(x);
  kf_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_decay),      cmocka_unit_test(test_advection_by_mean_flow),
      cmocka_unit_test(test_divergence_free),
      cmocka_unit_test(test_energy_balance),   cmocka_unit_test(test_step_convergence),
      cmocka_unit_test(test_numpy_reference),  cmocka_unit_test(test_chain_and_batch),
      cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_presets),
      cmocka_unit_test(test_errors),           cmocka_unit_test(test_threads_share_a_simulator),
      cmocka_unit_test(test_spectrum),
  };
  return cmocka_run_group_tests_name("kolmogorov", tests, NULL, NULL);
}
