/* npe flow: masks, exact inversion, the log-determinant against a numerical
 * Jacobian, parameter gradients against finite differences, thread
 * independence, fitting a Gaussian whose answer is known, a short npe
 * training run, the model file round trip and the estimator (samples,
 * densities consistent with log_prob, operator checks). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "catalog/catalog.h"
#include "kinds/kinds.h"
#include "kinds/npe/flow.h"
#include "kinds/npe/npe.h"
#include "nn/nn_optim.h"
#include "util/rng.h"
#include "model/model.h"
#include "train/train.h"
#include "testutil.h"

enum { TN = 8, TW = 2 };

/* A hand-built npe model over TN nodes with random weights scaled by wscale
 * (so that log-scales and shifts are far from zero). */
static void tiny_model(model *sm, int K, int time_varying, float wscale, uint64_t seed) {
  memset(sm, 0, sizeof *sm);
  sm->kind = &kind_npe;
  sm->N = TN, sm->W = TW, sm->time_varying = time_varying;
  sb_error err;
  assert_int_equal(kind_npe.settings_new(&sm->settings, &err), 0);
  npe_settings_of(sm)->couplings = K, npe_settings_of(sm)->clamp = 2.0;
  nn_resnet_config rc = {.dims = 1, .h = 1, .w = TN, .cin = kind_npe.in_channels(TW),
                         .cout = kind_npe.out_channels(TW), .width = 8, .blocks = 1, .groups = 2,
                         .n_scalars = 1 + time_varying, .emb_dim = 4};
  assert_int_equal(nn_resnet_init(&sm->net, &rc, &err), 0);
  nn_model_init_params(&sm->net, seed);
  for (size_t i = 0; i < sm->net.n_params; i++) sm->net.params[i] *= wscale;
}

static void fill(float *v, size_t n, uint64_t seed, double sd) {
  rng r;
  rng_init(&r, seed, 0);
  for (size_t i = 0; i < n; i++) v[i] = (float)(sd * rng_normal(&r));
}

static void test_masks(void **state) {
  (void)state;
  float m[4][TN];
  for (int k = 0; k < 4; k++) flow_mask(k, TN, m[k]);
  for (int n = 0; n < TN; n++) {
    /* complementary pairs: every node is transformed exactly twice in 4 couplings */
    assert_true(m[0][n] + m[1][n] == 1.0f && m[2][n] + m[3][n] == 1.0f);
  }
  assert_true(m[0][0] == 1 && m[0][1] == 0 && m[2][0] == 1 && m[2][1] == 1 && m[2][2] == 0);
}

