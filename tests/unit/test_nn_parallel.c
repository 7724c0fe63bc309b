/* test_nn_parallel.c: data-parallel gradients and inference equal the
 * single-thread results (up to float summation order) and are deterministic. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn/nn_layers.h"
#include "nn/nn_model.h"
#include "nn/nn_optim.h"
#include "nn/nn_parallel.h"
#include "util/rng.h"

typedef struct lctx {
  const float *target;
  int on;
} lctx;

static double loss_slice(void *p, int b0, int B, int n_total, const float *out, float *dout) {
  lctx *c = p;
  size_t n = (size_t)B * c->on;
  double l = nn_mse_loss(dout, out, c->target + (size_t)b0 * c->on, n, 1.0f);
  float sc = (float)B / (float)n_total;
  for (size_t i = 0; i < n; i++) dout[i] *= sc;
  return l * sc;
}

static void test_grad_mt(void **state) {
  (void)state;
  nn_resnet_config cfg = {.dims = 1, .w = 12, .cin = 3, .cout = 2, .width = 8, .blocks = 2,
                          .groups = 2, .n_scalars = 1, .emb_dim = 4};
  nn_model m;
  sb_error err = {0};
  assert_int_equal(nn_resnet_init(&m, &cfg, &err), 0);
  nn_model_init_params(&m, 5);
  int B = 7, in = nn_in_size(&m), on = nn_out_size(&m);
  float *x = malloc(sizeof(float) * B * in), *s = malloc(sizeof(float) * B),
        *t = malloc(sizeof(float) * B * on);
  rng r;
  rng_init(&r, 3, 0);
  rng_fill_normal_f(&r, x, (size_t)B * in);
  rng_fill_normal_f(&r, t, (size_t)B * on);
  for (int i = 0; i < B; i++) s[i] = (float)rng_uniform(&r);
  lctx c = {t, on};
  nn_workspace ws[3];
  for (int k = 0; k < 3; k++) assert_int_equal(nn_workspace_init(&ws[k], &m, B, 1, &err), 0);
  float *g1 = malloc(sizeof(float) * m.n_params), *dx1 = calloc((size_t)B * in, sizeof(float)),
        *dx3 = calloc((size_t)B * in, sizeof(float));
  double l1, l3, l3b;
  nn_zero_grad(&m);
  assert_int_equal(nn_grad_mt(&m, ws, 1, x, s, B, loss_slice, &c, dx1, &l1, &err), 0);
  memcpy(g1, m.grads, sizeof(float) * m.n_params);
  nn_zero_grad(&m);
  assert_int_equal(nn_grad_mt(&m, ws, 3, x, s, B, loss_slice, &c, dx3, &l3, &err), 0);
  assert_true(fabs(l1 - l3) <= 1e-6 * fabs(l1));
  for (size_t i = 0; i < m.n_params; i++)
    assert_true(fabsf(m.grads[i] - g1[i]) <= 1e-5f * (1.0f + fabsf(g1[i])));
  for (int i = 0; i < B * in; i++) assert_float_equal(dx3[i], dx1[i], 1e-6f);
  /* deterministic for a fixed thread count */
  memcpy(g1, m.grads, sizeof(float) * m.n_params);
  nn_zero_grad(&m);
  assert_int_equal(nn_grad_mt(&m, ws, 3, x, s, B, loss_slice, &c, NULL, &l3b, &err), 0);
  assert_memory_equal(g1, m.grads, sizeof(float) * m.n_params);
  assert_true(l3 == l3b);
  /* too small workspaces are refused with a message */
  nn_workspace small;
  assert_int_equal(nn_workspace_init(&small, &m, 2, 1, &err), 0);
  assert_int_equal(nn_grad_mt(&m, &small, 1, x, s, B, loss_slice, &c, NULL, &l3b, &err), SB_EINVAL);
  nn_workspace_free(&small);

  /* inference on 3 threads with small chunks equals one forward */
  float *y1 = malloc(sizeof(float) * B * on), *y3 = malloc(sizeof(float) * B * on);
  assert_int_equal(nn_forward(&m, &ws[0], x, s, B, y1), 0);
  nn_workspace wi[3];
  for (int k = 0; k < 3; k++) assert_int_equal(nn_workspace_init(&wi[k], &m, 2, 0, &err), 0);
  assert_int_equal(nn_infer_mt(&m, wi, 3, x, s, B, y3, &err), 0);
  for (int i = 0; i < B * on; i++) assert_float_equal(y3[i], y1[i], 1e-5f * (1 + fabsf(y1[i])));
  for (int k = 0; k < 3; k++) nn_workspace_free(&ws[k]), nn_workspace_free(&wi[k]);
  free(x), free(s), free(t), free(g1), free(dx1), free(dx3), free(y1), free(y3);
  nn_model_free(&m);
}

