/* test_nn_model.c: whole-network gradient checks (resnet 1D/2D, MLP), input
 * gradients, workspaces, chunked inference, and the optimizer utilities. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn_gradcheck.h"
#include "nn/nn_layers.h"
#include "nn/nn_model.h"
#include "nn/nn_optim.h"
#include "util/rng.h"

typedef struct mctx {
  nn_model m;
  nn_workspace ws;
  float *x, *s, *out, *dout, *dx;
  int B;
} mctx;

static void m_fwd(void *p) {
  mctx *c = p;
  assert_int_equal(nn_forward(&c->m, &c->ws, c->x, c->s, c->B, c->out), 0);
}
static void m_bwd(void *p) {
  mctx *c = p;
  assert_int_equal(nn_backward(&c->m, &c->ws, c->dout, c->m.grads, c->dx), 0);
}

static float *rnd(size_t n, uint64_t stream, float scale) {
  float *p = calloc(n ? n : 1, sizeof(float));
  rng r;
  rng_init(&r, 77, stream);
  rng_fill_normal_f(&r, p, n);
  for (size_t i = 0; i < n; i++) p[i] *= scale;
  return p;
}

static void mctx_setup(mctx *c, int B, uint64_t seed) {
  int ns = nn_n_scalars(&c->m);
  c->B = B;
  nn_model_init_params(&c->m, seed);
  /* non-trivial norms so their gradients are exercised away from identity */
  for (int i = 0; i < c->m.n_tensors; i++)
    if (strstr(c->m.tensors[i].name, "norm")) {
      float *p = c->m.params + c->m.tensors[i].offset;
      rng r;
      rng_init(&r, 5, (uint64_t)i);
      for (size_t k = 0; k < c->m.tensors[i].numel; k++) p[k] += 0.3f * (float)rng_normal(&r);
    }
  assert_int_equal(nn_workspace_init(&c->ws, &c->m, B, 1, NULL), 0);
  c->x = rnd((size_t)B * nn_in_size(&c->m), 1, 1.0f);
  c->s = calloc((size_t)B * (ns ? ns : 1), sizeof(float));
  rng r;
  rng_init(&r, 9, 0);
  for (int i = 0; i < B * ns; i++) c->s[i] = (float)rng_uniform(&r);
  c->out = calloc((size_t)B * nn_out_size(&c->m), sizeof(float));
  c->dout = rnd((size_t)B * nn_out_size(&c->m), 2, 1.0f);
  c->dx = calloc((size_t)B * nn_in_size(&c->m), sizeof(float));
}

static void mctx_free(mctx *c) {
  nn_workspace_free(&c->ws);
  nn_model_free(&c->m);
  free(c->x), free(c->s), free(c->out), free(c->dout), free(c->dx);
}

static void gradcheck_model(mctx *c) {
  gc g = {0};
  g.forward = m_fwd;
  g.backward = m_bwd;
  g.ctx = c;
  g.out = c->out;
  g.n_out = (size_t)c->B * nn_out_size(&c->m);
  g.r = c->dout;
  g.max_checks = 12;
  g.var[g.n_vars++] = (gc_var){"input", c->x, c->dx, (size_t)c->B * nn_in_size(&c->m)};
  for (int i = 0; i < c->m.n_tensors && g.n_vars < GC_MAX_VARS; i++) {
    nn_tensor *t = &c->m.tensors[i];
    g.var[g.n_vars++] = (gc_var){t->name, c->m.params + t->offset, c->m.grads + t->offset, t->numel};
  }
  double worst = gc_run(&g, 1e-2);
  print_message("  worst relative gradient error %.2e over %d tensors\n", worst, g.n_vars);
  assert_true(worst <= 1e-2);
}

static void test_resnet1d_grad(void **state) {
  (void)state;
  mctx c = {0};
  nn_resnet_config cfg = {.dims = 1, .w = 10, .cin = 3, .cout = 2, .width = 8, .blocks = 2,
                          .groups = 2, .n_scalars = 2, .emb_dim = 6};
  assert_int_equal(nn_resnet_init(&c.m, &cfg, NULL), 0);
  mctx_setup(&c, 3, 11);
  gradcheck_model(&c);
  mctx_free(&c);
}

