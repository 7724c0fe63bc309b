/* nn_resnet.c: the residual conv net (1D over N periodic nodes or 2D over
 * [H][W]) with optional scalar embedding; forward and backward composed
 * from nn_layers. Internally activations are (C, B, S) so every convolution
 * over the batch is one GEMM. */
#include <stdio.h>
#include <string.h>

#include "nn/nn_internal.h"
#include "nn/nn_layers.h"

/* activation slots in ws->act */
enum {
  A_X0, A_Y, A_COL, A_DCOL, A_DH, A_DT1, A_DT2, A_DY, A_DX0, A_FEAT, A_E1, A_E1A, A_E2, A_DE2,
  A_DE1A, A_DE1, A_AO, A_STO, A_H = 20
};
#define A_A1(i) (A_H + (NN_MAX_BLOCKS + 1) + (i))
#define A_U1(i) (A_H + 2 * (NN_MAX_BLOCKS + 1) + (i))
#define A_A2(i) (A_H + 3 * (NN_MAX_BLOCKS + 1) + (i))
#define A_ST1(i) (A_H + 4 * (NN_MAX_BLOCKS + 1) + (i))
#define A_ST2(i) (A_H + 5 * (NN_MAX_BLOCKS + 1) + (i))

/* tensor indices (fixed by the order nn__resnet_build adds them) */
#define T_IN_W 0
#define T_IN_B 1
#define T_EMB0_W 2
#define T_EMB0_B 3
#define T_EMB1_W 4
#define T_EMB1_B 5
static int t_block(const nn_model *m, int blk, int j) {
  return 2 + (m->rc.n_scalars ? 4 : 0) + blk * 8 + j;
}
enum { TB_GN1_G, TB_GN1_B, TB_C1_W, TB_C1_B, TB_GN2_G, TB_GN2_B, TB_C2_W, TB_C2_B };
static int t_out(const nn_model *m, int j) { return t_block(m, m->rc.blocks, 0) + j; }
enum { TO_GN_G, TO_GN_B, TO_W, TO_B };

int nn__resnet_check(const nn_resnet_config *c, sb_error *err) {
  if (c->dims != 1 && c->dims != 2)
    return sb_fail(err, SB_EINVAL, "nn: resnet dims must be 1 or 2 (got %d)", c->dims);
  if (c->w < 1 || (c->dims == 2 && c->h < 1))
    return sb_fail(err, SB_EINVAL, "nn: resnet spatial size must be >= 1");
  if (c->cin < 1 || c->cout < 1 || c->width < 1 || c->groups < 1 || c->width % c->groups)
    return sb_fail(err, SB_EINVAL,
                   "nn: resnet needs cin, cout, width, groups >= 1 and width %% groups == 0 "
                   "(width %d, groups %d)", c->width, c->groups);
  if (c->w > NN_MAX_DIM || c->h > NN_MAX_DIM || c->cin > NN_MAX_DIM || c->cout > NN_MAX_DIM ||
      c->width > NN_MAX_DIM || c->emb_dim > NN_MAX_DIM)
    return sb_fail(err, SB_ERANGE, "nn: resnet sizes (w, h, cin, cout, width, emb_dim) must be at most %d",
                   NN_MAX_DIM);
  if (c->blocks < 0 || c->blocks > NN_MAX_BLOCKS)
    return sb_fail(err, SB_EINVAL, "nn: resnet blocks must be in 0..%d", NN_MAX_BLOCKS);
  if (c->n_scalars < 0 || c->n_scalars > 2 ||
      (c->n_scalars > 0 && (c->emb_dim < 2 || c->emb_dim % 2)))
    return sb_fail(err, SB_EINVAL,
                   "nn: resnet n_scalars must be 0..2 and emb_dim even and >= 2");
  return SB_OK;
}

static int kh_of(const nn_model *m) { return m->rc.dims == 2 ? 3 : 1; }

