/* test_nn_layers.c: finite-difference gradient checks of every layer kernel
 * (weights and inputs), see nn_gradcheck.h for the method and tolerances. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn_gradcheck.h"
#include "nn/nn_layers.h"
#include "util/rng.h"

#define TOL 1e-2

enum {
  OP_LINEAR, OP_MLINEAR, OP_CONV, OP_UPS, OP_GN, OP_GNSILU, OP_LN, OP_SILU, OP_TANH, OP_RELU,
  OP_SOFTPLUS, OP_ADD, OP_CHANBIAS, OP_CONCAT, OP_COUPLING, OP_CONV_ADD_T
};

typedef struct lctx {
  int op;
  int B, C, C2, S, G, IC, OC, H, W, kh, kw, stride, fh, fw;
  float clamp;
  float *a, *b, *c, *w, *bias, *mask, *out, *dout;       /* inputs, params, output */
  float *da, *db, *dc, *dw, *dbias;                       /* gradients */
  float *s1, *s2, *col, *dcol, *wm, *logdet, *dlogdet;    /* scratch */
  size_t n_out;
} lctx;

static void fwd(void *p) {
  lctx *c = p;
  switch (c->op) {
  case OP_LINEAR: nn_linear_forward(c->out, c->a, c->w, c->bias, c->B, c->IC, c->OC); break;
  case OP_MLINEAR:
    nn_masked_linear_forward(c->out, c->wm, c->a, c->w, c->mask, c->bias, c->B, c->IC, c->OC);
    break;
  case OP_CONV:
    nn_conv_forward(c->out, c->col, c->a, c->w, c->bias, c->C, c->C2, c->B, c->H, c->W, c->kh,
                    c->kw, c->stride);
    break;
  case OP_CONV_ADD_T: /* out = b + conv(a): forward_add, checked with backward_t */
    memcpy(c->out, c->b, c->n_out * sizeof(float));
    nn_conv_forward_add(c->out, c->col, c->a, c->w, c->bias, c->C, c->C2, c->B, c->H, c->W,
                        c->kh, c->kw, c->stride);
    break;
  case OP_UPS: nn_upsample_forward(c->out, c->a, c->C * c->B, c->H, c->W, c->fh, c->fw); break;
  case OP_GN: nn_groupnorm_forward(c->out, c->s1, c->s2, c->a, c->w, c->bias, c->C, c->B, c->S, c->G); break;
  case OP_GNSILU: nn_gn_silu_forward(c->out, c->s1, c->s2, c->a, c->w, c->bias, c->C, c->B, c->S, c->G); break;
  case OP_LN: nn_layernorm_forward(c->out, c->s1, c->s2, c->a, c->w, c->bias, c->B, c->C); break;
  case OP_SILU: nn_silu_forward(c->out, c->a, c->n_out); break;
  case OP_TANH: nn_tanh_forward(c->out, c->a, c->n_out); break;
  case OP_RELU: nn_relu_forward(c->out, c->a, c->n_out); break;
  case OP_SOFTPLUS: nn_softplus_forward(c->out, c->a, c->n_out); break;
  case OP_ADD: nn_add_forward(c->out, c->a, c->b, c->n_out); break;
  case OP_CHANBIAS:
    memcpy(c->out, c->a, c->n_out * sizeof(float));
    nn_chanbias_forward(c->out, c->b, c->C2, c->C, c->B, c->S);
    break;
  case OP_CONCAT: nn_concat_forward(c->out, c->a, c->C, c->b, c->C2, c->B, c->S); break;
  case OP_COUPLING:
    /* out = [y (B*D), logdet (B)] so the loss sees both */
    memset(c->out + (size_t)c->B * c->C, 0, c->B * sizeof(float));
    nn_coupling_forward(c->out, c->out + (size_t)c->B * c->C, c->a, c->b, c->c, c->mask,
                        c->clamp, c->B, c->C);
    break;
  }
}

static void bwd(void *p) {
  lctx *c = p;
  switch (c->op) {
  case OP_LINEAR: nn_linear_backward(c->da, c->dw, c->dbias, c->dout, c->a, c->w, c->B, c->IC, c->OC); break;
  case OP_MLINEAR:
    nn_masked_linear_backward(c->da, c->dw, c->dbias, c->dout, c->a, c->wm, c->mask, c->B, c->IC, c->OC);
    break;
  case OP_CONV:
    nn_conv_backward(c->da, c->dw, c->dbias, c->col, c->dcol, c->dout, c->a, c->w, c->C, c->C2,
                     c->B, c->H, c->W, c->kh, c->kw, c->stride);
    break;
  case OP_CONV_ADD_T:
    nn_conv_backward_t(c->da, c->dw, c->dbias, c->col, c->dcol, c->dout, c->a, c->w, c->C, c->C2,
                       c->B, c->H, c->W, c->kh, c->kw, c->stride);
    for (size_t i = 0; i < c->n_out; i++) c->db[i] += c->dout[i];
    break;
  case OP_UPS: nn_upsample_backward(c->da, c->dout, c->C * c->B, c->H, c->W, c->fh, c->fw); break;
  case OP_GN:
    nn_groupnorm_backward(c->da, c->dw, c->dbias, c->dout, c->a, c->w, c->s1, c->s2, c->C, c->B, c->S, c->G);
    break;
  case OP_GNSILU:
    nn_gn_silu_backward(c->da, c->dw, c->dbias, c->dout, c->a, c->w, c->bias, c->s1, c->s2, c->C,
                        c->B, c->S, c->G);
    break;
  case OP_LN: nn_layernorm_backward(c->da, c->dw, c->dbias, c->dout, c->a, c->w, c->s1, c->s2, c->B, c->C); break;
  case OP_SILU: nn_silu_backward(c->da, c->dout, c->a, c->n_out); break;
  case OP_TANH: nn_tanh_backward(c->da, c->dout, c->a, c->n_out); break;
  case OP_RELU: nn_relu_backward(c->da, c->dout, c->a, c->n_out); break;
  case OP_SOFTPLUS: nn_softplus_backward(c->da, c->dout, c->a, c->n_out); break;
  case OP_ADD: nn_add_backward(c->da, c->db, c->dout, c->n_out); break;
  case OP_CHANBIAS:
    nn_add_backward(c->da, NULL, c->dout, c->n_out);
    nn_chanbias_backward(c->db, c->dout, c->C2, c->C, c->B, c->S);
    break;
  case OP_CONCAT: nn_concat_backward(c->da, c->db, c->dout, c->C, c->C2, c->B, c->S); break;
  case OP_COUPLING:
    nn_coupling_backward(c->da, c->db, c->dc, c->dout, c->dout + (size_t)c->B * c->C, c->a, c->b,
                         c->mask, c->clamp, c->B, c->C);
    break;
  }
}