/* a short training run (2 threads, AdamW with clipping, cosine LR, EMA) is
 * bit-identical when repeated with the same seed and thread count */
static void run_training(float *params_out, float *ema_out, size_t *n_out) {
  nn_resnet_config cfg = {.dims = 1, .w = 16, .cin = 2, .cout = 1, .width = 8, .blocks = 2,
                          .groups = 4, .n_scalars = 1, .emb_dim = 4};
  nn_model m;
  sb_error err = {0};
  assert_int_equal(nn_resnet_init(&m, &cfg, &err), 0);
  nn_model_init_params(&m, 99);
  assert_true(m.n_params <= (1u << 16)); /* the caller's buffers */
  int B = 10, in = nn_in_size(&m), on = nn_out_size(&m);
  float *x = malloc(sizeof(float) * B * in), *s = malloc(sizeof(float) * B),
        *t = malloc(sizeof(float) * B * on);
  nn_workspace ws[2];
  for (int k = 0; k < 2; k++) assert_int_equal(nn_workspace_init(&ws[k], &m, B / 2, 1, &err), 0);
  nn_adamw o = nn_adamw_default();
  o.clip = 0.5f;
  double *ema_ref = malloc(sizeof(double) * m.n_params);
  float *p_first = malloc(sizeof(float) * m.n_params);
  for (int step = 0; step < 6; step++) {
    rng r;
    rng_init(&r, 2024, (uint64_t)step); /* fresh batch per step, from the seed */
    rng_fill_normal_f(&r, x, (size_t)B * in);
    rng_fill_normal_f(&r, t, (size_t)B * on);
    for (int i = 0; i < B; i++) s[i] = (float)rng_uniform(&r);
    lctx c = {t, on};
    double loss;
    nn_zero_grad(&m);
    assert_int_equal(nn_grad_mt(&m, ws, 2, x, s, B, loss_slice, &c, NULL, &loss, &err), 0);
    assert_int_equal(nn_adamw_step(&m, &o, nn_lr_at(step, 1e-2f, 2, 6, NN_LR_COSINE, 0.1f), NULL), 0);
    assert_int_equal(nn_ema_update(&m, 0.9f), 0);
    /* the EMA by hand, in double: the first update copies, then
     * ema = 0.9 ema + 0.1 params */
    for (size_t i = 0; i < m.n_params; i++) ema_ref[i] = step == 0 ? m.params[i] : 0.9 * ema_ref[i] + 0.1 * m.params[i];
    if (step == 0) memcpy(p_first, m.params, sizeof(float) * m.n_params);
  }
  /* value checks: the EMA is the recurrence above (tolerance 1e-6 relative:
   * float rounding over 6 updates), and it lags the parameters (they moved
   * since step 0, by lr-sized steps ~1e-2, and the EMA sits in between) */
  double moved = 0, lag = 0;
  for (size_t i = 0; i < m.n_params; i++) {
    assert_true(fabs(m.ema[i] - ema_ref[i]) <= 1e-6 * (1 + fabs(ema_ref[i])));
    moved = fmax(moved, fabs(m.params[i] - p_first[i]));
    lag = fmax(lag, fabs(m.ema[i] - m.params[i]));
  }
  assert_true(moved > 1e-3 && lag > 1e-4 && lag < moved);
  free(ema_ref), free(p_first);
  memcpy(params_out, m.params, sizeof(float) * m.n_params);
  memcpy(ema_out, m.ema, sizeof(float) * m.n_params);
  *n_out = m.n_params;
  for (int k = 0; k < 2; k++) nn_workspace_free(&ws[k]);
  free(x), free(s), free(t);
  nn_model_free(&m);
}

static void test_training_deterministic(void **state) {
  (void)state;
  size_t n1, n2, cap = 1 << 16;
  float *p1 = malloc(cap * sizeof(float)), *e1 = malloc(cap * sizeof(float));
  float *p2 = malloc(cap * sizeof(float)), *e2 = malloc(cap * sizeof(float));
  run_training(p1, e1, &n1);
  run_training(p2, e2, &n2);
  assert_int_equal(n1, n2);
  assert_memory_equal(p1, p2, n1 * sizeof(float));
  assert_memory_equal(e1, e2, n1 * sizeof(float));
  free(p1), free(e1), free(p2), free(e2);
}

