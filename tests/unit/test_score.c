/* Score-based estimators: a short training run whose validation loss drops,
 * the model file round trip, and sampling through the estimator interface
 * (shapes, determinism, operator checks). The sampler's accuracy on an exact
 * Gaussian posterior is tested in test_diff.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kinds/kinds.h"
#include "kinds/score/score_net.h"
#include "model/model.h"
#include "train/train.h"
#include "util/rng.h"
#include "util/safetensors.h"
#include "testutil.h"

static json_t *tiny_config(const char *kind, long steps) {
  json_t *c = json_pack("{s:s, s:s, s:i, s:i, s:{s:i, s:i, s:i, s:i}, s:{s:I, s:i, s:f, s:i, s:i, s:i, s:i, s:f, s:i}, s:{s:i}}",
                        "kind", kind, "preset", "l96-thesis", "N", 16, "window", 3, "arch", "width", 16, "blocks", 1,
                        "groups", 4, "emb_dim", 8, "train", "steps", (json_int_t)steps, "batch", 32, "lr", 3e-3,
                        "warmup", 5, "pool", 16, "refresh", 1, "val_windows", 64, "ema", 0.8, "val_every", 1000,
                        "sampler", "steps", 8);
  if (!strcmp(kind, "posterior-score")) {
    json_object_set_new(c, "operator", json_pack("{s:s}", "type", "kernel_stations"));
    json_object_set_new(c, "noise_std", json_real(0.5));
    json_object_set_new(json_object_get(c, "train"), "missing_entry", json_real(0.1));
  }
  return c;
}

static double train_tiny(const char *kind, long steps, const char *out) {
  return tu_train(tiny_config(kind, steps), out);
}

static char path_buf[2][512];

static void test_training_reduces_validation_loss(void **state) {
  (void)state;
  snprintf(path_buf[0], 512, "%s/tiny-composed.safetensors", tu_tmpdir());
  snprintf(path_buf[1], 512, "%s/tiny-posterior.safetensors", tu_tmpdir());
  double v0 = train_tiny("composed-score", 1, path_buf[0]);
  double v1 = train_tiny("composed-score", 200, path_buf[0]);
  print_message("composed: val loss %.4f after 1 step, %.4f after 200\n", v0, v1);
  assert_true(isfinite(v1) && v1 < 0.8 * v0);
  double p0 = train_tiny("posterior-score", 1, path_buf[1]);
  double p1 = train_tiny("posterior-score", 1000, path_buf[1]);
  print_message("posterior: val loss %.4f after 1 step, %.4f after 1000\n", p0, p1);
  assert_true(isfinite(p1) && p1 < 0.8 * p0);
}

static void test_model_file_roundtrip(void **state) {
  (void)state;
  model a, b;
  sb_error err;
  assert_int_equal(model_load(&a, path_buf[1], &err), 0);
  assert_string_equal(a.kind->name, "posterior-score");
  assert_int_equal(a.W, 3);
  assert_int_equal(a.N, 16);
  assert_true(a.time_varying);
  assert_non_null(a.op);
  assert_int_equal(a.op->kind, OBS_KERNEL_STATIONS);
  assert_true(fabs(a.noise.std[0] - 0.5) < 1e-12);
  assert_int_equal(score_settings_of(&a)->sampler.steps, 8);
  assert_non_null(a.training);
  /* the model file holds the EMA weights (ema 0.8 in the tiny config), not
   * the last raw parameters: both are in the training state file */
  {
    char sp[600];
    snprintf(sp, sizeof sp, "%s.state", path_buf[1]);
    st_file f;
    assert_int_equal(st_read(sp, &f, &err), 0);
    const st_tensor *pe = st_get(&f, "ema"), *pp = st_get(&f, "params");
    assert_non_null(pe);
    assert_non_null(pp);
    assert_int_equal(pe->nbytes, sizeof(float) * a.net.n_params);
    float *ema = malloc(pe->nbytes), *raw = malloc(pp->nbytes);
    memcpy(ema, pe->data, pe->nbytes);
    memcpy(raw, pp->data, pp->nbytes);
    assert_memory_equal(a.net.params, ema, pe->nbytes);
    double d = 0;
    for (size_t i = 0; i < a.net.n_params; i++) d = fmax(d, fabs(raw[i] - ema[i]));
    assert_true(d > 1e-4); /* they differ, so the check above means something */
    free(ema), free(raw);
    st_free(&f);
  }
  char again[600];
  snprintf(again, sizeof again, "%s/again.safetensors", tu_tmpdir());
  assert_int_equal(model_save(&a, 0, again, &err), 0);
  assert_int_equal(model_load(&b, again, &err), 0);
  assert_int_equal(a.net.n_params, b.net.n_params);
  assert_memory_equal(a.net.params, b.net.params, sizeof(float) * a.net.n_params);
  assert_memory_equal(a.mean, b.mean, sizeof(double) * a.N);
  assert_memory_equal(a.std, b.std, sizeof(double) * a.N);
  assert_memory_equal(a.op->idx, b.op->idx, sizeof(int) * a.op->n_idx);
  model_free(&a);
  model_free(&b);
  /* a file that is not a score model */
  assert_int_not_equal(model_load(&a, "tests/data/numpy/f32_2x3.npy", &err), 0);
}

static int n_threads = 1;

static void sample_problem(estimator *e, const char *op_json, double noise, int want_window, uint64_t seed,
                           est_result *r, int expect_rc) {
  est_options o = {.n_samples = 70, .seed = seed, .want_window = want_window, .threads = n_threads};
  int rc = tu_sample(e, op_json, noise, 3, 200, &o, r);
  if (rc != expect_rc) fail_msg("sample: rc %d, expected %d", rc, expect_rc);
}