static float *rnd(size_t n, uint64_t stream, float scale) {
  float *p = calloc(n ? n : 1, sizeof(float));
  rng r;
  rng_init(&r, 1234, stream);
  rng_fill_normal_f(&r, p, n);
  for (size_t i = 0; i < n; i++) p[i] *= scale;
  return p;
}
static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* sets up gc over ctx; vars added by the caller */
static void gc_setup(gc *g, lctx *c) {
  memset(g, 0, sizeof *g);
  g->forward = fwd;
  g->backward = bwd;
  g->ctx = c;
  c->out = zeros(c->n_out);
  c->dout = rnd(c->n_out, 99, 1.0f);
  g->out = c->out;
  g->n_out = c->n_out;
  g->r = c->dout;
  g->max_checks = 48;
}
static void gc_add(gc *g, const char *name, float *x, float *grad, size_t n) {
  g->var[g->n_vars++] = (gc_var){name, x, grad, n};
}
static void lctx_free(lctx *c) {
  float *all[] = {c->a, c->b, c->c, c->w, c->bias, c->mask, c->out, c->dout, c->da, c->db, c->dc,
                  c->dw, c->dbias, c->s1, c->s2, c->col, c->dcol, c->wm, c->logdet, c->dlogdet};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

static void test_linear(void **state) {
  (void)state;
  for (int masked = 0; masked < 2; masked++) {
    lctx c = {.op = masked ? OP_MLINEAR : OP_LINEAR, .B = 5, .IC = 7, .OC = 6};
    c.n_out = (size_t)c.B * c.OC;
    c.a = rnd(35, 1, 1.0f), c.w = rnd(42, 2, 0.5f), c.bias = rnd(6, 3, 0.5f);
    c.da = zeros(35), c.dw = zeros(42), c.dbias = zeros(6), c.wm = zeros(42);
    if (masked) { /* MADE-like lower-triangular mask */
      c.mask = zeros(42);
      for (int o = 0; o < 6; o++)
        for (int i = 0; i < 7; i++) c.mask[o * 7 + i] = i <= o ? 1.0f : 0.0f;
    }
    gc g;
    gc_setup(&g, &c);
    gc_add(&g, "x", c.a, c.da, 35);
    gc_add(&g, "w", c.w, c.dw, 42);
    gc_add(&g, "b", c.bias, c.dbias, 6);
    assert_true(gc_run(&g, TOL) <= TOL);
    if (masked) /* masked weights get exactly zero gradient */
      for (int i = 0; i < 42; i++)
        if (c.mask[i] == 0.0f) assert_true(c.dw[i] == 0.0f);
    lctx_free(&c);
  }
}

static void conv_case_k(int dims, int stride, int B, int H, int W, int k) {
  lctx c = {.op = OP_CONV, .B = B, .C = 3, .C2 = 4, .H = H, .W = W,
            .kh = dims == 2 ? k : 1, .kw = k, .stride = stride};
  int Ho = nn_conv_out_size(c.H, stride), Wo = nn_conv_out_size(c.W, stride);
  size_t nx = (size_t)c.C * c.B * c.H * c.W, K = (size_t)c.C * c.kh * c.kw, P = (size_t)c.B * Ho * Wo;
  c.n_out = c.C2 * P;
  c.a = rnd(nx, 1, 1.0f), c.w = rnd(c.C2 * K, 2, 0.5f), c.bias = rnd(c.C2, 3, 0.5f);
  c.da = zeros(nx), c.dw = zeros(c.C2 * K), c.dbias = zeros(c.C2);
  c.col = k == 1 ? NULL : zeros(K * P), c.dcol = k == 1 ? NULL : zeros(K * P); /* 1x1: no col */
  gc g;
  gc_setup(&g, &c);
  g.max_checks = nx > 400 ? 97 : 0;
  gc_add(&g, "x", c.a, c.da, nx);
  gc_add(&g, "w", c.w, c.dw, c.C2 * K);
  gc_add(&g, "b", c.bias, c.dbias, c.C2);
  assert_true(gc_run(&g, TOL) <= TOL);
  lctx_free(&c);
}

static void conv_case_sized(int dims, int stride, int B, int H, int W) {
  conv_case_k(dims, stride, B, H, W, 3);
}

static void conv_case(int dims, int stride) {
  conv_case_sized(dims, stride, 3, dims == 2 ? 6 : 1, dims == 2 ? 5 : 9);
}

/* forward against a direct double-precision circular convolution, with a
 * batch large enough that the kernels work in several sample tiles */
static void test_conv_tiled(void **state) {
  (void)state;
  for (int dims = 1; dims <= 2; dims++)
    for (int s = 1; s <= 2; s++) {
      int B = 5, Ci = 3, Co = 4, H = dims == 2 ? 20 : 1, W = dims == 2 ? 21 : 401;
      int kh = dims == 2 ? 3 : 1, Ho = nn_conv_out_size(H, s), Wo = nn_conv_out_size(W, s);
      size_t nx = (size_t)Ci * B * H * W, K = (size_t)Ci * kh * 3, P = (size_t)B * Ho * Wo;
      float *x = rnd(nx, 1, 1.0f), *w = rnd(Co * K, 2, 1.0f), *bias = rnd(Co, 3, 1.0f);
      float *out = zeros(Co * P), *col = zeros(K * P);
      nn_conv_forward(out, col, x, w, bias, Ci, Co, B, H, W, kh, 3, s);
      double maxerr = 0.0;
      for (int co = 0; co < Co; co++)
        for (int b = 0; b < B; b++)
          for (int ho = 0; ho < Ho; ho++)
            for (int wo = 0; wo < Wo; wo++) {
              double acc = bias[co];
              for (int ci = 0; ci < Ci; ci++)
                for (int i = 0; i < kh; i++)
                  for (int j = 0; j < 3; j++) {
                    int hh = ((ho * s + i - kh / 2) % H + H) % H, ww = ((wo * s + j - 1) % W + W) % W;
                    acc += (double)w[((size_t)(co * Ci + ci) * kh + i) * 3 + j] *
                           x[(((size_t)ci * B + b) * H + hh) * W + ww];
                  }
              double got = out[(size_t)co * P + ((size_t)b * Ho + ho) * Wo + wo];
              maxerr = fmax(maxerr, fabs(got - acc));
            }
      assert_true(maxerr < 1e-4);
      free(x), free(w), free(bias), free(out), free(col);
      conv_case_sized(dims, s, B, H, W); /* gradients across tiles too */
    }
}

/* pointwise (1x1) convolutions multiply x directly (no col scratch): the
 * forward against a direct sum, and finite differences in 1D and 2D */
static void test_conv_pointwise(void **state) {
  (void)state;
  int B = 3, Ci = 5, Co = 4, S = 7;
  float *x = rnd((size_t)Ci * B * S, 1, 1.0f), *w = rnd((size_t)Co * Ci, 2, 1.0f);
  float *bias = rnd(Co, 3, 1.0f), *out = zeros((size_t)Co * B * S);
  assert_int_equal(nn_conv_col_size(Ci, B, 1, S, 1, 1, 1), 0);
  nn_conv_forward(out, NULL, x, w, bias, Ci, Co, B, 1, S, 1, 1, 1);
  for (int co = 0; co < Co; co++)
    for (int p = 0; p < B * S; p++) {
      double acc = bias[co];
      for (int ci = 0; ci < Ci; ci++) acc += (double)w[co * Ci + ci] * x[(size_t)ci * B * S + p];
      assert_true(fabs(out[(size_t)co * B * S + p] - acc) < 1e-5);
    }
  free(x), free(w), free(bias), free(out);
  conv_case_k(1, 1, 3, 1, 9, 1);
  conv_case_k(2, 1, 2, 4, 5, 1);
}

/* nn_conv_backward_t (dx as a convolution with the flipped kernel) gives the
 * finite-difference-checked nn_conv_backward's gradients, in 1D and 2D, over
 * several sample tiles, with more and with fewer output than input channels */
static void test_conv_backward_t(void **state) {
  (void)state;
  for (int dims = 1; dims <= 2; dims++)
    for (int wide = 0; wide < 2; wide++) {
      int B = 5, Ci = wide ? 3 : 6, Co = wide ? 7 : 2, H = dims == 2 ? 20 : 1, W = dims == 2 ? 21 : 401;
      int kh = dims == 2 ? 3 : 1;
      size_t nx = (size_t)Ci * B * H * W, ny = (size_t)Co * B * H * W, nw = (size_t)Co * Ci * kh * 3;
      size_t nc = nn_conv_scratch_size(Ci, Co, B, H, W, kh, 3, 1), nd = nn_conv_dcol_size(Ci, Co, B, H, W, kh, 3, 1);
      assert_true(nd >= nc);
      float *x = rnd(nx, 1, 1.0f), *w = rnd(nw, 2, 1.0f), *dy = rnd(ny, 3, 1.0f);
      float *col = zeros(nc), *dcol = zeros(nd > nc ? nd : nc);
      float *dx1 = zeros(nx), *dx2 = rnd(nx, 4, 1.0f), *dw1 = zeros(nw), *dw2 = zeros(nw);
      float *db1 = zeros(Co), *db2 = zeros(Co);
      memcpy(dx1, dx2, nx * sizeof(float)); /* both accumulate onto the same values */
      nn_conv_backward(dx1, dw1, db1, col, dcol, dy, x, w, Ci, Co, B, H, W, kh, 3, 1);
      nn_conv_backward_t(dx2, dw2, db2, col, dcol, dy, x, w, Ci, Co, B, H, W, kh, 3, 1);
      double e = 0, mx = 0;
      for (size_t i = 0; i < nx; i++) e = fmax(e, fabs(dx1[i] - dx2[i])), mx = fmax(mx, fabs(dx1[i]));
      assert_true(mx > 1.0 && e <= 1e-5 * mx);
      assert_memory_equal(dw1, dw2, nw * sizeof(float));
      assert_memory_equal(db1, db2, Co * sizeof(float));
      free(x), free(w), free(dy), free(col), free(dcol), free(dx1), free(dx2), free(dw1), free(dw2),
          free(db1), free(db2);
    }
}

/* Winograd F(4x4, 3x3) and F(2x2, 3x3) (nn_wino.c) against the im2col path
 * and a direct double-precision circular convolution, forward and input
 * gradient, on sizes that use F(4x4) (multiples of 4), F(2x2) (even, not
 * multiples of 4), several chunks of tiles with a partial group, and batches
 * with groups of 8 samples (the batch-vector way) with and without a remainder.
 * The weight gradient too (dw by Winograd's adjoint, accumulated onto a base).
 * Bound: |out - exact| <= 1e-5 * S, S = max over outputs of sum |w| |x|
 * (the sum's own scale). Float32 rounding of the transforms: B^T, A^T have
 * entries up to 5 and 8 and G down to 1/24, so each Winograd product carries a
 * few ulps of the largest intermediate, ~(m+2)^2 terms per output: measured
 * errors are ~3e-7 S (F(4x4)) and ~1e-7 S (F(2x2)), im2col's ~5e-8 S. */
static double conv_ref_scale(const float *x, const float *w, int Ci, int Co, int B, int H, int W,
                             double *ref, int flip) {
  double S = 0.0;
  for (int co = 0; co < Co; co++)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H; h++)
        for (int wo = 0; wo < W; wo++) {
          double acc = 0.0, mag = 0.0;
          for (int ci = 0; ci < Ci; ci++)
            for (int i = 0; i < 3; i++)
              for (int j = 0; j < 3; j++) {
                int hh = (h + i - 1 + H) % H, ww = (wo + j - 1 + W) % W;
                double k = flip ? w[((size_t)ci * Co + co) * 9 + 8 - (i * 3 + j)]
                                : w[((size_t)co * Ci + ci) * 9 + i * 3 + j];
                double v = x[(((size_t)ci * B + b) * H + hh) * W + ww];
                acc += k * v;
                mag += fabs(k * v);
              }
          ref[(((size_t)co * B + b) * H + h) * W + wo] = acc;
          S = fmax(S, mag);
        }
  return S;
}