int nn__resnet_build(nn_model *m) {
  const nn_resnet_config *c = &m->rc;
  int kh = kh_of(m), kw = 3, W = c->width, E = c->emb_dim, F = c->n_scalars * c->emb_dim;
  char name[NN_NAME_MAX];
  int bad = 0;
  int64_t s4[4] = {W, c->cin, kh, kw};
  int ndim = c->dims == 2 ? 4 : 3;
  if (c->dims == 1) s4[2] = kw;
  bad |= nn__add_tensor(m, "in_conv.weight", ndim, s4, NN_INIT_UNIFORM, c->cin * kh * kw) < 0;
  bad |= nn__add_tensor(m, "in_conv.bias", 1, (int64_t[]){W}, NN_INIT_UNIFORM, c->cin * kh * kw) < 0;
  if (c->n_scalars) {
    bad |= nn__add_tensor(m, "emb.0.weight", 2, (int64_t[]){E, F}, NN_INIT_UNIFORM, F) < 0;
    bad |= nn__add_tensor(m, "emb.0.bias", 1, (int64_t[]){E}, NN_INIT_UNIFORM, F) < 0;
    bad |= nn__add_tensor(m, "emb.2.weight", 2, (int64_t[]){(int64_t)c->blocks * W, E},
                          NN_INIT_UNIFORM, E) < 0;
    bad |= nn__add_tensor(m, "emb.2.bias", 1, (int64_t[]){(int64_t)c->blocks * W},
                          NN_INIT_UNIFORM, E) < 0;
  }
  int64_t sw[4] = {W, W, kh, kw};
  if (c->dims == 1) sw[2] = kw;
  for (int b = 0; b < c->blocks; b++) {
    const char *part[8] = {"norm1.weight", "norm1.bias", "conv1.weight", "conv1.bias",
                           "norm2.weight", "norm2.bias", "conv2.weight", "conv2.bias"};
    for (int j = 0; j < 8; j++) {
      snprintf(name, sizeof name, "blocks.%d.%s", b, part[j]);
      int is_w = j == TB_C1_W || j == TB_C2_W, is_cb = j == TB_C1_B || j == TB_C2_B;
      int init = is_w || is_cb ? NN_INIT_UNIFORM : (j % 2 == 0 ? NN_INIT_ONE : NN_INIT_ZERO);
      if (is_w)
        bad |= nn__add_tensor(m, name, ndim, sw, init, W * kh * kw) < 0;
      else
        bad |= nn__add_tensor(m, name, 1, (int64_t[]){W}, init, W * kh * kw) < 0;
    }
  }
  bad |= nn__add_tensor(m, "out_norm.weight", 1, (int64_t[]){W}, NN_INIT_ONE, 0) < 0;
  bad |= nn__add_tensor(m, "out_norm.bias", 1, (int64_t[]){W}, NN_INIT_ZERO, 0) < 0;
  int64_t so[4] = {c->cout, W, kh, kw};
  if (c->dims == 1) so[2] = kw;
  bad |= nn__add_tensor(m, "out_conv.weight", ndim, so, NN_INIT_UNIFORM, W * kh * kw) < 0;
  bad |= nn__add_tensor(m, "out_conv.bias", 1, (int64_t[]){c->cout}, NN_INIT_UNIFORM,
                        W * kh * kw) < 0;
  return bad ? -1 : 0;
}