static void test_estimators_sample(void **state) {
  (void)state;
  estimator *c, *p;
  sb_error err;
  assert_int_equal(model_open_estimator(&c, path_buf[0], &err), 0);
  assert_string_equal(c->name, "tiny-composed");
  assert_string_equal(c->kind, "composed-score");
  assert_null(c->fixed_op);
  est_result r1, r2;
  /* composed: any operator, whole window on request, deterministic per seed */
  sample_problem(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 1, 5, &r1, 0);
  assert_int_equal(r1.n_samples, 70);
  assert_int_equal(r1.dim, 16);
  assert_non_null(r1.window_samples);
  for (int i = 0; i < 70 * 16; i++) assert_true(isfinite(r1.samples[i]));
  /* x_t equals the window's last state */
  assert_memory_equal(r1.samples + 16, r1.window_samples + (1 * 3 + 2) * 16, sizeof(double) * 16);
  sample_problem(c, "{\"type\":\"identity\"}", 0.3, 0, 5, &r2, 0);
  assert_null(r2.window_samples);
  est_result_free(&r2);
  sample_problem(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 1, 5, &r2, 0);
  assert_memory_equal(r1.samples, r2.samples, sizeof(double) * 70 * 16);
  est_result_free(&r2);
  /* the same samples on 3 threads */
  n_threads = 3;
  sample_problem(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 1, 5, &r2, 0);
  n_threads = 1;
  assert_memory_equal(r1.samples, r2.samples, sizeof(double) * 70 * 16);
  est_result_free(&r2);
  est_result_free(&r1);
  est_free(c);

  assert_int_equal(model_open_estimator(&p, path_buf[1], &err), 0);
  assert_non_null(p->fixed_op);
  assert_false(p->has_window);
  sample_problem(p, "{\"type\":\"kernel_stations\"}", 0.5, 0, 1, &r1, 0);
  est_result_free(&r1);
  /* trained for one operator and noise: others are refused with a reason */
  sample_problem(p, "{\"type\":\"identity\"}", 0.5, 0, 1, &r1, SB_EINVAL);
  sample_problem(p, "{\"type\":\"kernel_stations\"}", 1.0, 0, 1, &r1, SB_EINVAL);
  sample_problem(p, "{\"type\":\"kernel_stations\"}", 0.5, 1, 1, &r1, SB_ENOTSUP);
  est_free(p);
  assert_int_not_equal(model_open_estimator(&p, "/nonexistent.safetensors", &err), 0);
}

/* The sampler parameter: unknown names and bad steps are refused before
 * sampling with the allowed values named (the daemon's 422); a request
 * naming another sampler than the file's gets that sampler's defaults and
 * the diagnostics say what ran; the file's default sampler round-trips
 * through sbida.sampler. */
static void check_params(estimator *e, const char *params, int expect_rc, const char *msg_part) {
  json_t *pj = json_loads(params, 0, NULL);
  est_options o = {.n_samples = 4, .seed = 1, .params = pj};
  sb_error err = {0};
  int rc = est_check_options(e, &o, &err);
  json_decref(pj);
  if (rc != expect_rc) fail_msg("%s: rc %d, expected %d (%s)", params, rc, expect_rc, err.msg);
  if (msg_part && !strstr(err.msg, msg_part)) fail_msg("%s: message '%s' lacks '%s'", params, err.msg, msg_part);
}

static json_t *sampler_diag(estimator *e, const char *params, double *first) {
  json_t *pj = json_loads(params, 0, NULL);
  est_options o = {.n_samples = 8, .seed = 2, .params = pj};
  est_result r;
  if (tu_sample(e, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 3, 200, &o, &r)) fail_msg("%s: sampling failed", params);
  json_t *d = json_incref(json_object_get(r.diagnostics, "sampler"));
  *first = r.samples[0];
  est_result_free(&r);
  json_decref(pj);
  return d;
}

static void test_sampler_params(void **state) {
  (void)state;
  estimator *c;
  sb_error err;
  assert_int_equal(model_open_estimator(&c, path_buf[0], &err), 0);
  check_params(c, "{\"sampler\":\"dpm2m\",\"steps\":12}", 0, NULL);
  check_params(c, "{\"sampler\":\"euler\"}", SB_EINVAL, "pc, dpm2m, dpm2m-sde, heun");
  check_params(c, "{\"sampler\":\"dpm2m\",\"schedule\":\"cosine\"}", SB_EINVAL, "lambda, edm, tau");
  check_params(c, "{\"sampler\":\"heun\",\"steps\":0}", SB_EINVAL, "1..4096");
  check_params(c, "{\"sampler\":3}", SB_EINVAL, "string");
  check_params(c, "{\"guidance\":\"dps\"}", SB_EINVAL, "sda, mmps, free");
  check_params(c, "{\"guidance\":\"mmps\",\"guidance_iters\":0}", SB_EINVAL, "1..64");
  double x_pc, x_dpm, x_heun;
  json_t *d = sampler_diag(c, "{}", &x_pc); /* the file's default: pc, 8 steps */
  assert_null(json_object_get(d, "sampler"));
  assert_int_equal(json_integer_value(json_object_get(d, "steps")), 8);
  json_decref(d);
  d = sampler_diag(c, "{\"sampler\":\"dpm2m\",\"steps\":6}", &x_dpm);
  assert_string_equal(json_string_value(json_object_get(d, "sampler")), "dpm2m");
  assert_int_equal(json_integer_value(json_object_get(d, "steps")), 6);
  assert_string_equal(json_string_value(json_object_get(d, "schedule")), "lambda");
  json_decref(d);
  d = sampler_diag(c, "{\"sampler\":\"heun\"}", &x_heun); /* heun's own defaults, not the file's 8 steps */
  assert_int_equal(json_integer_value(json_object_get(d, "steps")), 16);
  assert_string_equal(json_string_value(json_object_get(d, "schedule")), "edm");
  json_decref(d);
  assert_true(x_pc != x_dpm && x_dpm != x_heun);
  /* moment-matching guidance: said in the diagnostics, and it changes the samples */
  double x_mm;
  d = sampler_diag(c, "{\"guidance\":\"mmps\",\"guidance_iters\":2}", &x_mm);
  assert_string_equal(json_string_value(json_object_get(d, "guidance")), "mmps");
  assert_int_equal(json_integer_value(json_object_get(d, "guidance_iters")), 2);
  json_decref(d);
  assert_true(x_mm != x_pc);
  /* the gamma floor for precise observations (diff_gamma_floor): 0/1 only;
   * on pc with 2 steps (r_1 = 2.8) it lifts gamma, the diagnostics say to
   * what, and the samples change; without it, no gamma_used */
  check_params(c, "{\"gamma_floor\":2}", SB_EINVAL, "0..1");
  double x_f0, x_f1;
  d = sampler_diag(c, "{\"steps\":2}", &x_f0);
  assert_null(json_object_get(d, "gamma_used"));
  assert_null(json_object_get(d, "gamma_floor"));
  json_decref(d);
  d = sampler_diag(c, "{\"steps\":2,\"gamma_floor\":1}", &x_f1);
  assert_int_equal(json_integer_value(json_object_get(d, "gamma_floor")), 1);
  assert_true(json_real_value(json_object_get(d, "gamma_used")) > json_real_value(json_object_get(d, "gamma")));
  json_decref(d);
  assert_true(x_f1 != x_f0);
  est_free(c);
  /* a file whose default is dpm2m: stored, loaded, used */
  model m;
  char out[600];
  snprintf(out, sizeof out, "%s/sampler-default.safetensors", tu_tmpdir());
  assert_int_equal(model_load(&m, path_buf[0], &err), 0);
  json_t *set = json_loads("{\"sampler\":\"dpm2m\",\"steps\":12}", 0, NULL);
  assert_int_equal(m.kind->from_config(&m, set, NULL, &err), 0);
  json_decref(set);
  set = json_loads("{\"sampler\":\"nope\"}", 0, NULL);
  assert_int_equal(m.kind->from_config(&m, set, NULL, &err), SB_EINVAL);
  json_decref(set);
  assert_int_equal(model_save(&m, 0, out, &err), 0);
  model_free(&m);
  assert_int_equal(model_open_estimator(&c, out, &err), 0);
  d = sampler_diag(c, "{}", &x_dpm);
  assert_string_equal(json_string_value(json_object_get(d, "sampler")), "dpm2m");
  assert_int_equal(json_integer_value(json_object_get(d, "steps")), 12);
  json_decref(d);
  d = sampler_diag(c, "{\"sampler\":\"pc\"}", &x_heun); /* back to pc: its 64 steps */
  assert_null(json_object_get(d, "sampler"));
  assert_int_equal(json_integer_value(json_object_get(d, "steps")), 64);
  json_decref(d);
  est_free(c);
}