static void test_conv_winograd(void **state) {
  (void)state;
  const int shapes[][5] = {/* B, Ci, Co, H, W */
                           {3, 3, 5, 8, 12}, {2, 4, 3, 6, 10}, {6, 5, 4, 40, 40}, {1, 7, 2, 2, 4},
                           {4, 2, 3, 20, 16}, {19, 3, 2, 12, 8}, {8, 2, 3, 6, 14}, {10, 9, 11, 4, 4}};
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    int B = shapes[k][0], Ci = shapes[k][1], Co = shapes[k][2], H = shapes[k][3], W = shapes[k][4];
    size_t nx = (size_t)Ci * B * H * W, ny = (size_t)Co * B * H * W, nw = (size_t)Co * Ci * 9;
    size_t ncol = nn_conv_scratch_size(Ci, Co, B, H, W, 3, 3, 1);
    size_t ndcol = nn_conv_dcol_size(Ci, Co, B, H, W, 3, 3, 1);
    assert_true(ncol >= nn_conv_col_size(Ci, B, H, W, 3, 3, 1));
    float *x = rnd(nx, 1, 1.0f), *w = rnd(nw, 2, 1.0f), *dy = rnd(ny, 3, 1.0f);
    float *col = zeros(ncol), *dcol = zeros(ndcol);
    float *out[3], *dx[3];
    double *ref = malloc(ny * sizeof(double)), *dref = malloc(nx * sizeof(double));
    double S = conv_ref_scale(x, w, Ci, Co, B, H, W, ref, 0);
    double dS = conv_ref_scale(dy, w, Co, Ci, B, H, W, dref, 1);
    /* dw[co][ci][i][j] = sum over b, h, w of dy[co][b][h][w] x[ci][b][h+i-1][w+j-1] */
    double *wref = malloc(nw * sizeof(double)), wS = 0.0;
    for (int co = 0; co < Co; co++)
      for (int ci = 0; ci < Ci; ci++)
        for (int i = 0; i < 3; i++)
          for (int j = 0; j < 3; j++) {
            double acc = 0.0, mag = 0.0;
            for (int b = 0; b < B; b++)
              for (int h = 0; h < H; h++)
                for (int wo = 0; wo < W; wo++) {
                  double v = (double)dy[(((size_t)co * B + b) * H + h) * W + wo] *
                             x[(((size_t)ci * B + b) * H + (h + i - 1 + H) % H) * W + (wo + j - 1 + W) % W];
                  acc += v;
                  mag += fabs(v);
                }
            wref[((size_t)co * Ci + ci) * 9 + i * 3 + j] = acc;
            wS = fmax(wS, mag);
          }
    const int modes[3] = {0, 2, 4};
    for (int i = 0; i < 3; i++) {
      int prev = nn_conv_set_winograd(modes[i]);
      out[i] = rnd(ny, 5, 1.0f); /* forward_add onto a base, subtracted below */
      nn_conv_forward_add(out[i], col, x, w, NULL, Ci, Co, B, H, W, 3, 3, 1);
      float *base = rnd(ny, 5, 1.0f);
      for (size_t j = 0; j < ny; j++) out[i][j] -= base[j];
      free(base);
      dx[i] = zeros(nx);
      float *dw = rnd(nw, 6, 1.0f), *dw0 = rnd(nw, 6, 1.0f); /* accumulates onto dw0 */
      nn_conv_backward_t(dx[i], dw, NULL, col, dcol, dy, x, w, Ci, Co, B, H, W, 3, 3, 1);
      nn_conv_set_winograd(prev);
      double we = 0.0;
      for (size_t j = 0; j < nw; j++) we = fmax(we, fabs((double)dw[j] - dw0[j] - wref[j]));
      free(dw), free(dw0);
      print_message("winograd %d: max|dw-exact| = %.2e S_dw (S_dw = %.1f)\n", modes[i], we / wS, wS);
      assert_true(we <= 1e-5 * wS + 1e-6 * 8);
      double e = 0.0, de = 0.0, vs0 = 0.0;
      for (size_t j = 0; j < ny; j++) e = fmax(e, fabs(out[i][j] - ref[j]));
      for (size_t j = 0; j < nx; j++) de = fmax(de, fabs(dx[i][j] - dref[j]));
      for (size_t j = 0; j < ny && i; j++) vs0 = fmax(vs0, fabs(out[i][j] - out[0][j]));
      print_message("winograd %d: B=%d Ci=%d Co=%d %dx%d: max|out-exact| = %.2e S (S = %.1f), "
                    "max|dx-exact| = %.2e S, max|out-im2col| = %.2e\n",
                    modes[i], B, Ci, Co, H, W, e / S, S, de / dS, vs0);
      /* base subtraction adds one rounding of |base| <~ 5 */
      assert_true(e <= 1e-5 * S + 1e-6 * 8);
      assert_true(de <= 1e-5 * dS);
    }
    /* F(4x4) runs only where H, W are multiples of 4; elsewhere mode 4 is F(2x2) */
    if (H % 4)
      assert_memory_equal(out[1], out[2], ny * sizeof(float));
    for (int i = 0; i < 3; i++) free(out[i]), free(dx[i]);
    free(x), free(w), free(dy), free(col), free(dcol), free(ref), free(dref), free(wref);
  }
}