static void test_resnet2d_grad(void **state) {
  (void)state;
  mctx c = {0};
  nn_resnet_config cfg = {.dims = 2, .h = 4, .w = 5, .cin = 2, .cout = 2, .width = 4, .blocks = 1,
                          .groups = 2, .n_scalars = 1, .emb_dim = 4};
  assert_int_equal(nn_resnet_init(&c.m, &cfg, NULL), 0);
  mctx_setup(&c, 2, 12);
  gradcheck_model(&c);
  mctx_free(&c);
}

/* U-Net: finite differences on every tensor (in/out convs, embedding, each
 * block's norms and convs, the stride-2 down convs, the up convs after
 * nearest upsampling, the 1x1 skips of the concatenating decoder blocks, the
 * mid blocks) and on the input, in 1D (3 levels) and 2D (2 levels) */
static int has_tensor(const nn_model *m, const char *name) { return nn_model_find(m, name) != NULL; }

static void test_unet1d_grad(void **state) {
  (void)state;
  mctx c = {0};
  nn_unet_config cfg = {.dims = 1, .w = 8, .cin = 2, .cout = 2, .levels = 3, .widths = {4, 6, 8},
                        .blocks = 1, .mid = 1, .groups = 2, .n_scalars = 2, .emb_dim = 4};
  assert_int_equal(nn_unet_init(&c.m, &cfg, NULL), 0);
  /* the paths under test exist with their PyTorch names and shapes */
  assert_true(has_tensor(&c.m, "enc.1.down.weight") && has_tensor(&c.m, "enc.2.down.weight"));
  assert_true(has_tensor(&c.m, "dec.0.up.weight") && has_tensor(&c.m, "dec.1.up.weight"));
  assert_true(has_tensor(&c.m, "dec.0.blocks.0.skip.weight") && has_tensor(&c.m, "mid.0.conv2.weight"));
  assert_false(has_tensor(&c.m, "enc.0.blocks.0.skip.weight")); /* same width: identity */
  const nn_tensor *sk = nn_model_find(&c.m, "dec.1.blocks.0.skip.weight");
  assert_int_equal(sk->ndim, 3);
  assert_int_equal(sk->shape[0], 6), assert_int_equal(sk->shape[1], 12), assert_int_equal(sk->shape[2], 1);
  mctx_setup(&c, 2, 21);
  gradcheck_model(&c);
  mctx_free(&c);
}

static void test_unet2d_grad(void **state) {
  (void)state;
  mctx c = {0};
  nn_unet_config cfg = {.dims = 2, .h = 4, .w = 6, .cin = 2, .cout = 1, .levels = 2, .widths = {4, 6},
                        .blocks = 2, .mid = 1, .groups = 2, .n_scalars = 1, .emb_dim = 4};
  assert_int_equal(nn_unet_init(&c.m, &cfg, NULL), 0);
  const nn_tensor *d = nn_model_find(&c.m, "enc.1.down.weight");
  assert_non_null(d);
  assert_int_equal(d->ndim, 4);
  assert_int_equal(d->shape[0], 6), assert_int_equal(d->shape[1], 4), assert_int_equal(d->shape[3], 3);
  mctx_setup(&c, 2, 22);
  gradcheck_model(&c);
  mctx_free(&c);
}

/* the U-Net's spatial structure: a change at one input site moves the output
 * everywhere reachable (circular), and a circular shift of the input by 2^(L-1)
 * sites shifts the output by the same amount (down/up sampling commute with
 * such shifts); an inference workspace gives the training forward's output */