/* Prior draws at time t (M of them, stream 0.. of seed 77): RMSE of their
 * mean against truth and their spread, the yardstick for "the posterior
 * used the observations". */
static double prior_rmse(estimator *e, long t, const double *truth, double *spread) {
  enum { M = 256 };
  sb_error err;
  double *X = malloc(sizeof(double) * M * e->sim->dim);
  assert_int_equal(sim_sample_at(e->sim, X, M, t, 77, 0, &err), 0);
  double r = tu_rmse_of_mean(X, M, (size_t)e->sim->dim, e->sim->dim, truth, spread);
  free(X);
  return r;
}

/* Runs e on a truth problem (identity operator, noise 0.5, W = 3, t = 200)
 * with only window time `keep` observed (-1: all); returns per window time
 * the RMSE of the sample mean against the truth (window samples), and the
 * spread at each time. */
static void composed_case(estimator *e, int keep, uint64_t stream, double rmse[3], double spread[3], double *prior,
                          double *prior_spread) {
  double *truth;
  est_problem p;
  tu_truth_problem(e, "{\"type\":\"identity\"}", 0.5, 3, 200, 5, stream, &truth, &p);
  double *y = (double *)p.y;
  for (int w = 0; w < 3; w++)
    if (keep >= 0 && w != keep)
      for (int i = 0; i < 16; i++) y[w * 16 + i] = NAN;
  json_t *params = json_pack("{s:i}", "steps", 64);
  est_options o = {.n_samples = 64, .seed = 3, .want_window = 1, .params = params};
  est_result r;
  sb_error err;
  if (est_sample(e, &p, &o, &r, &err)) fail_msg("%s", err.msg);
  json_decref(params);
  for (int w = 0; w < 3; w++) rmse[w] = tu_rmse_of_mean(r.window_samples + w * 16, 64, 3 * 16, 16, truth + w * 16, &spread[w]);
  *prior = prior_rmse(e, 200 - 2 + keep * (keep >= 0), truth + (keep >= 0 ? keep : 2) * 16, prior_spread);
  est_result_free(&r);
  tu_problem_free(&p);
  free(truth);
}

/* The composed score through the estimator interface on truth windows
 * (identity operator, noise 0.5, W = 3, t = 200; 4 truths, 64 samples, 64
 * sampler steps: the tiny model's own 8 steps diverge under this strong
 * guidance, RMSE ~ 100). Only the observations can bring the sample mean
 * near the truth: the prior's mean is ~3.6 away (the Lorenz96 climatology).
 * Measured: every time observed: RMSE 0.42..0.46, spread 0.33..0.36; one
 * time observed: RMSE ~0.5 and spread ~0.45 there, spread 1.7..2.3 at the
 * other times. Asserted: RMSE < 0.7 (the noise std 0.5 with room for a
 * 200-step model; the prior gives ~3.6, guidance dropped gives ~5) and
 * spread < 0.3 x prior when all are observed; with one time observed its
 * spread is < 0.5 x every other time's and its RMSE the smallest, so window
 * observations applied in reversed time order fail (keep = 0 or 2). */
/* The dynamics term (diff_dyn.h) through the estimator: dynamics_q turns it
 * on for a guided model of a Lorenz96 system (the tiny l96-thesis model),
 * the diagnostics say q and gamma (default max(gamma, 0.1)), and the samples
 * change; out-of-range values, a posterior-score model and mmps guidance are
 * refused with a reason. */