int nn__resnet_ws(nn_workspace *ws, const nn_model *m, size_t *used) {
  const nn_resnet_config *c = &m->rc;
  size_t S = (size_t)c->h * c->w, Bm = (size_t)ws->max_batch, P = Bm * S;
  size_t W = c->width, G = c->groups, nb = c->blocks, kk = (size_t)kh_of(m) * 3;
  size_t cmax = (size_t)c->cin > W ? (size_t)c->cin : W, E = c->emb_dim;
  size_t F = (size_t)c->n_scalars * E, tr = ws->train;
  float **a = ws->act;
  a[A_X0] = nn__carve(ws, used, c->cin * P);
  a[A_Y] = nn__carve(ws, used, c->cout * P);
  /* the im2col of any conv, or the Winograd scratch of a 2D one (nn_layers.h) */
  int H = c->h, Wd = c->w, kh = kh_of(m), Bi = ws->max_batch;
  size_t col = cmax * kk * P, dcol = col;
  size_t pairs[3][2] = {{c->cin, W}, {W, W}, {W, c->cout}};
  for (int i = 0; i < 3; i++) {
    int ci = (int)pairs[i][0], co = (int)pairs[i][1];
    size_t s = nn_conv_scratch_size(ci, co, Bi, H, Wd, kh, 3, 1);
    size_t d = nn_conv_dcol_size(ci, co, Bi, H, Wd, kh, 3, 1);
    col = s > col ? s : col;
    dcol = d > dcol ? d : dcol;
  }
  a[A_COL] = nn__carve(ws, used, col);
  a[A_DCOL] = nn__carve(ws, used, tr * dcol);
  a[A_DH] = nn__carve(ws, used, tr * W * P);
  a[A_DT1] = nn__carve(ws, used, tr * W * P);
  a[A_DT2] = nn__carve(ws, used, tr * W * P);
  a[A_DY] = nn__carve(ws, used, tr * c->cout * P);
  a[A_DX0] = nn__carve(ws, used, tr * c->cin * P);
  a[A_FEAT] = nn__carve(ws, used, Bm * F);
  a[A_E1] = nn__carve(ws, used, Bm * E);
  a[A_E1A] = nn__carve(ws, used, Bm * E);
  a[A_E2] = nn__carve(ws, used, Bm * nb * W);
  a[A_DE2] = nn__carve(ws, used, tr * Bm * nb * W);
  a[A_DE1A] = nn__carve(ws, used, tr * Bm * E);
  a[A_DE1] = nn__carve(ws, used, tr * Bm * E);
  a[A_AO] = nn__carve(ws, used, W * P);
  a[A_STO] = nn__carve(ws, used, 2 * Bm * G);
  /* training keeps every block's activations; inference reuses one set
   * (the residual stream is updated in place) */
  for (size_t i = 0; i <= nb; i++)
    a[A_H + i] = (tr || i == 0) ? nn__carve(ws, used, W * P) : a[A_H];
  for (size_t i = 0; i < nb; i++) {
    int fresh = tr || i == 0;
    a[A_A1(i)] = fresh ? nn__carve(ws, used, W * P) : a[A_A1(0)];
    a[A_U1(i)] = fresh ? nn__carve(ws, used, W * P) : a[A_U1(0)];
    a[A_A2(i)] = fresh ? nn__carve(ws, used, W * P) : a[A_A2(0)];
    a[A_ST1(i)] = fresh ? nn__carve(ws, used, 2 * Bm * G) : a[A_ST1(0)];
    a[A_ST2(i)] = fresh ? nn__carve(ws, used, 2 * Bm * G) : a[A_ST2(0)];
  }
  return 0;
}

