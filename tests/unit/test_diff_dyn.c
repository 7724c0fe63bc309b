/* The dynamics term of the guidance (diff_dyn.h): a weak-constraint
 * sum_k log N(x_hat_{k+1} | M(x_hat_k), Q_k) over the window, with M the
 * simulator's step and its adjoint (sim.h step_vjp).
 *  - the Lorenz96 RK4 adjoint equals central differences of the forward
 *    (N = 4, 8, 40; 1 and 3 RK4 steps), and its forward equals l96_rk4;
 *  - diff_dyn_grad equals central differences of its own value;
 *  - the guided eps with the term equals a finite difference of the log
 *    likelihood plus the dense dynamics term through an exact Gaussian
 *    denoiser's x_hat (Lorenz96 N = 4, three states), and the term moves it;
 *  - a system without an adjoint, q <= 0 or mmps guidance is refused;
 *  - score_net_diff_sample's fallback: a request whose sampler fails with
 *    SB_ENUMERIC runs again with dynamics_gamma x3, its samples then those of
 *    a direct run at that gamma (also from a warm start), the failed tries
 *    recorded; a request that does not fail runs once, unchanged; with
 *    dynamics_retries 0 or without the term it is not retried. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "diff/diff.h"
#include "kinds/score/score_net.h"
#include "obs/obs.h"
#include "sim/l96.h"
#include "sim/sim.h"
#include "util/rng.h"
#include "testutil.h"

static void fill(rng *r, double *x, int n, double a, double s) {
  for (int i = 0; i < n; i++) x[i] = a + s * rng_normal(r);
}

/* u^T (M(x + h e) - M(x - h e)) / 2h against xbar^T e for random u, e; the
 * forward against l96_rk4. Relative error < 1e-7 (h = 1e-5 in double: the
 * truncation error is ~1e-10 of O(1) values). A wrong index in the
 * adjoint's stencil, a dropped stage or a wrong stage weight miss by O(1e-2)
 * or more. */
static void test_l96_adjoint_fd(void **state) {
  (void)state;
  const int Ns[3] = {4, 8, 40};
  rng r;
  rng_init(&r, 7, 0);
  for (int a = 0; a < 3; a++)
    for (int nsteps = 1; nsteps <= 3; nsteps += 2) {
      const int N = Ns[a];
      double *x = malloc(sizeof(double) * 8 * N), *u = x + N, *e = u + N, *y = e + N, *xb = y + N, *xp = xb + N,
             *xm = xp + N, *y2 = xm + N;
      double *work = malloc(sizeof(double) * l96_rk4_vjp_work(N, nsteps)), w5[5 * 40];
      fill(&r, x, N, 2.0, 3.0);
      fill(&r, u, N, 0.0, 1.0);
      fill(&r, e, N, 0.0, 1.0);
      l96_rk4_vjp(x, u, y, xb, N, 8.0, 0.05, nsteps, work);
      memcpy(y2, x, sizeof(double) * N);
      l96_rk4(y2, 1, N, 8.0, 0.05, nsteps, w5);
      for (int i = 0; i < N; i++) assert_true(fabs(y[i] - y2[i]) < 1e-12 * (1 + fabs(y2[i])));
      const double h = 1e-5;
      for (int i = 0; i < N; i++) xp[i] = x[i] + h * e[i], xm[i] = x[i] - h * e[i];
      l96_rk4(xp, 1, N, 8.0, 0.05, nsteps, w5);
      l96_rk4(xm, 1, N, 8.0, 0.05, nsteps, w5);
      double fd = 0, ad = 0, scale = 0;
      for (int i = 0; i < N; i++) {
        fd += u[i] * (xp[i] - xm[i]) / (2 * h);
        ad += xb[i] * e[i];
        scale += fabs(xb[i] * e[i]);
      }
      print_message("l96 adjoint N = %d, %d steps: u^T J e %.10f by differences, %.10f by the adjoint\n", N, nsteps,
                    fd, ad);
      assert_true(fabs(fd - ad) < 1e-7 * (1 + scale));
      free(x);
      free(work);
    }
}