static void test_dynamics_params(void **state) {
  (void)state;
  estimator *c, *p;
  sb_error err;
  assert_int_equal(model_open_estimator(&c, path_buf[0], &err), 0);
  check_params(c, "{\"dynamics_q\":0.01,\"dynamics_gamma\":0.3}", 0, NULL);
  check_params(c, "{\"dynamics_q\":-1}", SB_EINVAL, "dynamics_q");
  check_params(c, "{\"dynamics_gamma\":\"x\"}", SB_EINVAL, "dynamics_gamma");
  check_params(c, "{\"dynamics_q\":0.01,\"dynamics_gamma\":0}", SB_EINVAL, "dynamics_gamma");
  check_params(c, "{\"dynamics_q\":0.01,\"guidance\":\"mmps\"}", SB_EINVAL, "sda or free");
  check_params(c, "{\"dynamics_q\":0.01,\"guidance\":\"free\"}", 0, NULL);
  json_t *pj = json_loads("{\"dynamics_q\":0.01}", 0, NULL);
  est_options o = {.n_samples = 8, .seed = 2, .params = pj};
  est_result r0, r1;
  json_t *p0 = json_object();
  est_options o0 = {.n_samples = 8, .seed = 2, .params = p0, .want_window = 1};
  if (tu_sample(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 3, 200, &o0, &r0)) fail_msg("sampling failed");
  /* the dynamical residual the result reports, by hand from its window samples */
  double res2 = 0, xs[16];
  for (int b = 0; b < 8; b++)
    for (int k = 0; k < 2; k++) {
      memcpy(xs, r0.window_samples + ((size_t)b * 3 + k) * 16, sizeof xs);
      assert_int_equal(c->sim->advance(c->sim, xs, 1, 1, &err), 0);
      for (int i = 0; i < 16; i++) {
        double d = r0.window_samples[((size_t)b * 3 + k + 1) * 16 + i] - xs[i];
        res2 += d * d;
      }
    }
  double res = json_real_value(json_object_get(r0.diagnostics, "dynamics_residual"));
  print_message("dynamics_residual %.6f, by hand %.6f\n", res, sqrt(res2 / (8 * 2 * 16)));
  assert_true(res > 0 && fabs(res - sqrt(res2 / (8 * 2 * 16))) < 1e-9 * (1 + res));
  if (tu_sample(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 3, 200, &o, &r1)) fail_msg("sampling failed");
  json_t *d = json_object_get(r1.diagnostics, "dynamics");
  assert_non_null(d);
  assert_true(fabs(json_real_value(json_object_get(d, "q")) - 0.01) < 1e-12);
  assert_true(fabs(json_real_value(json_object_get(d, "gamma")) - 0.1) < 1e-12);
  assert_null(json_object_get(r0.diagnostics, "dynamics"));
  double diff = 0;
  for (int i = 0; i < 8 * 16; i++) diff = fmax(diff, fabs(r1.samples[i] - r0.samples[i]));
  assert_true(diff > 1e-3);
  est_result_free(&r0);
  est_result_free(&r1);
  json_decref(pj);
  json_decref(p0);
  pj = json_loads("{\"dynamics_q\":0.01,\"guidance\":\"mmps\"}", 0, NULL);
  o.params = pj;
  assert_int_not_equal(tu_sample(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 3, 200, &o, &r1), 0);
  json_decref(pj);
  est_free(c);
  assert_int_equal(model_open_estimator(&p, path_buf[1], &err), 0);
  check_params(p, "{\"dynamics_q\":0.01}", SB_EINVAL, "guided model");
  est_free(p);
}

/* The warm start from a background (params.warm_start, score_net.h):
 * score_net_warm_start fills sample s's window with member s mod S_b at the
 * background's block, forecast one simulator step per later block, blocks
 * before it at the prior mean, all standardized with the guidance's mean
 * and scale (checked value by value against advance() here, block 0 and 1);
 * a mean+std background draws mean + std z from stream
 * SCORE_NET_WARM_STREAM + s; without warm_start or without a background it
 * is off and x is untouched. Through the estimator: the sampler diagnostics
 * report it only with a background, and it changes the samples; refused for
 * posterior-score, for a sampler other than pc, and outside (0, 1]. */
static void test_warm_start_params(void **state) {
  (void)state;
  estimator *c, *p;
  sb_error err;
  assert_int_equal(model_open_estimator(&c, path_buf[0], &err), 0);
  double *truth;
  est_problem pr;
  tu_truth_problem(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 3, 200, 7, 0, &truth, &pr);
  enum { NN = 16, W = 3, S = 5, SB = 3 };
  double members[SB * NN], gm[W * NN], gs[W * NN];
  rng r;
  rng_init(&r, 9, 0);
  for (int i = 0; i < SB * NN; i++) members[i] = 2.0 + 3.0 * rng_normal(&r);
  for (int i = 0; i < W * NN; i++) gm[i] = 1.5 + 0.01 * i, gs[i] = 2.0 + 0.02 * i;
  est_background bg = {.members = members, .n_members = SB};
  json_t *pj = json_pack("{s:f}", "warm_start", 0.25);
  est_options o = {.n_samples = S, .seed = 4, .params = pj};
  float x[S * W * NN];
  diff_sampler_config cfg;
  diff_sampler_defaults(&cfg);
  int on = -1;
  for (int i = 0; i < S * W * NN; i++) x[i] = -7.0f;
  assert_int_equal(score_net_warm_start(&pr, &o, W, 0, gm, gs, x, &cfg, &on, &err), 0);
  assert_int_equal(on, 0); /* no background: off, x untouched */
  assert_true(x[0] == -7.0f && cfg.start == 1.0);
  pr.background = &bg;
  for (int block = 0; block < 2; block++) {
    assert_int_equal(score_net_warm_start(&pr, &o, W, block, gm, gs, x, &cfg, &on, &err), 0);
    assert_int_equal(on, 1);
    assert_true(cfg.start == 0.25);
    for (int s = 0; s < S; s++) {
      double xs[NN];
      memcpy(xs, members + (s % SB) * NN, sizeof xs);
      for (int w = 0; w < W; w++) {
        if (w > block) assert_int_equal(c->sim->advance(c->sim, xs, 1, 1, &err), 0);
        for (int n = 0; n < NN; n++) {
          const int i = w * NN + n;
          const double want = w < block ? 0.0 : (xs[n] - gm[i]) / gs[i];
          assert_true(fabs(x[(s * W + w) * NN + n] - want) < 1e-5 * (1 + fabs(want)));
        }
      }
    }
  }
  double bm[NN], bsd[NN];
  for (int n = 0; n < NN; n++) bm[n] = 1.0 + n, bsd[n] = 0.5;
  est_background ms = {.mean = bm, .std = bsd};
  pr.background = &ms;
  assert_int_equal(score_net_warm_start(&pr, &o, W, 0, gm, gs, x, &cfg, &on, &err), 0);
  for (int s = 0; s < S; s++) {
    rng_init(&r, 4, SCORE_NET_WARM_STREAM + (uint64_t)s);
    for (int n = 0; n < NN; n++) {
      const double want = (bm[n] + bsd[n] * rng_normal(&r) - gm[n]) / gs[n];
      assert_true(fabs(x[s * W * NN + n] - want) < 1e-5 * (1 + fabs(want)));
    }
  }
  json_t *p0 = json_object();
  o.params = p0;
  cfg.start = 1.0;
  assert_int_equal(score_net_warm_start(&pr, &o, W, 0, gm, gs, x, &cfg, &on, &err), 0);
  assert_int_equal(on, 0); /* no warm_start */
  assert_true(cfg.start == 1.0);
  /* through the estimator: reported with a background, and it moves the samples */
  pr.background = &bg;
  est_result r0, r1, r2;
  est_options oe = {.n_samples = 8, .seed = 2, .params = p0};
  assert_int_equal(est_sample(c, &pr, &oe, &r0, &err), 0);
  oe.params = pj;
  if (est_sample(c, &pr, &oe, &r1, &err)) fail_msg("%s", err.msg);
  json_t *sd = json_object_get(r1.diagnostics, "sampler");
  assert_true(fabs(json_real_value(json_object_get(sd, "warm_start")) - 0.25) < 1e-12);
  assert_null(json_object_get(json_object_get(r0.diagnostics, "sampler"), "warm_start"));
  double diff = 0;
  for (int i = 0; i < 8 * NN; i++) diff = fmax(diff, fabs(r1.samples[i] - r0.samples[i]));
  assert_true(diff > 1e-3);
  pr.background = NULL; /* the first cycles of a stream: from noise, as without it */
  if (est_sample(c, &pr, &oe, &r2, &err)) fail_msg("%s", err.msg);
  assert_null(json_object_get(json_object_get(r2.diagnostics, "sampler"), "warm_start"));
  est_result_free(&r0);
  est_result_free(&r1);
  est_result_free(&r2);
  check_params(c, "{\"warm_start\":0.3}", 0, NULL);
  check_params(c, "{\"warm_start\":0}", SB_EINVAL, "warm_start");
  check_params(c, "{\"warm_start\":1.5}", SB_EINVAL, "warm_start");
  check_params(c, "{\"warm_start\":\"x\"}", SB_EINVAL, "warm_start");
  check_params(c, "{\"warm_start\":1e300}", SB_EINVAL, "warm_start");
  check_params(c, "{\"warm_start\":null}", SB_EINVAL, "warm_start");
  check_params(c, "{\"warm_start\":0.3,\"sampler\":\"dpm2m\"}", SB_EINVAL, "pc only");
  tu_problem_free(&pr);
  free(truth);
  json_decref(pj);
  json_decref(p0);
  est_free(c);
  assert_int_equal(model_open_estimator(&p, path_buf[1], &err), 0);
  check_params(p, "{\"warm_start\":0.3}", SB_EINVAL, "cannot use");
  est_free(p);
}