static void test_inverse_and_logdet(void **state) {
  (void)state;
  model sm;
  tiny_model(&sm, 4, 1, 2.0f, 11);
  flow_buf fb;
  sb_error err;
  assert_int_equal(flow_buf_init(&fb, &sm, 4, 0, &err), 0);
  float x[4 * TN], cond[2 * TW * TN], x2[4 * TN], tsc[4] = {0.1f, 0.5f, 0.9f, 0.3f};
  fill(x, 4 * TN, 1, 1.0);
  fill(cond, 2 * TW * TN, 2, 1.0);
  double lq[4], lq2[4];
  assert_int_equal(flow_forward(&sm, &fb, x, cond, 0, tsc, 4, lq), 0);
  float u[4 * TN];
  memcpy(u, fb.h + (size_t)4 * 4 * TN, sizeof u);
  double maxs = 0;
  for (int i = 0; i < 4 * TN; i++) maxs = fmax(maxs, fabs(u[i] - x[i]));
  assert_true(maxs > 0.1); /* the flow is far from the identity */
  assert_int_equal(flow_inverse(&sm, &fb, u, cond, 0, tsc, 4, x2, lq2), 0);
  double ex = 0, el = 0;
  for (int i = 0; i < 4 * TN; i++) ex = fmax(ex, fabs(x2[i] - x[i]));
  for (int b = 0; b < 4; b++) el = fmax(el, fabs(lq2[b] - lq[b]));
  print_message("inverse: max |x - T^-1(T(x))| %.2e, log q difference %.2e\n", ex, el);
  assert_true(ex < 1e-3 && el < 1e-4); /* float32 through scales up to e^2 per coupling */

  /* log q(x) = log N(T(x)) + log|det dT/dx|: the determinant from a central
   * finite-difference Jacobian (double, h = 1e-2 in float) */
  for (int b = 0; b < 2; b++) {
    double J[TN][TN];
    for (int j = 0; j < TN; j++) {
      float xp[TN], xm[TN];
      memcpy(xp, x + b * TN, sizeof xp);
      memcpy(xm, x + b * TN, sizeof xm);
      xp[j] += 1e-2f, xm[j] -= 1e-2f;
      assert_int_equal(flow_forward(&sm, &fb, xp, cond, 0, tsc + b, 1, NULL), 0);
      float up[TN];
      memcpy(up, fb.h + (size_t)4 * TN, sizeof up);
      assert_int_equal(flow_forward(&sm, &fb, xm, cond, 0, tsc + b, 1, NULL), 0);
      for (int i = 0; i < TN; i++) J[i][j] = ((double)up[i] - fb.h[4 * TN + i]) / 2e-2;
    }
    /* log|det J| by Gaussian elimination with partial pivoting */
    double ld = 0;
    for (int c = 0; c < TN; c++) {
      int p = c;
      for (int r = c + 1; r < TN; r++)
        if (fabs(J[r][c]) > fabs(J[p][c])) p = r;
      for (int k = 0; k < TN; k++) {
        double t = J[c][k];
        J[c][k] = J[p][k], J[p][k] = t;
      }
      ld += log(fabs(J[c][c]));
      for (int r = c + 1; r < TN; r++) {
        double f = J[r][c] / J[c][c];
        for (int k = c; k < TN; k++) J[r][k] -= f * J[c][k];
      }
    }
    double u2 = 0;
    for (int i = 0; i < TN; i++) u2 += (double)u[b * TN + i] * u[b * TN + i];
    double want = -0.5 * u2 - 0.5 * TN * log(2 * M_PI) + ld;
    print_message("sample %d: log q %.5f, from the numerical Jacobian %.5f (log det %.3f)\n", b, lq[b], want, ld);
    assert_true(fabs(ld) > 1.0);
    assert_true(fabs(lq[b] - want) < 1e-3 * fabs(want));
  }
  flow_buf_free(&fb);
  model_free(&sm);
}

/* mean -log q / N of a batch, gradients into sm->net.grads */
static double batch_loss(model *sm, flow_buf *fb, int T, const float *x, const float *cond, const float *tsc,
                         int B) {
  nn_zero_grad(&sm->net);
  double loss;
  sb_error err;
  assert_int_equal(flow_grad_mt(sm, fb, T, x, cond, tsc, B, B, &loss, &err), 0);
  return loss;
}

static void test_gradients(void **state) {
  (void)state;
  enum { B = 6 };
  model sm;
  tiny_model(&sm, 4, 1, 2.0f, 5);
  flow_buf fb[2];
  sb_error err;
  for (int t = 0; t < 2; t++) assert_int_equal(flow_buf_init(&fb[t], &sm, B, 1, &err), 0);
  float x[B * TN], cond[B * 2 * TW * TN], tsc[B];
  fill(x, B * TN, 3, 1.0);
  fill(cond, B * 2 * TW * TN, 4, 1.0);
  for (int b = 0; b < B; b++) tsc[b] = 0.15f * b;
  double l1 = batch_loss(&sm, fb, 1, x, cond, tsc, B);
  size_t P = sm.net.n_params;
  float *g1 = malloc(sizeof(float) * P);
  memcpy(g1, sm.net.grads, sizeof(float) * P);
  /* two threads: the same loss and gradients up to summation order */
  double l2 = batch_loss(&sm, fb, 2, x, cond, tsc, B);
  double gmax = 0, gdiff = 0;
  for (size_t i = 0; i < P; i++) gmax = fmax(gmax, fabs(g1[i])), gdiff = fmax(gdiff, fabs(g1[i] - sm.net.grads[i]));
  assert_true(fabs(l1 - l2) < 1e-9 * fmax(1.0, fabs(l1)));
  assert_true(gdiff < 1e-5 * gmax);
  /* 4-point central differences on 40 parameters spread over every tensor */
  rng r;
  rng_init(&r, 9, 0);
  double worst = 0;
  for (int c = 0; c < 40; c++) {
    size_t i = c < sm.net.n_tensors ? sm.net.tensors[c].offset + rng_below(&r, sm.net.tensors[c].numel)
                                    : rng_below(&r, P);
    float keep = sm.net.params[i], h = 1e-2f;
    double f[4];
    const float off[4] = {2 * h, h, -h, -2 * h};
    for (int k = 0; k < 4; k++) {
      sm.net.params[i] = keep + off[k];
      f[k] = batch_loss(&sm, fb, 1, x, cond, tsc, B);
    }
    sm.net.params[i] = keep;
    double num = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h);
    double e = fabs(num - g1[i]) / (1e-2 + fabs(num));
    worst = fmax(worst, e);
    if (e > 2e-2) print_message("param %zu: analytic %.6g numeric %.6g\n", i, g1[i], num);
  }
  print_message("gradient check: worst scaled error %.2e over 40 parameters\n", worst);
  assert_true(worst < 2e-2);
  free(g1);
  for (int t = 0; t < 2; t++) flow_buf_free(&fb[t]);
  model_free(&sm);
}