/* diff_dyn_grad's gradient against central differences of its value
 * (three states of l96-sakov N = 8, a scale per component, ratio2 0.3):
 * a sign, a missing adjoint or a Q without its Tweedie part fail. */
static void test_dyn_grad_fd(void **state) {
  (void)state;
  sim *s;
  sb_error err;
  assert_int_equal(sim_create(&s, "l96-sakov", 8, &err), 0);
  assert_non_null(s->step_vjp);
  enum { N = 8, NB = 3, D = N * NB };
  diff_dynamics d = {s, 0.05, 0.2};
  rng r;
  rng_init(&r, 3, 0);
  double x[D], sc[D], gr[D];
  fill(&r, x, D, 2.0, 3.0);
  for (int i = 0; i < D; i++) sc[i] = 2.0 + 0.1 * i, gr[i] = 0;
  double *scr = malloc(sizeof(double) * diff_dyn_scratch(&d, NB));
  double val = diff_dyn_grad(&d, NB, x, sc, 0.3, gr, scr), worst = 0, big = 0;
  assert_true(val < 0);
  for (int i = 0; i < D; i++) {
    double h = 1e-6, xp[D], xm[D], g0[D];
    memcpy(xp, x, sizeof xp);
    memcpy(xm, x, sizeof xm);
    xp[i] += h, xm[i] -= h;
    double fd = (diff_dyn_grad(&d, NB, xp, sc, 0.3, g0, scr) - diff_dyn_grad(&d, NB, xm, sc, 0.3, g0, scr)) / (2 * h);
    worst = fmax(worst, fabs(fd - gr[i]) / (1 + fabs(fd)));
    big = fmax(big, fabs(gr[i]));
  }
  print_message("dynamics gradient: max scaled error %.2g, largest component %.2f\n", worst, big);
  assert_true(worst < 1e-6);
  assert_true(big > 0.1);
  free(scr);
  sim_free(s);
}

// ----------------------------------------------------------------------------
// the guided eps through an exact Gaussian denoiser

/* three states of Lorenz96 N = 4 (D = 12); standardized prior N(pm, diag pc),
 * physical x = M + S z */
enum { NS = 4, NB = 3, D = NS * NB };
static double pm[D], pc[D], M[D], S[D];

static const tu_gauss gauss = {D, pm, pc};
static const diff_denoiser denoiser = {D, (void *)&gauss, tu_gauss_v, tu_gauss_vjp};
static const double gy[NB * 2] = {1.0, NAN, -0.5, 2.0, 0.7, 1.5}, gnoise[2] = {0.5, 1.0};
#define GA "{\"type\":\"dense\",\"matrix\":[[1,0.5,0,0],[0,-1,0,2]]}"
static const double gA[2 * NS] = {1, 0.5, 0, 0, 0, -1, 0, 2};

/* the prior and the physical scale every guided test here uses */
static void fill_prior(void) {
  for (int j = 0; j < D; j++) {
    pm[j] = 0.3 * sin(1.0 + j), pc[j] = 0.5 + 0.1 * (j % 5);
    M[j] = 2.3 + 0.2 * (j % 3), S[j] = 3.6 - 0.2 * (j % 4);
  }
}

/* the log likelihood plus the dense dynamics term, both through the exact x_hat */
typedef struct post_ctx {
  const sim *s;
  double tau, gamma, q, gd;
} post_ctx;