static void test_composed_uses_observations_in_order(void **state) {
  (void)state;
  estimator *c;
  sb_error err;
  assert_int_equal(model_open_estimator(&c, path_buf[0], &err), 0);
  for (int keep = -1; keep < 3; keep += 1) {
    double acc[3] = {0}, spr[3] = {0}, pr = 0, ps = 0;
    for (int k = 0; k < 4; k++) {
      double rm[3], sp[3], p1, p2;
      composed_case(c, keep, (uint64_t)k, rm, sp, &p1, &p2);
      for (int w = 0; w < 3; w++) acc[w] += rm[w] / 4, spr[w] += sp[w] / 4;
      pr += p1 / 4, ps += p2 / 4;
    }
    print_message("composed, observed time %d: rmse %.3f %.3f %.3f spread %.3f %.3f %.3f (prior rmse %.3f spread %.3f)\n",
                  keep, acc[0], acc[1], acc[2], spr[0], spr[1], spr[2], pr, ps);
    assert_true(pr > 3.0 && ps > 3.0); /* the yardstick */
    for (int w = 0; w < 3; w++) {
      if (keep < 0) {
        assert_true(acc[w] < 0.7 && spr[w] < 0.3 * ps);
      } else if (w == keep) {
        assert_true(acc[w] < 0.7);
        for (int v = 0; v < 3; v++)
          if (v != keep) assert_true(spr[keep] < 0.5 * spr[v] && acc[keep] < acc[v]);
      }
    }
  }
  est_free(c);
}

/* A learned posterior (posterior-score here, npe and nre in their tests) on
 * truth windows through its trained operator (kernel stations: 4 of 16
 * nodes, noise 0.5, W = 3, t = 200), 6 truths: RMSE of the sample mean
 * against the truth and spread, against the prior's. */
static void learned_vs_prior(estimator *e, const char *params, double *rmse, double *spread, double *prmse,
                             double *pspread, double *orm, double *porm) {
  *rmse = *spread = *prmse = *pspread = *orm = *porm = 0;
  json_t *pj = params ? json_loads(params, 0, NULL) : NULL;
  for (int k = 0; k < 6; k++) {
    double *truth, sp, psp;
    est_problem p;
    tu_truth_problem(e, "{\"type\":\"kernel_stations\"}", 0.5, 3, 200, 6, (uint64_t)k, &truth, &p);
    est_options o = {.n_samples = 64, .seed = 4, .params = pj};
    est_result r;
    sb_error err;
    if (est_sample(e, &p, &o, &r, &err)) fail_msg("%s", err.msg);
    *rmse += tu_rmse_of_mean(r.samples, 64, 16, 16, truth + 2 * 16, &sp) / 6;
    *spread += sp / 6;
    *prmse += prior_rmse(e, 200, truth + 2 * 16, &psp) / 6;
    *pspread += psp / 6;
    /* in observation space at time t: H (sample mean) against H truth */
    int no = p.op->n_obs;
    double *hs = malloc(sizeof(double) * 256 * no), ht[16], *X = malloc(sizeof(double) * 256 * 16);
    obs_apply(p.op, r.samples, hs, 64);
    obs_apply(p.op, truth + 2 * 16, ht, 1);
    *orm += tu_rmse_of_mean(hs, 64, (size_t)no, no, ht, NULL) / 6;
    assert_int_equal(sim_sample_at(e->sim, X, 256, 200, 77, 0, &err), 0);
    obs_apply(p.op, X, hs, 256);
    *porm += tu_rmse_of_mean(hs, 256, (size_t)no, no, ht, NULL) / 6;
    free(hs), free(X);
    est_result_free(&r);
    tu_problem_free(&p);
    free(truth);
  }
  json_decref(pj);
}

/* posterior-score trained for 1000 steps (test_training_reduces_validation_loss).
 * Measured: observed-space RMSE 0.33 (prior 1.69), state RMSE 2.52 (prior
 * 3.30), spread 2.50 (prior 3.65). Asserted with margins for a short run:
 * the observed quantities within the noise std 0.5 (ignoring y gives ~1.7),
 * the state RMSE and spread below 0.85 / 0.8 of the prior's, and
 * spread / RMSE in 0.7..1.4 (neither collapsed nor blown up). */
static void test_posterior_score_learns(void **state) {
  (void)state;
  estimator *e;
  sb_error err;
  assert_int_equal(model_open_estimator(&e, path_buf[1], &err), 0);
  double rm, sp, prm, psp, orm, porm;
  learned_vs_prior(e, "{\"steps\": 32}", &rm, &sp, &prm, &psp, &orm, &porm);
  print_message("posterior-score: rmse %.3f spread %.3f (prior rmse %.3f spread %.3f); observed rmse %.3f (prior %.3f)\n",
                rm, sp, prm, psp, orm, porm);
  assert_true(orm < 0.5 && orm < 0.4 * porm);
  assert_true(rm < 0.85 * prm && sp < 0.8 * psp);
  assert_true(sp / rm > 0.7 && sp / rm < 1.4);
  est_free(e);
}