/* Fits q(x | c) to a known conditional Gaussian by Adam on the flow's NLL:
 * x_n = 0.8 c_n + a e_n + b e_{n+1} (circular), e ~ N(0, I), where c is the
 * first conditioning channel. Translation invariant like the systems the
 * conv conditioner is built for, correlated between neighbours. Samples for
 * a fixed c must recover the conditional mean, std sqrt(a^2+b^2) and the
 * neighbour correlation ab / (a^2+b^2); the NLL must approach the exact one. */
static void test_fits_a_gaussian(void **state) {
  (void)state;
  enum { B = 128, STEPS = 1500, S = 4000, CS = 2 * TW * TN };
  const double A = 0.3, Bc = 0.2, sdx = sqrt(A * A + Bc * Bc), rho = A * Bc / (A * A + Bc * Bc);
  model sm;
  tiny_model(&sm, 4, 0, 1.0f, 21);
  flow_buf fb[2], fs;
  sb_error err;
  for (int t = 0; t < 2; t++) assert_int_equal(flow_buf_init(&fb[t], &sm, B / 2, 1, &err), 0);
  float *x = malloc(sizeof(float) * B * TN), *cond = calloc((size_t)B * CS, sizeof(float));
  nn_adamw opt = nn_adamw_default();
  opt.weight_decay = 0;
  rng r;
  rng_init(&r, 17, 0);
  double first = 0, last = 0, e[TN];
  for (int s = 0; s < STEPS; s++) {
    for (int b = 0; b < B; b++) {
      for (int n = 0; n < TN; n++) cond[(size_t)b * CS + n] = (float)rng_normal(&r), e[n] = rng_normal(&r);
      for (int n = 0; n < TN; n++)
        x[b * TN + n] = (float)(0.8 * cond[(size_t)b * CS + n] + A * e[n] + Bc * e[(n + 1) % TN]);
    }
    double l = batch_loss(&sm, fb, 2, x, cond, NULL, B);
    if (s == 0) first = l;
    last = 0.9 * last + 0.1 * l;
    nn_adamw_step(&sm.net, &opt, nn_lr_at(s, 5e-3f, 50, STEPS, NN_LR_COSINE, 0.01f), NULL);
  }
  /* exact NLL per dimension: log det of the circulant factor a I + b shift */
  double ld = 0;
  for (int k = 0; k < TN; k++) {
    double re = A + Bc * cos(2 * M_PI * k / TN), im = Bc * sin(2 * M_PI * k / TN);
    ld += 0.5 * log(re * re + im * im);
  }
  double nll = 0.5 * log(2 * M_PI) + 0.5 + ld / TN;
  print_message("fit: NLL/dim %.3f after 1 step, %.3f after %d (exact %.3f)\n", first, last, STEPS, nll);
  assert_true(last < nll + 0.05);
  /* samples for one fixed c */
  float c1[CS] = {0};
  for (int n = 0; n < TN; n++) c1[n] = (float)rng_normal(&r);
  assert_int_equal(flow_buf_init(&fs, &sm, 100, 0, &err), 0);
  double m1[TN] = {0}, m2[TN] = {0}, cr[TN] = {0};
  float u[100 * TN], xs[100 * TN];
  for (int c = 0; c < S / 100; c++) {
    for (int i = 0; i < 100 * TN; i++) u[i] = (float)rng_normal(&r);
    assert_int_equal(flow_inverse(&sm, &fs, u, c1, 0, NULL, 100, xs, NULL), 0);
    for (int b = 0; b < 100; b++)
      for (int n = 0; n < TN; n++) {
        double d = xs[b * TN + n] - 0.8 * c1[n], d1 = xs[b * TN + (n + 1) % TN] - 0.8 * c1[(n + 1) % TN];
        m1[n] += d / S, m2[n] += d * d / S, cr[n] += d * d1 / S;
      }
  }
  double em = 0, es = 0, ec = 0;
  for (int n = 0; n < TN; n++) {
    em = fmax(em, fabs(m1[n]) / sdx);
    es = fmax(es, fabs(sqrt(m2[n]) / sdx - 1));
    ec = fmax(ec, fabs(cr[n] / (sdx * sdx) - rho));
  }
  print_message("fit: worst mean error %.3f std, std ratio error %.3f, neighbour correlation error %.3f (exact %.3f)\n",
                em, es, ec, rho);
  assert_true(em < 0.1 && es < 0.1 && ec < 0.1);
  flow_buf_free(&fs);
  for (int t = 0; t < 2; t++) flow_buf_free(&fb[t]);
  free(x);
  free(cond);
  model_free(&sm);
}