int nn__resnet_forward(const nn_model *m, nn_workspace *ws, const float *x, const float *scalars,
                       int B, float *out) {
  const nn_resnet_config *c = &m->rc;
  int H = c->h, Wd = c->w, S = H * Wd, W = c->width, G = c->groups, nb = c->blocks;
  int kh = kh_of(m), E = c->emb_dim, F = c->n_scalars * E, Gm = ws->max_batch * G;
  size_t P = (size_t)B * S;
  float **a = ws->act;
  nn_transpose_bcs_to_cbs(a[A_X0], x, B, c->cin, S);
  if (c->n_scalars) {
    nn_sinusoidal_forward(a[A_FEAT], scalars, B, c->n_scalars, E);
    nn_linear_forward(a[A_E1], a[A_FEAT], NN_P(m, T_EMB0_W), NN_P(m, T_EMB0_B), B, F, E);
    nn_silu_forward(a[A_E1A], a[A_E1], (size_t)B * E);
    nn_linear_forward(a[A_E2], a[A_E1A], NN_P(m, T_EMB1_W), NN_P(m, T_EMB1_B), B, E, nb * W);
  }
  nn_conv_forward(a[A_H], a[A_COL], a[A_X0], NN_P(m, T_IN_W), NN_P(m, T_IN_B), c->cin, W, B, H,
                  Wd, kh, 3, 1);
  for (int i = 0; i < nb; i++) {
    float *h = a[A_H + i], *hn = a[A_H + i + 1], *st1 = a[A_ST1(i)], *st2 = a[A_ST2(i)];
    nn_gn_silu_forward(a[A_A1(i)], st1, st1 + Gm, h, NN_P(m, t_block(m, i, TB_GN1_G)),
                       NN_P(m, t_block(m, i, TB_GN1_B)), W, B, S, G);
    nn_conv_forward(a[A_U1(i)], a[A_COL], a[A_A1(i)], NN_P(m, t_block(m, i, TB_C1_W)),
                    NN_P(m, t_block(m, i, TB_C1_B)), W, W, B, H, Wd, kh, 3, 1);
    if (c->n_scalars) nn_chanbias_forward(a[A_U1(i)], a[A_E2] + (size_t)i * W, nb * W, W, B, S);
    nn_gn_silu_forward(a[A_A2(i)], st2, st2 + Gm, a[A_U1(i)], NN_P(m, t_block(m, i, TB_GN2_G)),
                       NN_P(m, t_block(m, i, TB_GN2_B)), W, B, S, G);
    if (hn != h) memcpy(hn, h, sizeof(float) * W * P);
    nn_conv_forward_add(hn, a[A_COL], a[A_A2(i)], NN_P(m, t_block(m, i, TB_C2_W)),
                        NN_P(m, t_block(m, i, TB_C2_B)), W, W, B, H, Wd, kh, 3, 1);
  }
  float *sto = a[A_STO];
  nn_gn_silu_forward(a[A_AO], sto, sto + Gm, a[A_H + nb], NN_P(m, t_out(m, TO_GN_G)),
                     NN_P(m, t_out(m, TO_GN_B)), W, B, S, G);
  nn_conv_forward(a[A_Y], a[A_COL], a[A_AO], NN_P(m, t_out(m, TO_W)), NN_P(m, t_out(m, TO_B)), W,
                  c->cout, B, H, Wd, kh, 3, 1);
  nn_transpose_cbs_to_bcs(out, a[A_Y], B, c->cout, S, 0);
  return SB_OK;
}