/* Observations lifted to the grid for the network (model/model.h): channel
 * w is A^T (y_w - A mean) / std with missing entries contributing 0, channel
 * W + w is A^T m_w with m = 1 where observed, 0 where missing. By hand for
 * stations at 1, 4, 6 of 8 nodes (A^T puts each value at its node). */
static void test_lift_observations_by_hand(void **state) {
  (void)state;
  model sm;
  memset(&sm, 0, sizeof sm);
  double mean[8] = {1, 1, 1, 1, 2, 2, 2, 2}, sd[8] = {2, 2, 2, 2, 4, 4, 4, 4};
  sm.N = 8, sm.W = 2, sm.mean = mean, sm.std = sd;
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"stations\",\"indices\":[1,4,6]}", 1, 1, 8, &err), 0);
  const double y[6] = {3.0, NAN, 0.0, NAN, 10.0, -2.0};
  float out[4 * 8];
  assert_int_equal(model_lift_observations(&sm, op, y, out, &err), 0);
  const float want[4 * 8] = {0, 1.0f, 0, 0, 0, 0, -0.5f, 0,      /* w 0: (3-1)/2 at 1, missing at 4, (0-2)/4 at 6 */
                             0, 0, 0, 0, 2.0f, 0, -1.0f, 0,      /* w 1: missing at 1, (10-2)/4 at 4, (-2-2)/4 at 6 */
                             0, 1, 0, 0, 0, 0, 1, 0,             /* mask w 0 */
                             0, 0, 0, 0, 1, 0, 1, 0};            /* mask w 1 */
  for (int i = 0; i < 32; i++) assert_float_equal(out[i], want[i], 1e-6f);
  obs_free(op);
}

/* Trains two tiny configs of `kind` for `steps` steps that differ only in
 * the train settings a_train and b_train (objects merged into "train" and
 * released; NULL: none), into <tmp>/<stem>-a|b.safetensors (the paths go to
 * pa, pb); their validation losses go to va, vb. */
static void train_two(const char *kind, int steps, const char *stem, json_t *a_train, json_t *b_train,
                      char pa[600], char pb[600], double *va, double *vb) {
  snprintf(pa, 600, "%s/%s-a.safetensors", tu_tmpdir(), stem);
  snprintf(pb, 600, "%s/%s-b.safetensors", tu_tmpdir(), stem);
  json_t *ca = tiny_config(kind, steps), *cb = tiny_config(kind, steps);
  if (a_train) json_object_update(json_object_get(ca, "train"), a_train);
  if (b_train) json_object_update(json_object_get(cb, "train"), b_train);
  json_decref(a_train);
  json_decref(b_train);
  *va = tu_train(ca, pa);
  *vb = tu_train(cb, pb);
}

/* Missing entries in training (train.missing_entry) change what the network
 * is trained on: with missing_time = 0 the random draws are the same for any
 * missing_entry, so two short runs that differ only in it must end with
 * different weights and validation losses (equal would mean the draws never
 * removed an observation). */
static void test_missing_entries_change_training(void **state) {
  (void)state;
  char pa[600], pb[600];
  double va, vb;
  train_two("posterior-score", 20, "mask", json_pack("{s:f}", "missing_entry", 0.0),
            json_pack("{s:f}", "missing_entry", 0.5), pa, pb, &va, &vb);
  model a, b;
  sb_error err;
  assert_int_equal(model_load(&a, pa, &err), 0);
  assert_int_equal(model_load(&b, pb, &err), 0);
  print_message("missing_entry 0: val loss %.5f; 0.5: %.5f\n", va, vb);
  assert_true(va != vb);
  assert_true(memcmp(a.net.params, b.net.params, sizeof(float) * a.net.n_params) != 0);
  model_free(&a);
  model_free(&b);
}

/* train.tau_focus draws that share of the training noise levels from
 * U(0, tau_focus_max) (kind.h), while validation keeps U(0, 1): a composed
 * model trained only at tau <= 0.05 has never seen the high noise levels,
 * so its validation loss is clearly above the same run's with uniform tau
 * (equal would mean the option never reached the batches). */
static void test_tau_focus_changes_training(void **state) {
  (void)state;
  char pa[600], pb[600];
  double va, vb;
  train_two("composed-score", 200, "focus", NULL, json_pack("{s:f, s:f}", "tau_focus", 1.0, "tau_focus_max", 0.05),
            pa, pb, &va, &vb);
  print_message("uniform tau: val loss %.4f; every tau <= 0.05: %.4f\n", va, vb);
  assert_true(isfinite(va) && isfinite(vb));
  assert_true(vb > 1.1 * va);
}

/* The learning-rate schedule reaches the optimizer in training. A state file
 * with parameters p0, no Adam moments and step k makes `sbida train` take
 * exactly one AdamW step at step k (train.steps = k + 1). With fresh moments
 * that step moves every parameter with a gradient well above eps by
 *   lr_k * c_k,  c_k = (0.1 / (1 - 0.9^(k+1))) / sqrt(0.001 / (1 - 0.999^(k+1)))
 * after decoupled decay p0 (1 - lr_k wd) (PyTorch AdamW; wd = 1e-4), where
 * lr_k is the documented schedule (nn_optim.h) written out here: warmup
 * base (k+1) / warmup, then cosine to 0.01 base at `total` steps. Tolerance
 * 1% on the median |step| (float rounding of p ~ 0.1..1 against a step
 * ~1e-3, and the few parameters with |g| ~ eps); a constant LR is off by
 * 1.7x..13x at these steps. */