static char model_path[512];

static double train_tiny(long steps) {
  json_t *cfg = json_pack("{s:s, s:s, s:i, s:i, s:{s:s}, s:f, s:{s:i, s:i, s:i, s:i, s:i, s:f},"
                          " s:{s:I, s:i, s:f, s:i, s:i, s:i, s:i, s:f, s:i, s:f}}",
                          "kind", "npe", "preset", "l96-thesis", "N", 16, "window", 3, "operator", "type",
                          "kernel_stations", "noise_std", 0.5, "arch", "width", 16, "blocks", 1, "groups", 4, "emb_dim",
                          8, "couplings", 4, "clamp", 2.0, "train", "steps", (json_int_t)steps, "batch", 32, "lr", 3e-3,
                          "warmup", 5, "pool", 16, "refresh", 1, "val_windows", 64, "ema", 0.8, "val_every", 1000,
                          "missing_entry", 0.1);
  return tu_train(cfg, model_path);
}

static void test_training_reduces_nll(void **state) {
  (void)state;
  snprintf(model_path, sizeof model_path, "%s/tiny-npe.safetensors", tu_tmpdir());
  double v0 = train_tiny(1), v1 = train_tiny(200);
  print_message("npe: validation NLL/dim %.4f after 1 step, %.4f after 200\n", v0, v1);
  assert_true(isfinite(v1) && v1 < v0 - 0.3);
  /* the file round trip */
  model a, b;
  sb_error err;
  assert_int_equal(model_load(&a, model_path, &err), 0);
  assert_string_equal(a.kind->name, "npe");
  assert_int_equal(npe_settings_of(&a)->couplings, 4);
  assert_true(npe_settings_of(&a)->clamp == 2.0);
  assert_int_equal(a.op->kind, OBS_KERNEL_STATIONS);
  char again[600];
  snprintf(again, sizeof again, "%s/again-npe.safetensors", tu_tmpdir());
  assert_int_equal(model_save(&a, 0, again, &err), 0);
  assert_int_equal(model_load(&b, again, &err), 0);
  assert_int_equal(npe_settings_of(&b)->couplings, 4);
  assert_memory_equal(a.net.params, b.net.params, sizeof(float) * a.net.n_params);
  model_free(&a);
  model_free(&b);
}

static void npe_problem(estimator *e, const char *op_json, double noise, int threads, est_result *r, int expect) {
  est_options o = {.n_samples = 70, .seed = 3, .threads = threads};
  int rc = tu_sample(e, op_json, noise, 3, 200, &o, r);
  if (rc != expect) fail_msg("sample: rc %d, expected %d", rc, expect);
  if (rc) return;
  /* the density returned with the samples is log_prob at the samples */
  sb_error err = {0};
  est_problem p;
  tu_problem(e, op_json, noise, 3, 200, &p);
  double lp[70], worst = 0;
  assert_int_equal(e->log_prob(e, &p, &o, r->samples, 70, lp, &err), 0);
  for (int s = 0; s < 70; s++) worst = fmax(worst, fabs(lp[s] - r->log_density[s]));
  assert_true(worst < 1e-3);
  tu_problem_free(&p);
}

