/* test_nn_torch.c: parity with PyTorch on tests/data/nn/resnet1d_fixture.safetensors
 * (tests/torch/make_nn_fixtures.py) and the U-Nets unet1d/unet2d_fixture
 * (tests/torch/make_unet_fixtures.py): outputs, the loss, EVERY gradient (all
 * parameters and the input) and the losses of 10 (U-Net: 5) AdamW steps.
 * Criterion per tensor: max_i |c_i - t_i| <= 1e-4 * max_i |t_i| (float32 on both
 * sides; observed errors are ~1e-6, so a wrong term fails by orders of magnitude). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn/nn_ckpt.h"
#include "nn/nn_layers.h"
#include "nn/nn_model.h"
#include "nn/nn_optim.h"
#include "util/safetensors.h"

static const char *const FIXTURES[] = {"tests/data/nn/resnet1d_fixture.safetensors",
                                       "tests/data/nn/unet1d_fixture.safetensors",
                                       "tests/data/nn/unet2d_fixture.safetensors"};
#define RTOL 1e-4

static const float *get(const st_file *f, const char *name, size_t n) {
  const st_tensor *t = st_get(f, name);
  if (!t) fail_msg("fixture lacks %s", name);
  assert_int_equal(t->dtype, ST_F32);
  assert_int_equal(t->nbytes, n * sizeof(float));
  return t->data;
}

static double rel_err(const float *a, const float *b, size_t n) {
  double md = 0.0, mb = 0.0;
  for (size_t i = 0; i < n; i++) {
    md = fmax(md, fabs((double)a[i] - b[i]));
    mb = fmax(mb, fabs((double)b[i]));
  }
  return md / (mb > 0 ? mb : 1.0);
}

typedef struct fx {
  st_file f;
  nn_model m;
  nn_workspace ws;
  int B, N, steps;
} fx;

static void fx_open(fx *x, const char *path) {
  sb_error err = {0};
  if (st_read(path, &x->f, &err)) fail_msg("%s", err.msg);
  nn_resnet_config c = {.dims = 1, .h = 1};
  const char *cfg = st_get_meta(&x->f, "config"), *arch = st_get_meta(&x->f, "arch");
  assert_non_null(cfg);
  x->B = atoi(st_get_meta(&x->f, "B"));
  x->steps = st_get_meta(&x->f, "steps") ? atoi(st_get_meta(&x->f, "steps")) : 10;
  if (arch) { /* the U-Nets: nn.config as a checkpoint stores it */
    if (nn_ckpt_model_from_config(&x->m, arch, cfg, &err)) fail_msg("%s", err.msg);
    assert_int_equal(x->m.kind, NN_UNET);
    char back[256];
    nn_ckpt_config_string(&x->m, back, sizeof back);
    assert_string_equal(back, cfg); /* the config round-trips */
    if (nn_ckpt_copy_params(&x->m, &x->f, "param.", &err)) fail_msg("%s", err.msg);
    assert_int_equal(nn_workspace_init(&x->ws, &x->m, x->B, 1, &err), 0);
    return;
  }
  assert_int_equal(sscanf(cfg, "cin=%d cout=%d width=%d blocks=%d groups=%d n_scalars=%d emb_dim=%d",
                          &c.cin, &c.cout, &c.width, &c.blocks, &c.groups, &c.n_scalars, &c.emb_dim),
                   7);
  x->N = atoi(st_get_meta(&x->f, "N"));
  c.w = x->N;
  assert_int_equal(nn_resnet_init(&x->m, &c, &err), 0);
  if (nn_ckpt_copy_params(&x->m, &x->f, "param.", &err)) fail_msg("%s", err.msg);
  assert_int_equal(nn_workspace_init(&x->ws, &x->m, x->B, 1, &err), 0);
}

static void fx_close(fx *x) {
  nn_workspace_free(&x->ws);
  nn_model_free(&x->m);
  st_free(&x->f);
}