static void test_lr_schedule_reaches_training(void **state) {
  (void)state;
  char s0[600], st0[600], out[560], sto[600];
  snprintf(s0, sizeof s0, "%s.state", path_buf[0]); /* composed-score, same architecture */
  snprintf(st0, sizeof st0, "%s/lr-start.state", tu_tmpdir());
  snprintf(out, sizeof out, "%.500s/lr-out.safetensors", tu_tmpdir());
  snprintf(sto, sizeof sto, "%s.state", out);
  sb_error err;
  st_file f;
  assert_int_equal(st_read(s0, &f, &err), 0);
  const st_tensor *tp = st_get(&f, "params");
  size_t np = tp->nbytes / sizeof(float);
  float *p0 = malloc(tp->nbytes), *p1 = malloc(tp->nbytes);
  double *d = malloc(sizeof(double) * np);
  memcpy(p0, tp->data, tp->nbytes);
  st_free(&f);
  const long ks[3] = {0, 2, 10};
  for (int kk = 0; kk < 3; kk++) {
    long k = ks[kk], warmup = 5, total = k + 1;
    double base = 3e-3, lr;
    if (k < warmup) lr = base * (k + 1) / warmup;
    else lr = base * (0.01 + 0.99 * 0.5 * (1 + cos(M_PI * (double)(k - warmup) / (double)(total - warmup))));
    double c = (0.1 / (1 - pow(0.9, k + 1))) / sqrt(0.001 / (1 - pow(0.999, k + 1)));
    st_file w;
    st_init(&w);
    int64_t shape[1] = {(int64_t)np};
    char step[32];
    snprintf(step, sizeof step, "%ld", k);
    assert_int_equal(st_add(&w, "params", ST_F32, 1, shape, p0, &err), 0);
    assert_int_equal(st_set_meta(&w, "step", step, &err), 0);
    assert_int_equal(st_write(&w, st0, &err), 0);
    st_free(&w);
    json_t *cfg = tiny_config("composed-score", total);
    train_opts o = {.out = out, .resume = st0};
    if (train_model(cfg, &o, &err)) fail_msg("train: %s", err.msg);
    json_decref(cfg);
    json_decref(o.summary);
    assert_int_equal(st_read(sto, &f, &err), 0);
    tp = st_get(&f, "params");
    assert_int_equal(tp->nbytes, np * sizeof(float));
    memcpy(p1, tp->data, tp->nbytes);
    assert_int_equal(atol(st_get_meta(&f, "step")), k + 1);
    st_free(&f);
    for (size_t i = 0; i < np; i++) d[i] = fabs((double)p0[i] * (1 - lr * 1e-4) - p1[i]);
    double mx = 0;
    for (size_t i = 0; i < np; i++) mx = fmax(mx, d[i]);
    /* median by counting: the fraction of steps within 1% of lr c */
    size_t near = 0;
    for (size_t i = 0; i < np; i++) near += fabs(d[i] - lr * c) < 0.01 * lr * c;
    print_message("step %ld: lr %.3g x c %.3f = %.4g; max |step| %.4g, %.1f%% of %zu within 1%%\n", k, lr, c, lr * c, mx,
                  100.0 * near / np, np);
    assert_true(near > np / 2);
    assert_true(mx < 1.01 * lr * c);
  }
  free(p0), free(p1), free(d);
}

/* A background for the window's first state (cycling): composed-score takes
 * it (diff_bg.h's term in the guidance), posterior-score refuses it with
 * the reason the daemon returns as its 422. The background here is tight
 * (std 0.2 around a state 1.0 away from the truth in every component) and
 * the operator observes every second node with noise 1: the exact
 * posterior mean of the first state is within 0.04 of the background mean
 * (observed nodes: 1.0 x 0.04/1.04), so the sampled mean must sit near it
 * (within 0.5 RMS, measured 0.32: the sampler's approximation and the barely trained
 * prior allow some slack; measured in the print below) and much nearer
 * than without it; a wrong sign or a dropped term leaves it ~1-2 away.
 * gamma 1: with SDA's default 1e-2 a background much tighter than the
 * prior overshoots (the guided x_hat moves by up to (sigma/mu)^2 S^2 /
 * (B + gamma (sigma/mu)^2 S^2) times the residual; see docs/cycling.md). */