/* the fused chunk pipeline (nn_wino_fused.c) against the direct convolution
 * and against the unfused way, forward_add with bias and dx: chunks of parts
 * of a tile row (160 input channels: 2 tile vectors fit the L2 budget, a row
 * of 6 is cut in 3), of several whole rows with a shorter last one (40 x 12,
 * 7 + 3 rows), F(2x2) (6 x 10), and B = 9 / 17 (a remainder sample on the
 * tile way). Each case must take the fused way (it would silently test the
 * unfused one otherwise): checked by the two ways giving different bits. */
static void test_conv_winograd_fused(void **state) {
  (void)state;
  const int shapes[][5] = {/* B, Ci, Co, H, W */
                           {9, 160, 8, 8, 24}, {16, 16, 12, 40, 12}, {17, 12, 8, 6, 10}};
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    int B = shapes[k][0], Ci = shapes[k][1], Co = shapes[k][2], H = shapes[k][3], W = shapes[k][4];
    size_t nx = (size_t)Ci * B * H * W, ny = (size_t)Co * B * H * W, nw = (size_t)Co * Ci * 9;
    float *x = rnd(nx, 11, 1.0f), *w = rnd(nw, 12, 1.0f), *dy = rnd(ny, 13, 1.0f);
    float *bias = rnd(Co, 14, 1.0f);
    float *col = zeros(nn_conv_scratch_size(Ci, Co, B, H, W, 3, 3, 1));
    float *dcol = zeros(nn_conv_dcol_size(Ci, Co, B, H, W, 3, 3, 1));
    double *ref = malloc(ny * sizeof(double)), *dref = malloc(nx * sizeof(double));
    double S = conv_ref_scale(x, w, Ci, Co, B, H, W, ref, 0);
    double dS = conv_ref_scale(dy, w, Co, Ci, B, H, W, dref, 1);
    float *out[2], *dx[2];
    for (int f = 0; f < 2; f++) {
      int prev = nn_conv_set_winograd_fused(f);
      out[f] = rnd(ny, 15, 1.0f);
      nn_conv_forward_add(out[f], col, x, w, bias, Ci, Co, B, H, W, 3, 3, 1);
      dx[f] = rnd(nx, 16, 1.0f);
      nn_conv_backward_t(dx[f], NULL, NULL, col, dcol, dy, x, w, Ci, Co, B, H, W, 3, 3, 1);
      nn_conv_set_winograd_fused(prev);
      float *base = rnd(ny, 15, 1.0f), *dbase = rnd(nx, 16, 1.0f);
      double e = 0.0, de = 0.0;
      for (size_t j = 0; j < ny; j++)
        e = fmax(e, fabs(out[f][j] - base[j] - ref[j] - bias[j / ((size_t)B * H * W)]));
      for (size_t j = 0; j < nx; j++) de = fmax(de, fabs(dx[f][j] - dbase[j] - dref[j]));
      free(base), free(dbase);
      print_message("winograd fused=%d: B=%d Ci=%d Co=%d %dx%d: max|out-exact| = %.2e S (S = %.1f), "
                    "max|dx-exact| = %.2e S\n", f, B, Ci, Co, H, W, e / S, S, de / dS);
      assert_true(e <= 1e-5 * S + 1e-6 * 16);
      assert_true(de <= 1e-5 * dS + 1e-6 * 16);
    }
    assert_true(memcmp(out[0], out[1], ny * sizeof(float)) != 0);
    free(out[0]), free(out[1]), free(dx[0]), free(dx[1]);
    free(x), free(w), free(dy), free(bias), free(col), free(dcol), free(ref), free(dref);
  }
}