static void test_estimator(void **state) {
  (void)state;
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, model_path, NULL, 0, &err), 0);
  assert_string_equal(e->kind, "npe");
  assert_string_equal(e->name, "tiny-npe");
  assert_true(e->has_density && e->log_prob);
  assert_false(e->has_window);
  assert_non_null(e->fixed_op);
  est_result r1, r2;
  npe_problem(e, "{\"type\":\"kernel_stations\"}", 0.5, 1, &r1, 0);
  assert_int_equal(r1.n_samples, 70);
  assert_non_null(r1.log_density);
  for (int i = 0; i < 70 * 16; i++) assert_true(isfinite(r1.samples[i]));
  npe_problem(e, "{\"type\":\"kernel_stations\"}", 0.5, 3, &r2, 0);
  assert_memory_equal(r1.samples, r2.samples, sizeof(double) * 70 * 16); /* any thread count */
  est_result_free(&r1);
  est_result_free(&r2);
  npe_problem(e, "{\"type\":\"identity\"}", 0.5, 1, &r1, SB_EINVAL);
  npe_problem(e, "{\"type\":\"kernel_stations\"}", 1.0, 1, &r1, SB_EINVAL);
  est_free(e);
}

/* npe through the estimator interface on truth windows (its trained
 * operator: kernel stations, noise 0.5, W = 3, t = 200; 6 truths, 64
 * samples): against the prior at t, in observation space and in state
 * space. Measured: observed RMSE 0.32 (prior 1.69), state RMSE 2.58 (prior
 * 3.30), spread 2.96 (prior 3.65). Asserted with margins for a 200-step
 * model: observed RMSE within the noise std 0.5 and < 0.4 x the prior's,
 * state RMSE < 0.85 x and spread < 0.9 x the prior's, spread / RMSE in
 * 0.7..1.5 (neither collapsed nor blown up); a flow that ignores y gives
 * the prior's numbers. */
static void test_npe_learns(void **state) {
  (void)state;
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, model_path, NULL, 0, &err), 0);
  double orm = 0, porm = 0, rm = 0, prm = 0, sp = 0, psp = 0;
  for (int k = 0; k < 6; k++) {
    double *truth, s1, s2;
    est_problem p;
    tu_truth_problem(e, "{\"type\":\"kernel_stations\"}", 0.5, 3, 200, 6, (uint64_t)k, &truth, &p);
    est_options o = {.n_samples = 64, .seed = 4};
    est_result r;
    if (est_sample(e, &p, &o, &r, &err)) fail_msg("%s", err.msg);
    int no = p.op->n_obs;
    const double *xt = truth + 2 * 16;
    double *hs = malloc(sizeof(double) * 256 * no), ht[16], *X = malloc(sizeof(double) * 256 * 16);
    obs_apply(p.op, xt, ht, 1);
    obs_apply(p.op, r.samples, hs, 64);
    orm += tu_rmse_of_mean(hs, 64, (size_t)no, no, ht, NULL) / 6;
    rm += tu_rmse_of_mean(r.samples, 64, 16, 16, xt, &s1) / 6;
    assert_int_equal(sim_sample_at(e->sim, X, 256, 200, 77, 0, &err), 0);
    obs_apply(p.op, X, hs, 256);
    porm += tu_rmse_of_mean(hs, 256, (size_t)no, no, ht, NULL) / 6;
    prm += tu_rmse_of_mean(X, 256, 16, 16, xt, &s2) / 6;
    sp += s1 / 6, psp += s2 / 6;
    free(hs), free(X);
    est_result_free(&r);
    tu_problem_free(&p);
    free(truth);
  }
  print_message("npe: observed rmse %.3f (prior %.3f); state rmse %.3f spread %.3f (prior %.3f, %.3f)\n", orm, porm, rm,
                sp, prm, psp);
  assert_true(orm < 0.5 && orm < 0.4 * porm);
  assert_true(rm < 0.85 * prm && sp < 0.9 * psp);
  assert_true(sp / rm > 0.7 && sp / rm < 1.5);
  est_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_masks),
      cmocka_unit_test(test_inverse_and_logdet),
      cmocka_unit_test(test_gradients),
      cmocka_unit_test(test_fits_a_gaussian),
      cmocka_unit_test(test_training_reduces_nll),
      cmocka_unit_test(test_estimator),
      cmocka_unit_test(test_npe_learns),
  };
  return cmocka_run_group_tests_name("flow", tests, NULL, NULL);
}