static double logpost(const double *x, void *ctx) {
  const post_ctx *c = ctx;
  const sim *s = c->s;
  const double tau = c->tau, gamma = c->gamma, q = c->q, gd = c->gd;
  double mu = diff_mu(tau), sg = diff_sigma(tau), ll = 0, xp[D], r2 = (sg / mu) * (sg / mu);
  for (int j = 0; j < D; j++) xp[j] = M[j] + S[j] * tu_gauss_xhat(&gauss, tau, j, x[j]);
  ll += tu_sda_loglik(gA, 2, NS, NB, gy, gnoise, xp, S, gamma * r2);
  if (q <= 0) return ll;
  double w5[5 * NS];
  for (int k = 0; k + 1 < NB; k++) {
    double y[NS];
    memcpy(y, xp + k * NS, sizeof y);
    l96_rk4(y, 1, NS, s->param[0], s->param[1], 1, w5); /* the preset's F and integration step */
    for (int i = 0; i < NS; i++) {
      double sk = S[k * NS + i], sn = S[(k + 1) * NS + i];
      double Q = q + gd * r2 * (sk * sk + sn * sn), rr = xp[(k + 1) * NS + i] - y[i];
      ll += -0.5 * rr * rr / Q;
    }
  }
  return ll;
}

/* eps_post = eps_hat - sigma grad log p, the gradient by central differences
 * (step 1e-5 in double), tolerance 2e-5 (1 + |eps|) (float outputs, as in
 * test_diff_bg.c). The term must move eps by > 0.05 against the same call
 * without it, so dropping it, its scale S (the standardized chain rule),
 * Q's Tweedie part or the adjoint fails. */
static void test_dynamics_eps_by_hand(void **state) {
  (void)state;
  sim *s;
  obs_op *op;
  sb_error err;
  assert_int_equal(sim_create(&s, "l96-sakov", NS, &err), 0);
  assert_int_equal(obs_from_string(&op, GA, 1, 1, NS, &err), 0);
  fill_prior();
  const double gammas[2] = {0.1, 0.05}, qs[2] = {0.3, 2.0};
  for (int c = 0; c < 2; c++)
    for (int ti = 0; ti < 2; ti++) {
      double gamma = 0.5, tau = ti ? 0.15 : 0.6, q = qs[c], gd = gammas[c];
      diff_dynamics dy = {s, q, gd};
      diff_guidance g = {op, NB, gy, gnoise, M, S, gamma, NULL, 0, 0, &dy, 0}, g0 = g;
      g0.dyn = NULL;
      float x[2 * D], eps[2 * D], eps0[2 * D], *scratch = malloc(sizeof(float) * diff_eps_scratch(&denoiser, &g, 2));
      for (int b = 0; b < 2; b++)
        for (int j = 0; j < D; j++) x[b * D + j] = (float)(0.3 * j - 1.5 + 0.7 * b);
      assert_int_equal(diff_eps(&denoiser, &g, x, tau, 2, eps, NULL, scratch, &err), 0);
      assert_int_equal(diff_eps(&denoiser, &g0, x, tau, 2, eps0, NULL, scratch, &err), 0);
      post_ctx pcx = {s, tau, gamma, q, gd};
      double worst = tu_gauss_eps_fd_error(&gauss, x, eps, 2, tau, logpost, &pcx), moved = 0;
      for (int i = 0; i < 2 * D; i++) moved = fmax(moved, fabs(eps[i] - eps0[i]));
      print_message("dynamics eps (q %.1f, gamma_d %.2f, tau %.2f): max scaled error %.2g; the term moves eps by up "
                    "to %.2f\n", q, gd, tau, worst, moved);
      assert_true(worst < 2e-5);
      assert_true(moved > 0.05);
      free(scratch);
    }
  obs_free(op);
  sim_free(s);
}

/* refused: a system without an adjoint (Kolmogorov, linear-gauss), a state
 * size other than the operator's, q <= 0, and moment-matching guidance */