/* finite differences through the Winograd paths: forward_add and
 * nn_conv_backward_t (dx by Winograd, dw by im2col), Cin != Cout, B > 1,
 * non-square, F(4x4) (8x12), F(2x2) (6x10), im2col (6x7, odd), and batches
 * of 9 and 8 (groups of 8 samples, with and without a remainder) */
static void test_conv_winograd_grad(void **state) {
  (void)state;
  const int shapes[][5] = {{2, 3, 5, 8, 12}, {3, 4, 2, 6, 10}, {2, 3, 4, 6, 7}, {9, 2, 3, 4, 8},
                           {8, 3, 2, 6, 2}};
  for (int mode = 2; mode <= 4; mode += 2)
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
      int prev = nn_conv_set_winograd(mode);
      lctx c = {.op = OP_CONV_ADD_T, .B = shapes[k][0], .C = shapes[k][1], .C2 = shapes[k][2],
                .H = shapes[k][3], .W = shapes[k][4], .kh = 3, .kw = 3, .stride = 1};
      size_t nx = (size_t)c.C * c.B * c.H * c.W, nw = (size_t)c.C2 * c.C * 9;
      c.n_out = (size_t)c.C2 * c.B * c.H * c.W;
      c.a = rnd(nx, 1, 1.0f), c.w = rnd(nw, 2, 0.5f), c.bias = rnd(c.C2, 3, 0.5f);
      c.b = rnd(c.n_out, 4, 1.0f), c.db = zeros(c.n_out);
      c.da = zeros(nx), c.dw = zeros(nw), c.dbias = zeros(c.C2);
      c.col = zeros(nn_conv_scratch_size(c.C, c.C2, c.B, c.H, c.W, 3, 3, 1));
      c.dcol = zeros(nn_conv_dcol_size(c.C, c.C2, c.B, c.H, c.W, 3, 3, 1));
      gc g;
      gc_setup(&g, &c);
      g.max_checks = 97;
      gc_add(&g, "x", c.a, c.da, nx);
      gc_add(&g, "w", c.w, c.dw, nw);
      gc_add(&g, "bias", c.bias, c.dbias, c.C2);
      gc_add(&g, "base", c.b, c.db, c.n_out);
      assert_true(gc_run(&g, TOL) <= TOL);
      lctx_free(&c);
      nn_conv_set_winograd(prev);
    }
}

static void test_conv1d(void **state) {
  (void)state;
  conv_case(1, 1);
  conv_case(1, 2);
}

static void test_conv2d(void **state) {
  (void)state;
  conv_case(2, 1);
  conv_case(2, 2);
}

/* circular padding: a kernel [1, 0, 0] (taps x[n-1]) must rotate the signal */
static void test_conv_circular(void **state) {
  (void)state;
  int N = 7;
  float x[7], w[3] = {1, 0, 0}, out[7], col[21];
  for (int i = 0; i < N; i++) x[i] = (float)i;
  nn_conv_forward(out, col, x, w, NULL, 1, 1, 1, 1, N, 1, 3, 1);
  for (int i = 0; i < N; i++) assert_float_equal(out[i], x[(i + N - 1) % N], 0.0f);
  nn_conv_forward(out, col, x, w, NULL, 1, 1, 1, 1, N, 1, 3, 2); /* stride 2: 4 outputs */
  for (int i = 0; i < 4; i++) assert_float_equal(out[i], x[(2 * i + N - 1) % N], 0.0f);
}