/* U-Net on 1 and 2 threads: inference with the same chunks per workspace
 * (3 samples) is bit-identical (each sample's arithmetic does not depend on
 * the thread it runs on); input and parameter gradients agree to float
 * rounding (different GEMM widths, per-thread sums); repeated 2-thread
 * gradients are bit-identical */
static void test_unet_threads(void **state) {
  (void)state;
  nn_unet_config cfg = {.dims = 2, .h = 8, .w = 8, .cin = 3, .cout = 2, .levels = 3,
                        .widths = {4, 8, 8}, .blocks = 1, .mid = 1, .groups = 2, .n_scalars = 2,
                        .emb_dim = 4};
  nn_model m;
  sb_error err = {0};
  assert_int_equal(nn_unet_init(&m, &cfg, &err), 0);
  nn_model_init_params(&m, 8);
  int B = 6, in = nn_in_size(&m), on = nn_out_size(&m);
  float *x = malloc(sizeof(float) * B * in), *s = malloc(sizeof(float) * B * 2),
        *t = malloc(sizeof(float) * B * on);
  rng r;
  rng_init(&r, 4, 0);
  rng_fill_normal_f(&r, x, (size_t)B * in);
  rng_fill_normal_f(&r, t, (size_t)B * on);
  for (int i = 0; i < 2 * B; i++) s[i] = (float)rng_uniform(&r);
  lctx c = {t, on};
  nn_workspace ws[2], wi[2];
  for (int k = 0; k < 2; k++) {
    assert_int_equal(nn_workspace_init(&ws[k], &m, B, 1, &err), 0);
    assert_int_equal(nn_workspace_init(&wi[k], &m, 3, 0, &err), 0);
  }
  float *y1 = malloc(sizeof(float) * B * on), *y2 = malloc(sizeof(float) * B * on);
  assert_int_equal(nn_infer_mt(&m, wi, 1, x, s, B, y1, &err), 0);
  assert_int_equal(nn_infer_mt(&m, wi, 2, x, s, B, y2, &err), 0);
  assert_memory_equal(y1, y2, sizeof(float) * B * on);
  float *g1 = malloc(sizeof(float) * m.n_params), *dx1 = calloc((size_t)B * in, sizeof(float)),
        *dx2 = calloc((size_t)B * in, sizeof(float));
  double l1, l2, l2b;
  nn_zero_grad(&m);
  assert_int_equal(nn_grad_mt(&m, ws, 1, x, s, B, loss_slice, &c, dx1, &l1, &err), 0);
  memcpy(g1, m.grads, sizeof(float) * m.n_params);
  nn_zero_grad(&m);
  assert_int_equal(nn_grad_mt(&m, ws, 2, x, s, B, loss_slice, &c, dx2, &l2, &err), 0);
  /* dx: the 1-thread pass multiplies 6 samples' columns at once, the 2-thread
   * one 3 and 3, and OpenBLAS may sum a column differently for a different
   * matrix width: equal to float rounding, not bit for bit */
  double dxmax = 0;
  for (int i = 0; i < B * in; i++) {
    assert_true(fabsf(dx1[i] - dx2[i]) <= 1e-6f * (1.0f + fabsf(dx1[i])));
    dxmax = fmax(dxmax, fabs(dx1[i]));
  }
  assert_true(dxmax > 1e-4);
  assert_true(fabs(l1 - l2) <= 1e-6 * fabs(l1));
  double gmax = 0;
  for (size_t i = 0; i < m.n_params; i++) {
    assert_true(fabsf(m.grads[i] - g1[i]) <= 1e-5f * (1.0f + fabsf(g1[i])));
    gmax = fmax(gmax, fabs(g1[i]));
  }
  assert_true(gmax > 1e-3);
  memcpy(g1, m.grads, sizeof(float) * m.n_params);
  nn_zero_grad(&m);
  assert_int_equal(nn_grad_mt(&m, ws, 2, x, s, B, loss_slice, &c, NULL, &l2b, &err), 0);
  assert_memory_equal(g1, m.grads, sizeof(float) * m.n_params);
  assert_true(l2 == l2b);
  for (int k = 0; k < 2; k++) nn_workspace_free(&ws[k]), nn_workspace_free(&wi[k]);
  free(x), free(s), free(t), free(y1), free(y2), free(g1), free(dx1), free(dx2);
  nn_model_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_grad_mt),
                                     cmocka_unit_test(test_training_deterministic),
                                     cmocka_unit_test(test_unet_threads)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