static void test_unet_shift_and_infer(void **state) {
  (void)state;
  mctx c = {0};
  nn_unet_config cfg = {.dims = 2, .h = 8, .w = 8, .cin = 2, .cout = 2, .levels = 3, .widths = {4, 8, 8},
                        .blocks = 2, .mid = 2, .groups = 4, .n_scalars = 1, .emb_dim = 8};
  assert_int_equal(nn_unet_init(&c.m, &cfg, NULL), 0);
  int B = 3, H = 8, W = 8, C = 2, sh = 4;
  mctx_setup(&c, B, 23);
  m_fwd(&c);
  size_t n = (size_t)B * C * H * W;
  float *xs = malloc(n * sizeof(float)), *ys = malloc(n * sizeof(float));
  for (int b = 0; b < B; b++)
    for (int ch = 0; ch < C; ch++)
      for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++)
          xs[(((size_t)b * C + ch) * H + (i + sh) % H) * W + (j + sh) % W] =
              c.x[(((size_t)b * C + ch) * H + i) * W + j];
  nn_workspace iw;
  assert_int_equal(nn_workspace_init(&iw, &c.m, 2, 0, NULL), 0);
  assert_true(iw.n_floats < c.ws.n_floats);
  assert_int_equal(nn_infer(&c.m, &iw, xs, c.s, B, ys), 0);
  double maxd = 0, maxy = 0;
  for (int b = 0; b < B; b++)
    for (int ch = 0; ch < C; ch++)
      for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
          float want = c.out[(((size_t)b * C + ch) * H + i) * W + j];
          float got = ys[(((size_t)b * C + ch) * H + (i + sh) % H) * W + (j + sh) % W];
          maxd = fmax(maxd, fabs(got - want));
          maxy = fmax(maxy, fabs(want));
        }
  print_message("  shifted-input output max diff %.2e (max |y| %.2e)\n", maxd, maxy);
  assert_true(maxy > 1e-2 && maxd <= 1e-5 * maxy);
  /* a shift by 1 (not a multiple of 4) is not an exact symmetry of the
   * stride-2 path: the output must differ, or the down/up path is dead */
  for (size_t i = 0; i < n; i++) xs[(i / W) * W + (i % W + 1) % W] = c.x[i];
  assert_int_equal(nn_infer(&c.m, &iw, xs, c.s, B, ys), 0);
  maxd = 0;
  for (size_t i = 0; i < n; i++) maxd = fmax(maxd, fabs(ys[(i / W) * W + (i % W + 1) % W] - c.out[i]));
  assert_true(maxd > 1e-4 * maxy);
  nn_workspace_free(&iw);
  free(xs), free(ys);
  mctx_free(&c);
}

static void test_unet_bad_config(void **state) {
  (void)state;
  nn_model m;
  sb_error err = {0};
  nn_unet_config cfg = {.dims = 2, .h = 12, .w = 16, .cin = 2, .cout = 2, .levels = 4,
                        .widths = {8, 8, 16, 16}, .blocks = 1, .groups = 4};
  assert_int_equal(nn_unet_init(&m, &cfg, &err), SB_EINVAL); /* 12 is not divisible by 8 */
  assert_non_null(strstr(err.msg, "divisible by 2^(levels-1) = 8"));
  cfg.levels = 3;
  assert_int_equal(nn_unet_init(&m, &cfg, &err), 0);
  nn_model_free(&m);
  cfg.widths[1] = 6;
  assert_int_equal(nn_unet_init(&m, &cfg, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "widths[1]"));
  cfg.widths[1] = 8, cfg.dims = 1, cfg.w = 10;
  assert_int_equal(nn_unet_init(&m, &cfg, &err), SB_EINVAL);
  cfg.w = 12, cfg.blocks = 0;
  assert_int_equal(nn_unet_init(&m, &cfg, &err), SB_EINVAL);
  nn_model_free(&m);
}

static void test_mlp_grad(void **state) {
  (void)state;
  for (int act = NN_ACT_SILU; act <= NN_ACT_TANH; act++) {
    mctx c = {0};
    nn_mlp_config cfg = {.in = 5, .out = 3, .hidden = 7, .layers = 3, .act = act};
    assert_int_equal(nn_mlp_init(&c.m, &cfg, NULL), 0);
    mctx_setup(&c, 4, 13);
    gradcheck_model(&c);
    mctx_free(&c);
  }
}

/* the vector-Jacobian product alone (grads = NULL) equals the one computed
 * together with parameter gradients, and leaves model grads untouched */