static void test_upsample(void **state) {
  (void)state;
  for (int dims = 1; dims <= 2; dims++) {
    lctx c = {.op = OP_UPS, .B = 2, .C = 3, .H = dims == 2 ? 3 : 1, .W = 4, .fh = dims == 2 ? 2 : 1, .fw = 2};
    size_t nx = (size_t)c.C * c.B * c.H * c.W;
    c.n_out = nx * c.fh * c.fw;
    c.a = rnd(nx, 1, 1.0f), c.da = zeros(nx);
    gc g;
    gc_setup(&g, &c);
    gc_add(&g, "x", c.a, c.da, nx);
    assert_true(gc_run(&g, TOL) <= TOL);
    lctx_free(&c);
  }
}

static void norm_case(int op) {
  lctx c = {.op = op, .B = 3, .C = 6, .S = 5, .G = 2};
  size_t n = (size_t)c.C * c.B * c.S;
  if (op == OP_LN) n = (size_t)c.B * c.C;
  c.n_out = n;
  c.a = rnd(n, 1, 2.0f), c.w = rnd(c.C, 2, 0.5f), c.bias = rnd(c.C, 3, 0.5f);
  for (int i = 0; i < c.C; i++) c.w[i] += 1.0f;
  c.da = zeros(n), c.dw = zeros(c.C), c.dbias = zeros(c.C);
  c.s1 = zeros(64), c.s2 = zeros(64);
  gc g;
  gc_setup(&g, &c);
  g.max_checks = 0;
  gc_add(&g, "x", c.a, c.da, n);
  gc_add(&g, "gamma", c.w, c.dw, c.C);
  gc_add(&g, "beta", c.bias, c.dbias, c.C);
  assert_true(gc_run(&g, TOL) <= TOL);
  lctx_free(&c);
}

static void test_groupnorm(void **state) {
  (void)state;
  norm_case(OP_GN);
  norm_case(OP_GNSILU);
}

static void test_layernorm(void **state) {
  (void)state;
  norm_case(OP_LN);
}

/* fused GN+SiLU equals GN then SiLU */
/* the fused GroupNorm + SiLU against the two layers one after the other,
 * forward and backward (dx, dgamma, dbeta), at the given shape */
static void gn_silu_fused_case(int C, int B, int S, int G) {
  size_t n = (size_t)C * B * S;
  float *x = rnd(n, 5, 3.0f), *gm = rnd(C, 6, 1.0f), *bt = rnd(C, 7, 1.0f), *dout = rnd(n, 8, 1.0f);
  float *o1 = zeros(n), *o2 = zeros(n), *t = zeros(n), *m = zeros((size_t)B * G), *r = zeros((size_t)B * G);
  nn_gn_silu_forward(o1, m, r, x, gm, bt, C, B, S, G);
  nn_groupnorm_forward(t, m, r, x, gm, bt, C, B, S, G);
  nn_silu_forward(o2, t, n);
  for (size_t i = 0; i < n; i++) assert_float_equal(o1[i], o2[i], 1e-5f * (1.0f + fabsf(o2[i])));
  /* backward: dx accumulates (+=) onto what is there */
  float *dx1 = rnd(n, 9, 1.0f), *dx2 = zeros(n), *dt = zeros(n), *dg1 = zeros(C), *db1 = zeros(C);
  float *dg2 = zeros(C), *db2 = zeros(C);
  memcpy(dx2, dx1, n * sizeof(float));
  nn_gn_silu_backward(dx1, dg1, db1, dout, x, gm, bt, m, r, C, B, S, G);
  nn_silu_backward(dt, dout, t, n);
  nn_groupnorm_backward(dx2, dg2, db2, dt, x, gm, m, r, C, B, S, G);
  for (size_t i = 0; i < n; i++) assert_float_equal(dx1[i], dx2[i], 1e-4f * (1.0f + fabsf(dx2[i])));
  for (int c = 0; c < C; c++) {
    assert_float_equal(dg1[c], dg2[c], 1e-4f * (1.0f + fabsf(dg2[c])) * sqrtf((float)(B * S)));
    assert_float_equal(db1[c], db2[c], 1e-4f * (1.0f + fabsf(db2[c])) * sqrtf((float)(B * S)));
  }
  free(x), free(gm), free(bt), free(dout), free(o1), free(o2), free(t), free(m), free(r);
  free(dx1), free(dx2), free(dt), free(dg1), free(db1), free(dg2), free(db2);
}

static void test_gn_silu_fused(void **state) {
  (void)state;
  gn_silu_fused_case(8, 4, 10, 4);   /* 8-wide vectors and a tail; a group's dy kept between passes */
  gn_silu_fused_case(4, 2, 4104, 2); /* a group of 8208 values: too big to keep, dy computed twice */
}

static void test_activations(void **state) {
  (void)state;
  int ops[] = {OP_SILU, OP_TANH, OP_RELU, OP_SOFTPLUS};
  for (int k = 0; k < 4; k++) {
    lctx c = {.op = ops[k]};
    c.n_out = 40;
    c.a = rnd(40, 1, 2.0f), c.da = zeros(40);
    for (int i = 0; i < 40; i++) /* keep away from the ReLU kink (h = 1e-2) */
      if (fabsf(c.a[i]) < 0.05f) c.a[i] = 0.3f;
    gc g;
    gc_setup(&g, &c);
    gc_add(&g, "x", c.a, c.da, 40);
    assert_true(gc_run(&g, TOL) <= TOL);
    lctx_free(&c);
  }
  /* the fast exp behind SiLU matches libm closely over the whole range */
  for (float v = -30.0f; v <= 30.0f; v += 0.37f) {
    float o;
    nn_silu_forward(&o, &v, 1);
    double ref = v / (1.0 + exp(-(double)v));
    assert_true(fabs(o - ref) <= 1e-6 * (1.0 + fabs(ref)));
  }
}