int nn__resnet_backward(const nn_model *m, nn_workspace *ws, const float *dout, float *g,
                        float *dx) {
  const nn_resnet_config *c = &m->rc;
  int B = ws->B, H = c->h, Wd = c->w, S = H * Wd, W = c->width, G = c->groups, nb = c->blocks;
  int kh = kh_of(m), E = c->emb_dim, F = c->n_scalars * E, Gm = ws->max_batch * G;
  size_t P = (size_t)B * S, WP = (size_t)W * P;
  float **a = ws->act, *dh = a[A_DH], *dt1 = a[A_DT1], *dt2 = a[A_DT2];
  nn_transpose_bcs_to_cbs(a[A_DY], dout, B, c->cout, S);
  memset(dt1, 0, WP * sizeof(float));
  nn_conv_backward_t(dt1, NN_G(g, m, t_out(m, TO_W)), NN_G(g, m, t_out(m, TO_B)), a[A_COL],
                   a[A_DCOL], a[A_DY], a[A_AO], NN_P(m, t_out(m, TO_W)), W, c->cout, B, H, Wd, kh,
                   3, 1);
  memset(dh, 0, WP * sizeof(float));
  float *sto = a[A_STO];
  nn_gn_silu_backward(dh, NN_G(g, m, t_out(m, TO_GN_G)), NN_G(g, m, t_out(m, TO_GN_B)), dt1,
                      a[A_H + nb], NN_P(m, t_out(m, TO_GN_G)), NN_P(m, t_out(m, TO_GN_B)), sto,
                      sto + Gm, W, B, S, G);
  if (c->n_scalars) memset(a[A_DE2], 0, (size_t)B * nb * W * sizeof(float));
  for (int i = nb - 1; i >= 0; i--) {
    float *st1 = a[A_ST1(i)], *st2 = a[A_ST2(i)];
    /* h[i+1] = h[i] + conv2(a2): dh passes to h[i] unchanged, plus the branch */
    memset(dt1, 0, WP * sizeof(float));
    nn_conv_backward_t(dt1, NN_G(g, m, t_block(m, i, TB_C2_W)), NN_G(g, m, t_block(m, i, TB_C2_B)),
                     a[A_COL], a[A_DCOL], dh, a[A_A2(i)], NN_P(m, t_block(m, i, TB_C2_W)), W, W, B,
                     H, Wd, kh, 3, 1);
    memset(dt2, 0, WP * sizeof(float));
    nn_gn_silu_backward(dt2, NN_G(g, m, t_block(m, i, TB_GN2_G)),
                        NN_G(g, m, t_block(m, i, TB_GN2_B)), dt1, a[A_U1(i)],
                        NN_P(m, t_block(m, i, TB_GN2_G)), NN_P(m, t_block(m, i, TB_GN2_B)), st2,
                        st2 + Gm, W, B, S, G);
    if (c->n_scalars) nn_chanbias_backward(a[A_DE2] + (size_t)i * W, dt2, nb * W, W, B, S);
    memset(dt1, 0, WP * sizeof(float));
    nn_conv_backward_t(dt1, NN_G(g, m, t_block(m, i, TB_C1_W)), NN_G(g, m, t_block(m, i, TB_C1_B)),
                     a[A_COL], a[A_DCOL], dt2, a[A_A1(i)], NN_P(m, t_block(m, i, TB_C1_W)), W, W,
                     B, H, Wd, kh, 3, 1);
    nn_gn_silu_backward(dh, NN_G(g, m, t_block(m, i, TB_GN1_G)),
                        NN_G(g, m, t_block(m, i, TB_GN1_B)), dt1, a[A_H + i],
                        NN_P(m, t_block(m, i, TB_GN1_G)), NN_P(m, t_block(m, i, TB_GN1_B)), st1,
                        st1 + Gm, W, B, S, G);
  }
  float *dx0 = NULL;
  if (dx) {
    dx0 = a[A_DX0];
    memset(dx0, 0, (size_t)c->cin * P * sizeof(float));
  }
  if (dx || g)
    nn_conv_backward_t(dx0, NN_G(g, m, T_IN_W), NN_G(g, m, T_IN_B), a[A_COL], a[A_DCOL], dh,
                     a[A_X0], NN_P(m, T_IN_W), c->cin, W, B, H, Wd, kh, 3, 1);
  if (dx) nn_transpose_cbs_to_bcs(dx, dx0, B, c->cin, S, 1);
  if (c->n_scalars && g) {
    memset(a[A_DE1A], 0, (size_t)B * E * sizeof(float));
    nn_linear_backward(a[A_DE1A], NN_G(g, m, T_EMB1_W), NN_G(g, m, T_EMB1_B), a[A_DE2], a[A_E1A],
                       NN_P(m, T_EMB1_W), B, E, nb * W);
    memset(a[A_DE1], 0, (size_t)B * E * sizeof(float));
    nn_silu_backward(a[A_DE1], a[A_DE1A], a[A_E1], (size_t)B * E);
    nn_linear_backward(NULL, NN_G(g, m, T_EMB0_W), NN_G(g, m, T_EMB0_B), a[A_DE1], a[A_FEAT],
                       NN_P(m, T_EMB0_W), B, F, E);
  }
  return SB_OK;
}