static void forward_backward(const char *path) {
  fx x;
  fx_open(&x, path);
  print_message("  %s\n", path);
  int B = x.B, ni = nn_in_size(&x.m), no = nn_out_size(&x.m), ns = nn_n_scalars(&x.m);
  const float *in = get(&x.f, "x", (size_t)B * ni), *s = get(&x.f, "scalars", (size_t)B * ns);
  const float *target = get(&x.f, "target", (size_t)B * no);
  float *y = calloc((size_t)B * no, sizeof(float)), *dy = calloc((size_t)B * no, sizeof(float));
  float *dx = calloc((size_t)B * ni, sizeof(float));
  assert_int_equal(nn_forward(&x.m, &x.ws, in, s, B, y), 0);
  double e = rel_err(y, get(&x.f, "y", (size_t)B * no), (size_t)B * no);
  print_message("  output rel err %.2e\n", e);
  assert_true(e <= RTOL);
  double loss = nn_mse_loss(dy, y, target, (size_t)B * no, 1.0f);
  assert_true(fabs(loss - get(&x.f, "loss", 1)[0]) <= RTOL * fabs(loss));
  nn_zero_grad(&x.m);
  assert_int_equal(nn_backward(&x.m, &x.ws, dy, x.m.grads, dx), 0);
  e = rel_err(dx, get(&x.f, "grad.input", (size_t)B * ni), (size_t)B * ni);
  double worst = e;
  char name[128];
  for (int i = 0; i < x.m.n_tensors; i++) {
    const nn_tensor *t = &x.m.tensors[i];
    snprintf(name, sizeof name, "grad.%s", t->name);
    double ei = rel_err(x.m.grads + t->offset, get(&x.f, name, t->numel), t->numel);
    if (ei > RTOL) print_message("  %s rel err %.2e\n", name, ei);
    worst = fmax(worst, ei);
  }
  print_message("  input grad rel err %.2e, worst over %d param grads %.2e\n", e, x.m.n_tensors, worst);
  assert_true(worst <= RTOL);
  free(y), free(dy), free(dx);
  fx_close(&x);
}

static void adamw_losses(const char *path) {
  fx x;
  fx_open(&x, path);
  int B = x.B, ni = nn_in_size(&x.m), no = nn_out_size(&x.m), ns = nn_n_scalars(&x.m);
  const float *in = get(&x.f, "x", (size_t)B * ni), *s = get(&x.f, "scalars", (size_t)B * ns);
  const float *target = get(&x.f, "target", (size_t)B * no);
  const float *ref = get(&x.f, "adamw_losses", (size_t)x.steps);
  float *y = calloc((size_t)B * no, sizeof(float)), *dy = calloc((size_t)B * no, sizeof(float));
  nn_adamw o = nn_adamw_default();
  o.lr = (float)atof(st_get_meta(&x.f, "lr"));
  o.weight_decay = (float)atof(st_get_meta(&x.f, "weight_decay"));
  for (int k = 0; k < x.steps; k++) {
    nn_zero_grad(&x.m);
    assert_int_equal(nn_forward(&x.m, &x.ws, in, s, B, y), 0);
    double loss = nn_mse_loss(dy, y, target, (size_t)B * no, 1.0f);
    assert_int_equal(nn_backward(&x.m, &x.ws, dy, x.m.grads, NULL), 0);
    assert_int_equal(nn_adamw_step(&x.m, &o, o.lr, NULL), 0);
    print_message("  step %d loss %.6f torch %.6f\n", k, loss, ref[k]);
    assert_true(fabs(loss - ref[k]) <= RTOL * fabs(ref[k]));
  }
  free(y), free(dy);
  fx_close(&x);
}

static void test_forward_backward(void **state) {
  (void)state;
  forward_backward(FIXTURES[0]);
}

static void test_adamw_losses(void **state) {
  (void)state;
  adamw_losses(FIXTURES[0]);
}

static void test_unet_forward_backward(void **state) {
  (void)state;
  forward_backward(FIXTURES[1]);
  forward_backward(FIXTURES[2]);
}

static void test_unet_adamw_losses(void **state) {
  (void)state;
  adamw_losses(FIXTURES[1]);
  adamw_losses(FIXTURES[2]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward_backward),
      cmocka_unit_test(test_adamw_losses),
      cmocka_unit_test(test_unet_forward_backward),
      cmocka_unit_test(test_unet_adamw_losses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