static void test_add_chanbias_concat(void **state) {
  (void)state;
  {
    lctx c = {.op = OP_ADD};
    c.n_out = 30;
    c.a = rnd(30, 1, 1.0f), c.b = rnd(30, 2, 1.0f), c.da = zeros(30), c.db = zeros(30);
    gc g;
    gc_setup(&g, &c);
    gc_add(&g, "a", c.a, c.da, 30);
    gc_add(&g, "b", c.b, c.db, 30);
    assert_true(gc_run(&g, TOL) <= TOL);
    lctx_free(&c);
  }
  {
    lctx c = {.op = OP_CHANBIAS, .C = 4, .B = 3, .S = 5, .C2 = 10}; /* bias rows of ldb = 10 */
    c.n_out = 60;
    c.a = rnd(60, 1, 1.0f), c.b = rnd(30, 2, 1.0f), c.da = zeros(60), c.db = zeros(30);
    gc g;
    gc_setup(&g, &c);
    gc_add(&g, "x", c.a, c.da, 60);
    gc_add(&g, "bias", c.b, c.db, 30);
    assert_true(gc_run(&g, TOL) <= TOL);
    for (int b = 0; b < 3; b++) /* the unused columns of each bias row get no gradient */
      for (int k = 4; k < 10; k++) assert_true(c.db[b * 10 + k] == 0.0f);
    lctx_free(&c);
  }
  {
    lctx c = {.op = OP_CONCAT, .C = 2, .C2 = 3, .B = 4, .S = 5};
    c.n_out = 100;
    c.a = rnd(40, 1, 1.0f), c.b = rnd(60, 2, 1.0f), c.da = zeros(40), c.db = zeros(60);
    gc g;
    gc_setup(&g, &c);
    gc_add(&g, "a", c.a, c.da, 40);
    gc_add(&g, "b", c.b, c.db, 60);
    assert_true(gc_run(&g, TOL) <= TOL);
    assert_float_equal(c.out[(1 * 5 + 1) * 5 + 2], c.a[(1 * 2 + 1) * 5 + 2], 0.0f); /* r 1, ch 1, s 2 */
    assert_float_equal(c.out[(1 * 5 + 3) * 5 + 2], c.b[(1 * 3 + 1) * 5 + 2], 0.0f); /* ch 2+1 */
    lctx_free(&c);
  }
}

static void test_coupling(void **state) {
  (void)state;
  lctx c = {.op = OP_COUPLING, .B = 3, .C = 6, .clamp = 2.0f};
  size_t n = 18;
  c.n_out = n + 3;
  c.a = rnd(n, 1, 1.0f), c.b = rnd(n, 2, 1.0f), c.c = rnd(n, 3, 1.0f), c.mask = zeros(6);
  for (int d = 0; d < 6; d += 2) c.mask[d] = 1.0f;
  c.da = zeros(n), c.db = zeros(n), c.dc = zeros(n);
  gc g;
  gc_setup(&g, &c);
  gc_add(&g, "x", c.a, c.da, n);
  gc_add(&g, "s", c.b, c.db, n);
  gc_add(&g, "t", c.c, c.dc, n);
  assert_true(gc_run(&g, TOL) <= TOL);
  /* inverse recovers x and its log-determinant cancels the forward one */
  float x2[18], ld[3] = {0};
  memcpy(ld, c.out + n, sizeof ld);
  nn_coupling_inverse(x2, ld, c.out, c.b, c.c, c.mask, c.clamp, 3, 6);
  for (size_t i = 0; i < n; i++) assert_float_equal(x2[i], c.a[i], 1e-5f);
  for (int b = 0; b < 3; b++) assert_float_equal(ld[b], 0.0f, 1e-5f);
  lctx_free(&c);
}

/* log|det| of a small dense matrix (row-major, n x n) by Gaussian elimination
 * with partial pivoting, in double. */
static double log_abs_det(double *a, int n) {
  double ld = 0;
  for (int c = 0; c < n; c++) {
    int piv = c;
    for (int r = c + 1; r < n; r++)
      if (fabs(a[r * n + c]) > fabs(a[piv * n + c])) piv = r;
    if (piv != c)
      for (int k = 0; k < n; k++) {
        double t = a[c * n + k];
        a[c * n + k] = a[piv * n + k];
        a[piv * n + k] = t;
      }
    ld += log(fabs(a[c * n + c]));
    for (int r = c + 1; r < n; r++) {
      double f = a[r * n + c] / a[c * n + c];
      for (int k = c; k < n; k++) a[r * n + k] -= f * a[c * n + k];
    }
  }
  return ld;
}

/* The coupling's log-determinant is log|det dy/dx| of the map it computes:
 * the Jacobian is taken numerically (central differences of the forward and
 * inverse maps over x with sraw and t held fixed, the layer's inputs) and its
 * log|det| by elimination; the forward must add it to logdet, the inverse
 * must add log|det dx/dy| = minus it. A sign flipped consistently in forward,
 * inverse and backward passes the gradient check and the round trip, but not
 * this. Tolerance 2e-3: float maps, step 0.05 on a map linear in x (the
 * difference is exact up to rounding ~1e-6 / 0.05 per entry); the log-dets
 * here are O(1..5), so a flipped sign is off by >= 1. */