static void test_dynamics_refused(void **state) {
  (void)state;
  sim *s, *kf, *lg, *s8;
  obs_op *op;
  sb_error err;
  assert_int_equal(sim_create(&s, "l96-sakov", NS, &err), 0);
  assert_int_equal(sim_create(&s8, "l96-sakov", 8, &err), 0);
  assert_int_equal(sim_create(&kf, "kolmogorov", 0, &err), 0);
  assert_int_equal(sim_create(&lg, "linear-gauss", 0, &err), 0);
  assert_null(kf->step_vjp);
  assert_null(lg->step_vjp);
  sim *th;
  assert_int_equal(sim_create(&th, "l96-thesis", 32, &err), 0);
  assert_non_null(th->step_vjp);
  sim_free(th);
  assert_int_equal(obs_from_string(&op, GA, 1, 1, NS, &err), 0);
  fill_prior();
  diff_sampler_config c;
  diff_sampler_defaults(&c);
  c.steps = 4;
  float x[2 * D];
  diff_dynamics bad[4] = {{kf, 0.1, 0.1}, {s8, 0.1, 0.1}, {s, 0.0, 0.1}, {lg, 0.1, 0.1}};
  for (int i = 0; i < 4; i++) {
    diff_guidance g = {op, NB, gy, gnoise, M, S, 0.5, NULL, 0, 0, &bad[i], 0};
    assert_int_equal(diff_sample(&denoiser, &g, &c, 2, 1, 0, x, NULL, NULL, NULL, &err), SB_EINVAL);
    assert_non_null(strstr(err.msg, "dynamics"));
  }
  diff_dynamics ok = {s, 0.1, 0.1};
  diff_guidance g = {op, NB, gy, gnoise, M, S, 0.5, NULL, 0, 0, &ok, 0};
  assert_int_equal(diff_sample(&denoiser, &g, &c, 2, 1, 0, x, NULL, NULL, NULL, &err), 0);
  c.guidance = DIFF_GUIDE_MMPS;
  assert_int_equal(diff_sample(&denoiser, &g, &c, 2, 1, 0, x, NULL, NULL, NULL, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "mmps"));
  obs_free(op);
  sim_free(s);
  sim_free(s8);
  sim_free(kf);
  sim_free(lg);
}

// ----------------------------------------------------------------------------
// score_net_diff_sample: the dynamics term's fallback

/* the Gaussian denoiser, broken (NaN) while the dynamics term's gamma is
 * below `below`: a sampler that diverges at one gamma and not at another,
 * without depending on where a real divergence sets in */
typedef struct flaky {
  const diff_dynamics *dyn;
  double below;
  int calls;
} flaky;

static int flaky_v(void *ctx, const float *x, double tau, int B, float *v, sb_error *err) {
  flaky *f = ctx;
  f->calls++;
  int rc = tu_gauss_v((void *)&gauss, x, tau, B, v, err);
  if (!rc && f->dyn->gamma < f->below) v[0] = NAN;
  return rc;
}

static int flaky_vjp(void *ctx, const float *x, double tau, int B, float *v, diff_cot_fn cot_fn, void *cot_ctx,
                     float *cot, float *g, sb_error *err) {
  flaky *f = ctx;
  f->calls++;
  int rc = tu_gauss_vjp((void *)&gauss, x, tau, B, v, cot_fn, cot_ctx, cot, g, err);
  if (!rc && f->dyn->gamma < f->below) v[0] = NAN, g[0] = NAN;
  return rc;
}

static double last_frac;
static int backwards;
static void check_progress(void *ctx, double frac) {
  (void)ctx;
  if (frac < last_frac) backwards++;
  last_frac = frac;
}