static void test_input_grad_only(void **state) {
  (void)state;
  mctx c = {0};
  nn_resnet_config cfg = {.dims = 1, .w = 12, .cin = 2, .cout = 1, .width = 8, .blocks = 2,
                          .groups = 4, .n_scalars = 1, .emb_dim = 8};
  assert_int_equal(nn_resnet_init(&c.m, &cfg, NULL), 0);
  mctx_setup(&c, 4, 3);
  size_t nx = (size_t)4 * nn_in_size(&c.m);
  float *dx2 = calloc(nx, sizeof(float));
  m_fwd(&c);
  nn_zero_grad(&c.m);
  assert_int_equal(nn_backward(&c.m, &c.ws, c.dout, c.m.grads, c.dx), 0);
  float *g1 = malloc(c.m.n_params * sizeof(float));
  memcpy(g1, c.m.grads, c.m.n_params * sizeof(float));
  assert_int_equal(nn_backward(&c.m, &c.ws, c.dout, NULL, dx2), 0);
  for (size_t i = 0; i < nx; i++) assert_float_equal(dx2[i], c.dx[i], 1e-6f * (1 + fabsf(c.dx[i])));
  assert_memory_equal(g1, c.m.grads, c.m.n_params * sizeof(float));
  free(g1), free(dx2);
  mctx_free(&c);
}

/* per-sample independence: chunked inference with an inference-only workspace
 * equals one training-workspace forward over the whole batch */
static void test_infer_chunks(void **state) {
  (void)state;
  mctx c = {0};
  nn_resnet_config cfg = {.dims = 1, .w = 16, .cin = 3, .cout = 2, .width = 8, .blocks = 3,
                          .groups = 2, .n_scalars = 2, .emb_dim = 4};
  assert_int_equal(nn_resnet_init(&c.m, &cfg, NULL), 0);
  mctx_setup(&c, 7, 4);
  m_fwd(&c);
  nn_workspace iw;
  assert_int_equal(nn_workspace_init(&iw, &c.m, 3, 0, NULL), 0);
  assert_true(iw.n_floats < c.ws.n_floats);
  size_t no = (size_t)7 * nn_out_size(&c.m);
  float *o2 = calloc(no, sizeof(float));
  assert_int_equal(nn_infer(&c.m, &iw, c.x, c.s, 7, o2), 0);
  for (size_t i = 0; i < no; i++) assert_float_equal(o2[i], c.out[i], 1e-5f * (1 + fabsf(c.out[i])));
  assert_int_equal(nn_backward(&c.m, &iw, c.dout, NULL, c.dx), SB_EINVAL); /* no backward state */
  assert_int_equal(nn_forward(&c.m, &iw, c.x, c.s, 4, o2), SB_EINVAL);     /* over max batch */
  free(o2);
  nn_workspace_free(&iw);
  mctx_free(&c);
}

static void test_bad_config(void **state) {
  (void)state;
  nn_model m;
  sb_error err = {0};
  nn_resnet_config cfg = {.dims = 1, .w = 16, .cin = 3, .cout = 2, .width = 10, .blocks = 3,
                          .groups = 4};
  assert_int_equal(nn_resnet_init(&m, &cfg, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "groups"));
  cfg.groups = 5, cfg.n_scalars = 1, cfg.emb_dim = 3;
  assert_int_equal(nn_resnet_init(&m, &cfg, &err), SB_EINVAL);
  nn_model_free(&m);
}

/* infers with the workspace iw into y, which must equal a fresh workspace's answer
 * (into scratch) and differ from before (the parameters changed) */
static void infer_like_fresh(nn_model *m, nn_workspace *iw, const float *x, const float *s, int B,
                             int n_out, float *y, float *scratch, const float *before) {
  nn_workspace fresh;
  assert_int_equal(nn_infer(m, iw, x, s, B, y), 0);
  assert_int_equal(nn_workspace_init(&fresh, m, B, 0, NULL), 0);
  assert_int_equal(nn_infer(m, &fresh, x, s, B, scratch), 0);
  nn_workspace_free(&fresh);
  assert_memory_equal(y, scratch, sizeof(float) * B * n_out);
  assert_memory_not_equal(before, y, sizeof(float) * B * n_out);
}

/* inference workspaces keep the Winograd-transformed kernels (nn_conv_wcache):
 * after an AdamW step, and after a direct write to one weight, the same
 * workspace must answer exactly as a fresh one (a stale cache would keep the
 * old answer), and the cache must be in use (entries made, repeated calls
 * bitwise stable). 8 x 8 and 4 x 4 levels: every 3x3 convolution is F(4x4);
 * B = 9: a group of 8 samples and one on the tile way. */