static void test_coupling_logdet_is_jacobian(void **state) {
  (void)state;
  enum { B = 3, Dd = 6 };
  float *x = rnd(B * Dd, 11, 1.0f), *sraw = rnd(B * Dd, 12, 1.5f), *t = rnd(B * Dd, 13, 1.0f), *mask = zeros(Dd);
  for (int d = 1; d < Dd; d += 2) mask[d] = 1.0f;
  float y[B * Dd], yp[B * Dd], ym[B * Dd], xp[B * Dd], ld[B] = {0}, ldi[B] = {0};
  nn_coupling_forward(y, ld, x, sraw, t, mask, 2.0f, B, Dd);
  nn_coupling_inverse(xp, ldi, y, sraw, t, mask, 2.0f, B, Dd);
  for (int inv = 0; inv < 2; inv++)
    for (int b = 0; b < B; b++) {
      const float *at = inv ? y : x;
      double J[Dd * Dd];
      const float h = 0.05f;
      for (int j = 0; j < Dd; j++) {
        float in_p[B * Dd], in_m[B * Dd];
        memcpy(in_p, at, sizeof in_p);
        memcpy(in_m, at, sizeof in_m);
        in_p[b * Dd + j] += h;
        in_m[b * Dd + j] -= h;
        if (inv) {
          nn_coupling_inverse(yp, NULL, in_p, sraw, t, mask, 2.0f, B, Dd);
          nn_coupling_inverse(ym, NULL, in_m, sraw, t, mask, 2.0f, B, Dd);
        } else {
          nn_coupling_forward(yp, NULL, in_p, sraw, t, mask, 2.0f, B, Dd);
          nn_coupling_forward(ym, NULL, in_m, sraw, t, mask, 2.0f, B, Dd);
        }
        for (int i = 0; i < Dd; i++)
          J[i * Dd + j] = ((double)yp[b * Dd + i] - ym[b * Dd + i]) / ((double)in_p[b * Dd + j] - in_m[b * Dd + j]);
      }
      double want = log_abs_det(J, Dd), got = inv ? ldi[b] : ld[b];
      print_message("coupling %s, sample %d: logdet %.5f, log|det J| numerical %.5f\n", inv ? "inverse" : "forward", b, got,
                    want);
      assert_true(fabs(got - want) < 2e-3);
      assert_true(fabs(want) > 0.5); /* a sign error would show */
    }
  free(x), free(sraw), free(t), free(mask);
}

static void test_sinusoidal(void **state) {
  (void)state;
  float s[4] = {0.0f, 0.5f, 1.0f, 0.25f}, out[2 * 2 * 8];
  nn_sinusoidal_forward(out, s, 2, 2, 8);
  /* scalar 0: sin terms 0, cos terms 1 */
  for (int j = 0; j < 4; j++) {
    assert_float_equal(out[j], 0.0f, 0.0f);
    assert_float_equal(out[4 + j], 1.0f, 0.0f);
  }
  /* scalar 1.0 (sample 1, first scalar), lowest frequency 1 rad, highest 1000 */
  assert_float_equal(out[16], sinf(1.0f), 1e-6f);
  assert_float_equal(out[19], (float)sin(1000.0), 1e-5f);
}

/* losses: analytic d/dpred against the 4-point formula, in double */
static void test_losses(void **state) {
  (void)state;
  size_t n = 12;
  float *p = rnd(n, 1, 1.5f), *q = rnd(n, 2, 1.0f), *y = rnd(n, 3, 1.0f), lab[12];
  for (size_t i = 0; i < n; i++) lab[i] = (i % 3) ? 1.0f : 0.0f;
  float g1[12], g2[12];
  for (int kind = 0; kind < 4; kind++) {
    float *v = kind == 3 ? q : p, *g = kind == 3 ? g2 : g1;
    float dl = 0.7f;
    if (kind == 0) nn_mse_loss(g, p, y, n, dl);
    if (kind == 1) nn_bce_logits_loss(g, p, lab, n, dl);
    if (kind >= 2) nn_gauss_nll_loss(g1, g2, p, q, y, n, dl);
    for (size_t i = 0; i < n; i++) {
      double L[4], hs[4] = {0.005, -0.005, 0.01, -0.01};
      float x0 = v[i];
      for (int k = 0; k < 4; k++) {
        v[i] = (float)(x0 + hs[k]);
        L[k] = kind == 0 ? nn_mse_loss(NULL, p, y, n, 0)
             : kind == 1 ? nn_bce_logits_loss(NULL, p, lab, n, 0)
                         : nn_gauss_nll_loss(NULL, NULL, p, q, y, n, 0);
      }
      v[i] = x0;
      double num = dl * (8 * L[0] + L[3] - 8 * L[1] - L[2]) / (6 * 0.01);
      assert_true(fabs(num - g[i]) <= 1e-3 * (fabs(num) + 1e-2));
    }
  }
  assert_true(fabs(nn_bce_logits_loss(NULL, (float[]){0.0f}, (float[]){1.0f}, 1, 0) - log(2.0)) < 1e-12);
  free(p), free(q), free(y);
}

/* backward accumulates: two calls give twice the gradient */
static void test_accumulates(void **state) {
  (void)state;
  int B = 2, IC = 3, OC = 4;
  float *x = rnd(6, 1, 1), *w = rnd(12, 2, 1), *d = rnd(8, 3, 1);
  float dx1[6] = {0}, dw1[12] = {0}, dx2[6] = {0}, dw2[12] = {0};
  nn_linear_backward(dx1, dw1, NULL, d, x, w, B, IC, OC);
  nn_linear_backward(dx2, dw2, NULL, d, x, w, B, IC, OC);
  nn_linear_backward(dx2, dw2, NULL, d, x, w, B, IC, OC);
  for (int i = 0; i < 6; i++) assert_float_equal(dx2[i], 2 * dx1[i], 1e-6f);
  for (int i = 0; i < 12; i++) assert_float_equal(dw2[i], 2 * dw1[i], 1e-6f);
  free(x), free(w), free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linear),       cmocka_unit_test(test_conv1d),
      cmocka_unit_test(test_conv2d),       cmocka_unit_test(test_conv_circular),
      cmocka_unit_test(test_conv_tiled),   cmocka_unit_test(test_conv_pointwise),
      cmocka_unit_test(test_conv_backward_t), cmocka_unit_test(test_conv_winograd),
      cmocka_unit_test(test_conv_winograd_grad),
      cmocka_unit_test(test_conv_winograd_fused),
      cmocka_unit_test(test_upsample),     cmocka_unit_test(test_groupnorm),
      cmocka_unit_test(test_layernorm),    cmocka_unit_test(test_gn_silu_fused),
      cmocka_unit_test(test_activations),  cmocka_unit_test(test_add_chanbias_concat),
      cmocka_unit_test(test_coupling), cmocka_unit_test(test_coupling_logdet_is_jacobian),     cmocka_unit_test(test_sinusoidal),
      cmocka_unit_test(test_losses),       cmocka_unit_test(test_accumulates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
