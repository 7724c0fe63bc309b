/* The U-Net as the score network of a diffusion kind on a 2D preset
 * (model_net.c): a tiny composed-score model over windows of 2
 * kolmogorov-t states (2 x 32 x 32 each, 4 channels) trains a few steps,
 * saves, loads as a U-Net of that layout and samples deterministically for
 * any seed and thread count through a 2D operator; damaged configs and files
 * are refused with a reason; the chained training pool continues its
 * trajectories. */
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
#include "model/model.h"
#include "train/train.h"
#include "train/train_pool.h"
#include "util/safetensors.h"
#include "testutil.h"

static char model_path[512];

static json_t *tiny_unet_config(long steps) {
  return json_pack("{s:s, s:s, s:i, s:{s:s, s:[i, i], s:i, s:i, s:i, s:i},"
                   " s:{s:I, s:i, s:f, s:i, s:i, s:i, s:i, s:i, s:f, s:i, s:i}, s:{s:i}}",
                   "kind", "composed-score", "preset", "kolmogorov-t", "window", 2, "arch", "type", "unet", "widths",
                   8, 16, "blocks", 1, "mid", 1, "groups", 4, "emb_dim", 8, "train", "steps", (json_int_t)steps,
                   "batch", 4, "lr", 3e-3, "warmup", 1, "pool", 2, "refresh", 1, "traj_len", 4, "val_windows", 8,
                   "ema", 0.5, "val_every", 1000, "threads", 1, "sampler", "steps", 4);
}

/* trains, expecting failure with a message containing `part` */
static void train_refused(json_t *cfg, const char *part) {
  sb_error err = {0};
  char out[600];
  snprintf(out, sizeof out, "%s/refused.safetensors", tu_tmpdir());
  train_opts o = {.out = out};
  int rc = train_model(cfg, &o, &err);
  json_decref(cfg);
  if (!rc) fail_msg("config accepted, expected a refusal naming '%s'", part);
  print_message("  refused: %s\n", err.msg);
  if (!strstr(err.msg, part)) fail_msg("message '%s' does not name '%s'", err.msg, part);
}

static void test_unet_trains_saves_loads(void **state) {
  (void)state;
  snprintf(model_path, sizeof model_path, "%s/tiny-unet2d-composed.safetensors", tu_tmpdir());
  double v = tu_train(tiny_unet_config(3), model_path);
  assert_true(isfinite(v) && v > 0);
  model m;
  sb_error err = {0};
  assert_int_equal(model_load(&m, model_path, &err), 0);
  assert_string_equal(m.kind->name, "composed-score");
  assert_int_equal(m.N, 2048);
  assert_int_equal(m.W, 2);
  assert_int_equal(m.net.kind, NN_UNET);
  const nn_unet_config *u = &m.net.uc;
  assert_int_equal(u->dims, 2);
  assert_int_equal(u->h, 32);
  assert_int_equal(u->w, 32);
  assert_int_equal(u->cin, 4); /* 2 states x (u, v) */
  assert_int_equal(u->cout, 4);
  assert_int_equal(u->levels, 2);
  assert_int_equal(u->widths[1], 16);
  assert_int_equal(u->n_scalars, 2); /* tau and t: kolmogorov-t is time-varying */
  assert_int_equal(m.net.step, 3);
  /* the config as trained is in the file */
  json_t *arch = json_object_get(m.train_config, "arch");
  assert_string_equal(json_string_value(json_object_get(arch, "type")), "unet");
  model_free(&m);
}

static void sample2d(estimator *e, int threads, uint64_t seed, est_result *r) {
  sb_error err = {0};
  obs_op *op;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"coarsen\",\"factor\":4}", 2, 32, 32, &err), 0);
  assert_int_equal(op->n_obs, 128);
  obs_noise nz;
  assert_int_equal(obs_noise_scalar(&nz, 0.1, op->n_obs, &err), 0);
  double y[2 * 128];
  for (int i = 0; i < 2 * 128; i++) y[i] = i % 9 == 0 ? NAN : 0.2 * sin(0.37 * i);
  est_problem p = {e->sim, op, &nz, 2, 20, y, NULL};
  est_options o = {.n_samples = 5, .seed = seed, .want_window = 1, .threads = threads};
  int rc = est_sample(e, &p, &o, r, &err);
  if (rc) fail_msg("sample: %s", err.msg);
  obs_free(op);
  obs_noise_free(&nz);
}