static void test_unet_wcache(void **state) {
  (void)state;
  nn_model m;
  nn_unet_config cfg = {.dims = 2, .h = 8, .w = 8, .cin = 2, .cout = 2, .levels = 2, .widths = {8, 16},
                        .blocks = 1, .mid = 1, .groups = 4, .n_scalars = 1, .emb_dim = 8};
  assert_int_equal(nn_unet_init(&m, &cfg, NULL), 0);
  nn_model_init_params(&m, 3);
  int B = 9, n_in = nn_in_size(&m), n_out = nn_out_size(&m);
  float *x = malloc(sizeof(float) * B * n_in), *s = malloc(sizeof(float) * B);
  float *y[4];
  for (int i = 0; i < 4; i++) y[i] = malloc(sizeof(float) * B * n_out);
  rng r;
  rng_init(&r, 5, 0);
  rng_fill_normal_f(&r, x, (size_t)B * n_in);
  for (int b = 0; b < B; b++) s[b] = (float)rng_uniform(&r);
  nn_workspace iw;
  assert_int_equal(nn_workspace_init(&iw, &m, B, 0, NULL), 0);
  assert_int_equal(nn_infer(&m, &iw, x, s, B, y[0]), 0);
  int cached = 0;
  for (int i = 0; i < iw.n_wc; i++) cached += iw.wc[i].U != NULL;
  assert_true(cached >= 5); /* in, out, 2 per block (3 blocks), up */
  assert_int_equal(nn_infer(&m, &iw, x, s, B, y[1]), 0);
  assert_memory_equal(y[0], y[1], sizeof(float) * B * n_out);
  /* an optimizer step */
  for (size_t i = 0; i < m.n_params; i++) m.grads[i] = (float)rng_normal(&r);
  nn_adamw o = nn_adamw_default();
  o.lr = 1e-2f;
  assert_int_equal(nn_adamw_step(&m, &o, o.lr, NULL), 0);
  infer_like_fresh(&m, &iw, x, s, B, n_out, y[1], y[2], y[0]);
  /* one weight of the last block's second convolution written directly */
  int t = -1;
  for (int i = 0; i < m.n_tensors; i++)
    if (strstr(m.tensors[i].name, "conv2.weight")) t = i;
  assert_true(t >= 0);
  m.params[m.tensors[t].offset + 4] += 0.25f;
  infer_like_fresh(&m, &iw, x, s, B, n_out, y[3], y[2], y[1]);
  nn_workspace_free(&iw);
  assert_null(iw.wc);
  for (int i = 0; i < 4; i++) free(y[i]);
  free(x), free(s);
  nn_model_free(&m);
}