static void test_background_reaches_first_state(void **state) {
  (void)state;
  estimator *c, *p;
  sb_error err;
  assert_int_equal(model_open_estimator(&c, path_buf[0], &err), 0);
  assert_true(c->accepts_background);
  double *truth;
  est_problem pr;
  tu_truth_problem(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 3, 200, 7, 0, &truth, &pr);
  const int N = 16, S = 40;
  double bm[16], bs[16];
  for (int i = 0; i < N; i++) bm[i] = truth[i] + 1.0, bs[i] = 0.2;
  est_background bg = {.mean = bm, .std = bs};
  json_t *gj = json_pack("{s:f}", "gamma", 1.0);
  est_options o = {.n_samples = S, .seed = 3, .want_window = 1, .params = gj};
  est_result r0, r1;
  assert_int_equal(est_sample(c, &pr, &o, &r0, &err), 0);
  pr.background = &bg;
  if (est_sample(c, &pr, &o, &r1, &err)) fail_msg("%s", err.msg);
  assert_non_null(json_object_get(r1.diagnostics, "background"));
  double d0 = tu_rmse_of_mean(r0.window_samples, S, (size_t)3 * N, N, bm, NULL);
  double d1 = tu_rmse_of_mean(r1.window_samples, S, (size_t)3 * N, N, bm, NULL);
  print_message("composed-score: first state's mean to the background mean: %.3f with it, %.3f without\n", d1, d0);
  assert_true(d1 < 0.5 && d1 < 0.25 * d0);
  /* the background term's gamma: the guidance's (1 here), at least 0.1
   * when the request's gamma is SDA's 1e-2 (SCORE_NET_BG_GAMMA_MIN), or the
   * request's background_gamma. (The floor is not enough for this barely
   * trained model at gamma 0.01: its first state lands ~5 from the
   * background, printed below; the L96 cycle of docs/cycling.md is where the
   * floor was measured to help.) */
  json_t *bgd = json_object_get(r1.diagnostics, "background");
  assert_true(fabs(json_real_value(json_object_get(bgd, "gamma")) - 1.0) < 1e-12);
  est_result_free(&r1);
  const char *ask[2] = {"{\"gamma\": 0.01}", "{\"gamma\": 0.01, \"background_gamma\": 0.05}"};
  const double want[2] = {0.1, 0.05};
  for (int k = 0; k < 2; k++) {
    json_t *pj = json_loads(ask[k], 0, NULL);
    est_options o2 = o;
    o2.params = pj;
    if (est_sample(c, &pr, &o2, &r1, &err)) fail_msg("%s", err.msg);
    bgd = json_object_get(r1.diagnostics, "background");
    assert_true(fabs(json_real_value(json_object_get(bgd, "gamma")) - want[k]) < 1e-12);
    if (k == 0) {
      double d2 = tu_rmse_of_mean(r1.window_samples, S, (size_t)3 * N, N, bm, NULL);
      print_message("composed-score, gamma 0.01 (background's 0.1): first state's mean to the background mean %.3f\n", d2);
    }
    est_result_free(&r1);
    json_decref(pj);
  }
  est_result_free(&r0);
  json_decref(gj);
  /* posterior-score refuses it, naming the kinds that can */
  assert_int_equal(model_open_estimator(&p, path_buf[1], &err), 0);
  assert_false(p->accepts_background);
  double *t2;
  est_problem pp;
  tu_truth_problem(p, "{\"type\":\"kernel_stations\"}", 0.5, 3, 200, 7, 0, &t2, &pp);
  assert_int_equal(est_check_problem(p, &pp, &err), SB_OK);
  pp.background = &bg;
  assert_int_equal(est_check_problem(p, &pp, &err), SB_EINVAL);
  print_message("posterior-score with a background: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "cannot use a background"));
  assert_non_null(strstr(err.msg, "composed-score"));
  tu_problem_free(&pp);
  free(t2);
  est_free(p);
  tu_problem_free(&pr);
  free(truth);
  est_free(c);
}

/* A composed model of a stationary system answers windows shorter than its
 * own: the request's rows are the last of the model's window, the earlier
 * states unobserved. So a request of the last 2 rows equals, bit for bit and
 * for the same seed, a request of all 3 rows whose first row is missing
 * (the same guidance), its window samples are the model window's last 2
 * states, and a background goes on its first observed state (block 1 of the
 * model's window): that state's mean moves to the background mean. A
 * time-varying system (l96-thesis) keeps exactly its window. */
static void test_shorter_window_is_last_rows(void **state) {
  (void)state;
  char path[600];
  snprintf(path, sizeof path, "%s/tiny-sakov-composed.safetensors", tu_tmpdir());
  json_t *cfg = tiny_config("composed-score", 20);
  json_object_set_new(cfg, "preset", json_string("l96-sakov"));
  tu_train(cfg, path);
  estimator *c, *t;
  sb_error err;
  int lo, hi;
  assert_int_equal(model_open_estimator(&c, path, &err), 0);
  est_window_range(c, &lo, &hi);
  assert_int_equal(lo, 1);
  assert_int_equal(hi, 3);
  assert_int_equal(c->window, 3);
  const int N = 16, S = 8;
  double *truth;
  est_problem p3;
  tu_truth_problem(c, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 3, 200, 7, 0, &truth, &p3);
  const int no = p3.op->n_obs;
  est_problem p2 = p3;
  p2.window = 2;
  p2.y = p3.y + no;
  for (int i = 0; i < no; i++) ((double *)p3.y)[i] = NAN; /* the same rows, the first missing */
  est_options o = {.n_samples = S, .seed = 5, .want_window = 1};
  est_result r3, r2;
  if (est_sample(c, &p3, &o, &r3, &err)) fail_msg("%s", err.msg);
  if (est_sample(c, &p2, &o, &r2, &err)) fail_msg("%s", err.msg);
  assert_int_equal(r2.window, 2);
  assert_memory_equal(r2.samples, r3.samples, sizeof(double) * S * N);
  for (int s = 0; s < S; s++)
    assert_memory_equal(r2.window_samples + (size_t)s * 2 * N, r3.window_samples + ((size_t)s * 3 + 1) * N,
                        sizeof(double) * 2 * N);
  json_t *mw = json_object_get(r2.diagnostics, "model_window");
  assert_int_equal(json_integer_value(json_object_get(mw, "unobserved_before_the_rows")), 1);
  assert_null(json_object_get(r3.diagnostics, "model_window"));
  /* a tight background 1.0 off the truth of the first observed state (the model's second) */
  double bm[16], bs[16];
  for (int i = 0; i < N; i++) bm[i] = truth[N + i] + 1.0, bs[i] = 0.2;
  est_background bg = {.mean = bm, .std = bs};
  json_t *gj = json_pack("{s:f}", "gamma", 1.0);
  est_options ob = {.n_samples = 40, .seed = 3, .want_window = 1, .params = gj};
  est_result b0, b1;
  if (est_sample(c, &p2, &ob, &b0, &err)) fail_msg("%s", err.msg);
  p2.background = &bg;
  if (est_sample(c, &p2, &ob, &b1, &err)) fail_msg("%s", err.msg);
  double d0 = tu_rmse_of_mean(b0.window_samples, 40, (size_t)2 * N, N, bm, NULL);
  double d1 = tu_rmse_of_mean(b1.window_samples, 40, (size_t)2 * N, N, bm, NULL);
  print_message("shorter window: first observed state's mean to the background mean %.3f with it, %.3f without\n", d1,
                d0);
  assert_true(d1 < 0.6 && d1 < 0.3 * d0); /* measured 0.44 / 2.22; on block 0 instead: 1.85 */
  est_result_free(&b0);
  est_result_free(&b1);
  json_decref(gj);
  est_result_free(&r2);
  est_result_free(&r3);
  /* l96-thesis is time-varying: exactly its window */
  assert_int_equal(model_open_estimator(&t, path_buf[0], &err), 0);
  est_window_range(t, &lo, &hi);
  assert_int_equal(lo, 3);
  assert_int_equal(hi, 3);
  double *t2;
  est_problem q;
  tu_truth_problem(t, "{\"type\":\"subsample\",\"stride\":2}", 1.0, 2, 200, 7, 0, &t2, &q);
  assert_int_equal(est_check_problem(t, &q, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "exactly 3"));
  tu_problem_free(&q);
  free(t2);
  est_free(t);
  tu_problem_free(&p3);
  free(truth);
  est_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_training_reduces_validation_loss),
      cmocka_unit_test(test_model_file_roundtrip),
      cmocka_unit_test(test_estimators_sample),
      cmocka_unit_test(test_sampler_params),
      cmocka_unit_test(test_dynamics_params),
      cmocka_unit_test(test_background_reaches_first_state),
      cmocka_unit_test(test_warm_start_params),
      cmocka_unit_test(test_composed_uses_observations_in_order),
      cmocka_unit_test(test_shorter_window_is_last_rows),
      cmocka_unit_test(test_posterior_score_learns),
      cmocka_unit_test(test_lift_observations_by_hand),
      cmocka_unit_test(test_missing_entries_change_training),
      cmocka_unit_test(test_tau_focus_changes_training),
      cmocka_unit_test(test_lr_schedule_reaches_training),
  };
  return cmocka_run_group_tests_name("score", tests, NULL, NULL);
}