static void test_unet_samples_deterministically(void **state) {
  (void)state;
  estimator *e;
  sb_error err = {0};
  assert_int_equal(model_open_estimator(&e, model_path, &err), 0);
  assert_int_equal(e->window, 2);
  json_t *a = json_object_get(e->info, "architecture");
  assert_string_equal(json_string_value(json_object_get(a, "type")), "unet2d");
  est_result r1, r2, r3;
  sample2d(e, 1, 7, &r1);
  assert_int_equal(r1.n_samples, 5);
  assert_int_equal(r1.dim, 2048);
  for (int i = 0; i < 5 * 2048; i++) assert_true(isfinite(r1.samples[i]));
  /* x_t is the window's last state */
  assert_memory_equal(r1.samples + 2048, r1.window_samples + (1 * 2 + 1) * 2048, sizeof(double) * 2048);
  sample2d(e, 2, 7, &r2);
  assert_memory_equal(r1.samples, r2.samples, sizeof(double) * 5 * 2048);
  sample2d(e, 1, 8, &r3);
  double d = 0;
  for (int i = 0; i < 5 * 2048; i++) d = fmax(d, fabs(r1.samples[i] - r3.samples[i]));
  assert_true(d > 1e-6); /* another seed, other samples */
  est_result_free(&r1), est_result_free(&r2), est_result_free(&r3);
  est_free(e);
}

/* Rewrites model_path into out with metadata key set to val. */
static void rewrite_meta(const char *out, const char *key, const char *val) {
  sb_error err = {0};
  st_file f, g;
  assert_int_equal(st_read(model_path, &f, &err), 0);
  st_init(&g);
  for (int i = 0; i < f.n_meta; i++)
    assert_int_equal(st_set_meta(&g, f.meta_keys[i], strcmp(f.meta_keys[i], key) ? f.meta_vals[i] : val, &err), 0);
  for (int i = 0; i < f.n_tensors; i++) {
    st_tensor *t = &f.tensors[i];
    assert_int_equal(st_add(&g, t->name, t->dtype, t->ndim, t->shape, t->data, &err), 0);
  }
  assert_int_equal(st_write(&g, out, &err), 0);
  st_free(&g);
  st_free(&f);
}