static void test_dynamics_retry(void **state) {
  (void)state;
  sim *s;
  obs_op *op;
  sb_error err;
  assert_int_equal(sim_create(&s, "l96-sakov", NS, &err), 0);
  assert_int_equal(obs_from_string(&op, GA, 1, 1, NS, &err), 0);
  fill_prior(); /* not left to the test that runs before */
  enum { B = 3 };
  diff_sampler_config c;
  diff_sampler_defaults(&c);
  c.steps = 6;
  diff_dynamics dy = {s, 0.3, 0.1};
  flaky fl = {&dy, 0.25, 0};
  const diff_denoiser fd = {D, &fl, flaky_v, flaky_vjp};
  diff_guidance g = {op, NB, gy, gnoise, M, S, 0.5, NULL, 0, 0, &dy, 0};
  json_t *none = json_object(), *off = json_pack("{s:i}", "dynamics_retries", 0),
         *one = json_pack("{s:i}", "dynamics_retries", 1);
  est_options o = {B, 42, 0, 1, NULL, check_progress, NULL, none};
  float x[B * D], ref[B * D];
  json_t *tries = NULL;
  for (int warm = 0; warm < 2; warm++) {
    c.start = warm ? 0.5 : 1.0;
    float x0[B * D];
    for (int i = 0; i < B * D; i++) x0[i] = (float)(0.2 * (i % 7) - 0.5);
    /* the direct run at gamma 0.3, the one that does not fail */
    dy.gamma = 0.3;
    memcpy(ref, x0, sizeof ref);
    assert_int_equal(diff_sample(&fd, &g, &c, B, 42, 0, ref, NULL, NULL, NULL, &err), 0);
    /* gamma 0.1 fails, 0.3 runs: one retry, the samples of the direct run */
    dy.gamma = 0.1;
    memcpy(x, x0, sizeof x);
    last_frac = -1, backwards = 0, fl.calls = 0;
    assert_int_equal(score_net_diff_sample(&fd, &g, &dy, &c, &o, x, &tries, &err), 0);
    assert_memory_equal(x, ref, sizeof x);
    assert_true(fabs(dy.gamma - 0.3) < 1e-12);
    assert_int_equal(json_array_size(tries), 1);
    assert_true(fabs(json_number_value(json_object_get(json_array_get(tries, 0), "gamma")) - 0.1) < 1e-12);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(tries, 0), "error")), "non-finite"));
    assert_int_equal(backwards, 0);
    assert_true(last_frac == 1.0);
    assert_int_equal(fl.calls, 2 * diff_evaluations(&c)); /* the failed try ran to its end, then the retry */
    json_t *dj = score_net_dynamics_json(&dy, tries);
    assert_int_equal(json_array_size(json_object_get(dj, "retries")), 1);
    json_decref(dj);
    /* a request that does not fail runs once: the same samples, no record */
    dy.gamma = 0.3;
    memcpy(x, x0, sizeof x);
    fl.calls = 0;
    assert_int_equal(score_net_diff_sample(&fd, &g, &dy, &c, &o, x, &tries, &err), 0);
    assert_null(tries);
    assert_memory_equal(x, ref, sizeof x);
    assert_int_equal(fl.calls, diff_evaluations(&c));
  }
  /* dynamics_retries 0: the first failure is the answer */
  c.start = 1.0;
  dy.gamma = 0.1;
  o.params = off;
  assert_int_equal(score_net_diff_sample(&fd, &g, &dy, &c, &o, x, &tries, &err), SB_ENUMERIC);
  assert_null(tries);
  assert_true(dy.gamma == 0.1);
  /* a threshold no retry reaches (0.1 x 3 = 0.3 < 0.5): fails, and says after how many tries */
  fl.below = 0.5;
  o.params = one;
  assert_int_equal(score_net_diff_sample(&fd, &g, &dy, &c, &o, x, &tries, &err), SB_ENUMERIC);
  assert_null(tries);
  assert_non_null(strstr(err.msg, "after 2 tries"));
  assert_non_null(strstr(err.msg, "non-finite"));
  /* without the dynamics term (dyn NULL) nothing is retried */
  dy.gamma = 0.1;
  fl.calls = 0;
  o.params = none;
  assert_int_equal(score_net_diff_sample(&fd, &g, NULL, &c, &o, x, &tries, &err), SB_ENUMERIC);
  assert_int_equal(fl.calls, diff_evaluations(&c));
  json_decref(none);
  json_decref(off);
  json_decref(one);
  obs_free(op);
  sim_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_l96_adjoint_fd),
      cmocka_unit_test(test_dyn_grad_fd),
      cmocka_unit_test(test_dynamics_eps_by_hand),
      cmocka_unit_test(test_dynamics_refused),
      cmocka_unit_test(test_dynamics_retry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