/* AdamW: one step against a hand computation; non-finite gradients skip the step */
static void test_adamw(void **state) {
  (void)state;
  nn_model m;
  nn_mlp_config cfg = {.in = 2, .out = 1, .hidden = 2, .layers = 1};
  assert_int_equal(nn_mlp_init(&m, &cfg, NULL), 0);
  nn_model_init_params(&m, 1);
  float p0 = m.params[0];
  m.grads[0] = 0.5f;
  nn_adamw o = nn_adamw_default();
  o.lr = 0.1f;
  assert_int_equal(nn_adamw_step(&m, &o, o.lr, NULL), 0);
  /* step 1: mhat = g, vhat = g^2, update = lr * g/(|g| + eps) = lr */
  double expect = p0 * (1.0 - 0.1 * 0.01) - 0.1 * 0.5 / (0.5 + 1e-8);
  assert_float_equal(m.params[0], (float)expect, 1e-6f);
  float *before = malloc(m.n_params * sizeof(float));
  memcpy(before, m.params, m.n_params * sizeof(float));
  m.grads[1] = NAN;
  assert_int_equal(nn_adamw_step(&m, &o, o.lr, NULL), 1);
  assert_memory_equal(before, m.params, m.n_params * sizeof(float));
  assert_int_equal(m.step, 1);
  /* clipping: a huge gradient moves params by at most about lr */
  nn_zero_grad(&m);
  m.grads[2] = 1e6f;
  o.clip = 1.0f;
  double norm = 0;
  assert_int_equal(nn_adamw_step(&m, &o, o.lr, &norm), 0);
  assert_float_equal((float)norm, 1e6f, 1.0f);
  /* clipping acts on the gradient the moments see: the clipped gradient has
   * norm clip = 1, so m_2 = 0.9 m_2(prev) + 0.1 * 1 and v_2 = 0.999 v_2(prev)
   * + 0.001 * 1 (the previous steps left m_2 = 0.1 g_2(step 1) = 0 since
   * grads[2] was 0 then; v_2 likewise). Unclipped they would be 1e5 and 1e9.
   * Tolerances: float rounding. */
  assert_float_equal(m.m[2], 0.1f * (float)(1e6 / (1e6 + 1e-6)), 1e-6f);
  assert_float_equal(m.v[2], 0.001f, 1e-7f); /* (1 - beta2) in float is 0.001 - 1.3e-8 */
  /* and the next step with a small gradient is not swamped: after one more
   * step with g_2 = 0.5 the Adam ratio mhat / sqrt(vhat) is what the clipped
   * history gives, computed here (step 3: bias corrections 1 - 0.9^3, 1 - 0.999^3) */
  float p2 = m.params[2];
  nn_zero_grad(&m);
  m.grads[2] = 0.5f;
  assert_int_equal(nn_adamw_step(&m, &o, o.lr, &norm), 0);
  double m2 = 0.9 * 0.1 + 0.1 * 0.5, v2 = 0.999 * 0.001 + 0.001 * 0.25;
  double mh = m2 / (1 - pow(0.9, 3)), vh = v2 / (1 - pow(0.999, 3));
  double want2 = p2 * (1 - 0.1 * 0.01) - 0.1 * mh / (sqrt(vh) + 1e-8);
  assert_float_equal(m.params[2], (float)want2, 1e-5f);
  /* a gradient below the clip norm is not scaled */
  nn_zero_grad(&m);
  m.grads[3] = 0.25f;
  float m3 = m.m[3];
  assert_int_equal(nn_adamw_step(&m, &o, o.lr, &norm), 0);
  assert_float_equal(m.m[3], 0.9f * m3 + 0.1f * 0.25f, 1e-7f);
  free(before);
  nn_model_free(&m);
}

static void test_ema_and_lr(void **state) {
  (void)state;
  nn_model m;
  nn_mlp_config cfg = {.in = 2, .out = 1, .hidden = 2, .layers = 1};
  assert_int_equal(nn_mlp_init(&m, &cfg, NULL), 0);
  nn_model_init_params(&m, 1);
  assert_int_equal(nn_ema_update(&m, 0.9f), 0);
  assert_memory_equal(m.ema, m.params, m.n_params * sizeof(float));
  float e0 = m.ema[0];
  m.params[0] += 1.0f;
  nn_ema_update(&m, 0.9f);
  assert_float_equal(m.ema[0], e0 + 0.1f, 1e-6f);
  nn_model_free(&m);
  assert_float_equal(nn_lr_at(0, 1.0f, 10, 110, NN_LR_COSINE, 0.0f), 0.1f, 1e-7f);
  assert_float_equal(nn_lr_at(9, 1.0f, 10, 110, NN_LR_COSINE, 0.0f), 1.0f, 1e-7f);
  assert_float_equal(nn_lr_at(10, 1.0f, 10, 110, NN_LR_COSINE, 0.0f), 1.0f, 1e-7f);
  assert_float_equal(nn_lr_at(60, 1.0f, 10, 110, NN_LR_COSINE, 0.0f), 0.5f, 1e-6f);
  assert_float_equal(nn_lr_at(60, 1.0f, 10, 110, NN_LR_LINEAR, 0.1f), 0.55f, 1e-6f);
  assert_float_equal(nn_lr_at(500, 1.0f, 10, 110, NN_LR_COSINE, 0.1f), 0.1f, 1e-6f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resnet1d_grad),   cmocka_unit_test(test_resnet2d_grad),
      cmocka_unit_test(test_unet1d_grad),     cmocka_unit_test(test_unet2d_grad),
      cmocka_unit_test(test_unet_shift_and_infer), cmocka_unit_test(test_unet_wcache), cmocka_unit_test(test_unet_bad_config),
      cmocka_unit_test(test_mlp_grad),        cmocka_unit_test(test_input_grad_only),
      cmocka_unit_test(test_infer_chunks),    cmocka_unit_test(test_bad_config),
      cmocka_unit_test(test_adamw),           cmocka_unit_test(test_ema_and_lr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