static void test_damaged_files_refused(void **state) {
  (void)state;
  char q[600];
  snprintf(q, sizeof q, "%s/tiny-unet2d-damaged.safetensors", tu_tmpdir());
  model m;
  sb_error err = {0};
  /* a U-Net config claiming 1024 channels at level 1: refused from the
   * tensors present (nn_ckpt_load plans, checks every tensor, then allocates) */
  rewrite_meta(q, "nn.config",
               "dims=2 h=32 w=32 cin=4 cout=4 levels=2 widths=8,1024 blocks=1 mid=1 groups=4 n_scalars=2 emb_dim=8");
  assert_int_equal(model_load(&m, q, &err), SB_EFORMAT);
  print_message("  huge widths: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "shape"));
  /* widths that do not divide by groups: refused by the plan itself */
  memset(&err, 0, sizeof err);
  rewrite_meta(q, "nn.config",
               "dims=2 h=32 w=32 cin=4 cout=4 levels=2 widths=8,18 blocks=1 mid=1 groups=4 n_scalars=2 emb_dim=8");
  assert_int_not_equal(model_load(&m, q, &err), 0);
  print_message("  widths 8,18 groups 4: %s\n", err.msg);
  /* a consistent network that is not the one the metadata's window needs */
  memset(&err, 0, sizeof err);
  rewrite_meta(q, "sbida.window", "3");
  assert_int_equal(model_load(&m, q, &err), SB_EFORMAT);
  print_message("  window 3: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "network shape does not match"));
  /* a state size the 2D preset does not have */
  memset(&err, 0, sizeof err);
  rewrite_meta(q, "sbida.N", "1024");
  assert_int_not_equal(model_load(&m, q, &err), 0);
  print_message("  N 1024: %s\n", err.msg);
}

static void test_damaged_configs_refused(void **state) {
  (void)state;
  json_t *c = tiny_unet_config(1);
  json_object_set_new(json_object_get(c, "arch"), "type", json_string("transformer"));
  train_refused(c, "arch.type");
  c = tiny_unet_config(1);
  json_object_set_new(json_object_get(c, "arch"), "width", json_integer(32));
  train_refused(c, "arch.width");
  c = tiny_unet_config(1);
  json_object_set_new(json_object_get(c, "arch"), "widths", json_pack("[i, s]", 8, "x"));
  train_refused(c, "arch.widths[1]");
  c = tiny_unet_config(1);
  json_object_set_new(json_object_get(c, "arch"), "widths", json_pack("[i, i]", 8, 18)); /* groups 4 */
  train_refused(c, "group");
  c = tiny_unet_config(1);
  json_object_set_new(json_object_get(c, "arch"), "widths", json_pack("[i, i, i, i, i, i, i]", 8, 8, 8, 8, 8, 8, 8));
  train_refused(c, "arch.widths"); /* 7 levels: more than NN_UNET_MAX_LEVELS */
  c = tiny_unet_config(1);
  json_object_set_new(json_object_get(c, "arch"), "mid", json_integer(17));
  train_refused(c, "arch.mid");
  c = tiny_unet_config(1);
  json_object_set_new(json_object_get(c, "arch"), "widths", json_array());
  train_refused(c, "arch.widths");
  /* the local score re-sizes its resnet per request: no U-Net */
  c = tiny_unet_config(1);
  json_object_set_new(c, "kind", json_string("local-score"));
  json_object_set_new(c, "window", json_integer(3));
  train_refused(c, "builds only the resnet");
  /* a resnet config with U-Net fields */
  c = tiny_unet_config(1);
  json_object_del(json_object_get(c, "arch"), "type");
  train_refused(c, "arch.widths");
}

/* A chained pool (traj_len on a stationary preset): a refreshed slot starts
 * one interval after the slot's previous last state. */
static void test_chained_pool_continues(void **state) {
  (void)state;
  sim *s;
  sb_error err = {0};
  assert_int_equal(sim_create(&s, "l96-sakov", 8, &err), 0);
  train_pool p;
  assert_int_equal(train_pool_init(&p, s, 2, 2, 5, 11, NULL, &err), 0);
  assert_int_equal(p.T, 5);
  assert_true(p.chain);
  double x[8];
  for (int n = 0; n < 8; n++) x[n] = p.x[(size_t)4 * 8 + n]; /* slot 0, t = 4 */
  assert_int_equal(train_pool_refresh(&p, 1, &err), 0);
  assert_int_equal(s->advance(s, x, 1, 1, &err), 0);
  for (int n = 0; n < 8; n++) assert_true(p.x[n] == (float)x[n]);
  train_pool_free(&p);
  /* without traj_len: T = 1024, and a refresh draws a new trajectory */
  assert_int_equal(train_pool_init(&p, s, 1, 2, 0, 11, NULL, &err), 0);
  assert_int_equal(p.T, 1024);
  assert_false(p.chain);
  train_pool_free(&p);
  sim_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unet_trains_saves_loads),
      cmocka_unit_test(test_unet_samples_deterministically),
      cmocka_unit_test(test_damaged_files_refused),
      cmocka_unit_test(test_damaged_configs_refused),
      cmocka_unit_test(test_chained_pool_continues),
  };
  return cmocka_run_group_tests_name("score_unet", tests, NULL, NULL);
}
