/* nn_unet.c: the multi-scale U-Net (1D over N periodic nodes or 2D over
 * [H][W], circular everywhere; structure in nn_model.h). Activations are
 * (C, B, S_l) per level as in nn_resnet.c, so every convolution over the
 * batch is one GEMM per tile. The concatenation [up, skip] costs no copy:
 * the up convolution writes the first half of a level's cat buffer and the
 * encoder's last block of that level writes its output (the skip) into the
 * second half. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nn/nn_internal.h"
#include "nn/nn_layers.h"

const char *const nn_profile_names[NN_PROF_N] = {"conv3 (blocks)", "down conv s2", "up x2 + conv",
                                                 "1x1 skip conv", "in/out conv", "GN+SiLU",
                                                 "other"};

// ----------------------------------------------------------------------------
// plan: blocks, levels and tensor indices, derived from the config (the same
// walk adds the tensors, so indices and names cannot drift apart)

typedef struct ublk {
  int level, cin, cout, skip; /* skip: 1x1 conv on the residual path */
  int emb_off;                /* column of its bias in the embedding output */
  int t0;                     /* tensor index of norm1.weight; TB_* below */
  int to_cat;                 /* writes the skip half of its level's cat buffer */
} ublk;
enum { TB_GN1_G, TB_GN1_B, TB_C1_W, TB_C1_B, TB_GN2_G, TB_GN2_B, TB_C2_W, TB_C2_B, TB_SK_W, TB_SK_B };

typedef struct uplan {
  int L, nblk, emb_total, kh, fh;
  int H[NN_UNET_MAX_LEVELS], W[NN_UNET_MAX_LEVELS], S[NN_UNET_MAX_LEVELS];
  int t_in, t_emb, t_out, t_down[NN_UNET_MAX_LEVELS], t_up[NN_UNET_MAX_LEVELS];
  int enc0[NN_UNET_MAX_LEVELS], dec0[NN_UNET_MAX_LEVELS], mid0; /* first block of each stage */
  ublk b[NN_UNET_MAX_BLOCKS];
} uplan;

typedef struct walker {
  nn_model *m; /* NULL: count only */
  int n, bad;
} walker;

static int add(walker *w, const char *name, int ndim, const int64_t *shape, int init, int fan_in) {
  if (w->m && nn__add_tensor(w->m, name, ndim, shape, init, fan_in) < 0) w->bad = 1;
  return w->n++;
}

/* conv weight + bias named prefix.weight / prefix.bias; returns the weight's index */
static int add_conv(walker *w, const char *prefix, int dims, int cout, int cin, int k) {
  char name[NN_NAME_MAX];
  int64_t s[4] = {cout, cin, k, k};
  if (dims == 1) s[2] = k;
  int kk = dims == 2 ? k * k : k;
  snprintf(name, sizeof name, "%s.weight", prefix);
  int t = add(w, name, dims == 2 ? 4 : 3, s, NN_INIT_UNIFORM, cin * kk);
  snprintf(name, sizeof name, "%s.bias", prefix);
  add(w, name, 1, (int64_t[]){cout}, NN_INIT_UNIFORM, cin * kk);
  return t;
}

static void add_block(walker *w, uplan *p, const nn_unet_config *c, const char *prefix, int level,
                      int cin, int cout, int *emb_off) {
  char name[NN_NAME_MAX + 32];
  ublk *b = &p->b[p->nblk++];
  *b = (ublk){level, cin, cout, cin != cout, *emb_off, w->n, 0};
  *emb_off += cout;
  snprintf(name, sizeof name, "%s.norm1.weight", prefix);
  add(w, name, 1, (int64_t[]){cin}, NN_INIT_ONE, 0);
  snprintf(name, sizeof name, "%s.norm1.bias", prefix);
  add(w, name, 1, (int64_t[]){cin}, NN_INIT_ZERO, 0);
  snprintf(name, sizeof name, "%s.conv1", prefix);
  add_conv(w, name, c->dims, cout, cin, 3);
  snprintf(name, sizeof name, "%s.norm2.weight", prefix);
  add(w, name, 1, (int64_t[]){cout}, NN_INIT_ONE, 0);
  snprintf(name, sizeof name, "%s.norm2.bias", prefix);
  add(w, name, 1, (int64_t[]){cout}, NN_INIT_ZERO, 0);
  snprintf(name, sizeof name, "%s.conv2", prefix);
  add_conv(w, name, c->dims, cout, cout, 3);
  if (b->skip) {
    snprintf(name, sizeof name, "%s.skip", prefix);
    add_conv(w, name, c->dims, cout, cin, 1);
  }
}

static int emb_total_of(const nn_unet_config *c) {
  int t = c->mid * c->widths[c->levels - 1];
  for (int l = 0; l < c->levels; l++) t += c->blocks * c->widths[l] * (l < c->levels - 1 ? 2 : 1);
  return t;
}

/* Fills p from c; with m != NULL also adds the tensors to m. Returns -1 if m's
 * table overflowed. */
static int walk(nn_model *m, const nn_unet_config *c, uplan *p) {
  walker w = {m, 0, 0};
  char name[NN_NAME_MAX];
  memset(p, 0, sizeof *p);
  int L = c->levels, E = c->emb_dim, F = c->n_scalars * c->emb_dim, eo = 0;
  p->L = L;
  p->kh = c->dims == 2 ? 3 : 1;
  p->fh = c->dims == 2 ? 2 : 1;
  p->emb_total = emb_total_of(c);
  for (int l = 0; l < L; l++) {
    p->H[l] = c->dims == 2 ? c->h >> l : 1;
    p->W[l] = c->w >> l;
    p->S[l] = p->H[l] * p->W[l];
  }
  p->t_in = add_conv(&w, "in_conv", c->dims, c->widths[0], c->cin, 3);
  if (c->n_scalars) {
    p->t_emb = add(&w, "emb.0.weight", 2, (int64_t[]){E, F}, NN_INIT_UNIFORM, F);
    add(&w, "emb.0.bias", 1, (int64_t[]){E}, NN_INIT_UNIFORM, F);
    add(&w, "emb.2.weight", 2, (int64_t[]){p->emb_total, E}, NN_INIT_UNIFORM, E);
    add(&w, "emb.2.bias", 1, (int64_t[]){p->emb_total}, NN_INIT_UNIFORM, E);
  }
  for (int l = 0; l < L; l++) {
    if (l > 0) {
      snprintf(name, sizeof name, "enc.%d.down", l);
      p->t_down[l] = add_conv(&w, name, c->dims, c->widths[l], c->widths[l - 1], 3);
    }
    p->enc0[l] = p->nblk;
    for (int b = 0; b < c->blocks; b++) {
      snprintf(name, sizeof name, "enc.%d.blocks.%d", l, b);
      add_block(&w, p, c, name, l, c->widths[l], c->widths[l], &eo);
    }
    if (l < L - 1) p->b[p->nblk - 1].to_cat = 1;
  }
  p->mid0 = p->nblk;
  for (int b = 0; b < c->mid; b++) {
    snprintf(name, sizeof name, "mid.%d", b);
    add_block(&w, p, c, name, L - 1, c->widths[L - 1], c->widths[L - 1], &eo);
  }
  for (int l = L - 2; l >= 0; l--) {
    snprintf(name, sizeof name, "dec.%d.up", l);
    p->t_up[l] = add_conv(&w, name, c->dims, c->widths[l], c->widths[l + 1], 3);
    p->dec0[l] = p->nblk;
    for (int b = 0; b < c->blocks; b++) {
      snprintf(name, sizeof name, "dec.%d.blocks.%d", l, b);
      add_block(&w, p, c, name, l, b ? c->widths[l] : 2 * c->widths[l], c->widths[l], &eo);
    }
  }
  p->t_out = add(&w, "out_norm.weight", 1, (int64_t[]){c->widths[0]}, NN_INIT_ONE, 0);
  add(&w, "out_norm.bias", 1, (int64_t[]){c->widths[0]}, NN_INIT_ZERO, 0);
  add_conv(&w, "out_conv", c->dims, c->cout, c->widths[0], 3);
  return w.bad ? -1 : 0;
}

static int n_blocks_of(const nn_unet_config *c) {
  return c->levels * c->blocks + c->mid + (c->levels - 1) * c->blocks;
}

int nn__unet_check(const nn_unet_config *c, sb_error *err) {
  if (c->dims != 1 && c->dims != 2)
    return sb_fail(err, SB_EINVAL, "nn: unet dims must be 1 or 2 (got %d)", c->dims);
  if (c->levels < 1 || c->levels > NN_UNET_MAX_LEVELS)
    return sb_fail(err, SB_EINVAL, "nn: unet levels must be in 1..%d (got %d)",
                   NN_UNET_MAX_LEVELS, c->levels);
  int f = 1 << (c->levels - 1);
  if (c->w < 1 || c->w % f || (c->dims == 2 && (c->h < 1 || c->h % f)))
    return sb_fail(err, SB_EINVAL,
                   "nn: unet spatial size %dx%d must be divisible by 2^(levels-1) = %d "
                   "(levels %d): use fewer levels or a size that halves %d times",
                   c->dims == 2 ? c->h : 1, c->w, f, c->levels, c->levels - 1);
  if (c->cin < 1 || c->cout < 1 || c->groups < 1)
    return sb_fail(err, SB_EINVAL, "nn: unet needs cin, cout and groups >= 1");
  for (int l = 0; l < c->levels; l++)
    if (c->widths[l] < 1 || c->widths[l] % c->groups)
      return sb_fail(err, SB_EINVAL,
                     "nn: unet widths[%d] = %d must be >= 1 and a multiple of groups (%d)", l,
                     c->widths[l], c->groups);
  if (c->blocks < 1 || c->mid < 0 || n_blocks_of(c) > NN_UNET_MAX_BLOCKS)
    return sb_fail(err, SB_EINVAL,
                   "nn: unet needs blocks >= 1, mid >= 0 and at most %d residual blocks in all "
                   "(levels * blocks + mid + (levels-1) * blocks = %d)",
                   NN_UNET_MAX_BLOCKS, n_blocks_of(c));
  if (c->n_scalars < 0 || c->n_scalars > 2 ||
      (c->n_scalars > 0 && (c->emb_dim < 2 || c->emb_dim % 2)))
    return sb_fail(err, SB_EINVAL, "nn: unet n_scalars must be 0..2 and emb_dim even and >= 2");
  return SB_OK;
}

int nn__unet_build(nn_model *m) {
  uplan p;
  return walk(m, &m->uc, &p);
}

// ----------------------------------------------------------------------------
// workspace

enum {
  U_X0, U_Y, U_COL, U_DCOL, U_GA, U_GB, U_DT1, U_DT2, U_DU, U_DY, U_DX0, U_FEAT, U_E1, U_E1A, U_E2,
  U_DE2, U_DE1A, U_DE1, U_AO, U_STO, U_H0, U_HF,
  U_UP0 = 32, U_DOWN0 = U_UP0 + NN_UNET_MAX_LEVELS, U_CAT0 = U_DOWN0 + NN_UNET_MAX_LEVELS,
  U_DCAT0 = U_CAT0 + NN_UNET_MAX_LEVELS, U_R0 = U_DCAT0 + NN_UNET_MAX_LEVELS, U_BLK = 128
};
enum { K_A1, K_U1, K_A2, K_OUT, K_ST1, K_ST2, K_IN, K_OUTP, K_N };
#define SLOT(k, j) (U_BLK + (k) * K_N + (j))
_Static_assert(U_R0 + NN_UNET_MAX_LEVELS <= U_BLK, "unet slots overlap");
_Static_assert(U_BLK + NN_UNET_MAX_BLOCKS * K_N <= NN_MAX_ACT, "NN_MAX_ACT too small for unet");

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

int nn__unet_ws(nn_workspace *ws, const nn_model *m, size_t *used) {
  const nn_unet_config *c = &m->uc;
  uplan p;
  walk(NULL, c, &p);
  int L = p.L, kh = p.kh, Bm = ws->max_batch;
  size_t tr = ws->train, G = c->groups, P0 = (size_t)Bm * p.S[0];
  float **a = ws->act;
  /* the largest scratch any layer needs */
  size_t col = nn_conv_col_size(c->cin, Bm, p.H[0], p.W[0], kh, 3, 1);
  col = zmax(col, nn_conv_col_size(c->widths[0], Bm, p.H[0], p.W[0], kh, 3, 1));
  /* the forward's scratch of stride-1 convs (Winograd's depends on Cout too) */
  col = zmax(col, nn_conv_scratch_size(c->cin, c->widths[0], Bm, p.H[0], p.W[0], kh, 3, 1));
  col = zmax(col, nn_conv_scratch_size(c->widths[0], c->cout, Bm, p.H[0], p.W[0], kh, 3, 1));
  /* dcol: nn_conv_backward_t's scratch of every stride-1 conv (col covers the rest) */
  size_t dcol = zmax(nn_conv_dcol_size(c->cin, c->widths[0], Bm, p.H[0], p.W[0], kh, 3, 1),
                     nn_conv_dcol_size(c->widths[0], c->cout, Bm, p.H[0], p.W[0], kh, 3, 1));
  size_t stream = 0, dt1 = 0, dt2 = 0, du = 0;
  for (int l = 0; l < L; l++) {
    size_t Pl = (size_t)Bm * p.S[l];
    stream = zmax(stream, c->widths[l] * Pl);
    if (l > 0) col = zmax(col, nn_conv_col_size(c->widths[l - 1], Bm, p.H[l - 1], p.W[l - 1], kh, 3, 2));
    if (l < L - 1) {
      col = zmax(col, nn_conv_scratch_size(c->widths[l + 1], c->widths[l], Bm, p.H[l], p.W[l], kh, 3, 1));
      dcol = zmax(dcol, nn_conv_dcol_size(c->widths[l + 1], c->widths[l], Bm, p.H[l], p.W[l], kh, 3, 1));
      du = zmax(du, c->widths[l + 1] * Pl);
    }
  }
  for (int k = 0; k < p.nblk; k++) {
    const ublk *b = &p.b[k];
    size_t Pl = (size_t)Bm * p.S[b->level];
    col = zmax(col, nn_conv_scratch_size(b->cin, b->cout, Bm, p.H[b->level], p.W[b->level], kh, 3, 1));
    col = zmax(col, nn_conv_scratch_size(b->cout, b->cout, Bm, p.H[b->level], p.W[b->level], kh, 3, 1));
    dcol = zmax(dcol, nn_conv_dcol_size(b->cin, b->cout, Bm, p.H[b->level], p.W[b->level], kh, 3, 1));
    dcol = zmax(dcol, nn_conv_dcol_size(b->cout, b->cout, Bm, p.H[b->level], p.W[b->level], kh, 3, 1));
    dt1 = zmax(dt1, zmax(b->cin, b->cout) * Pl);
    dt2 = zmax(dt2, b->cout * Pl);
  }
  size_t E = c->emb_dim, F = (size_t)c->n_scalars * E, ET = p.emb_total;
  a[U_X0] = nn__carve(ws, used, c->cin * P0);
  a[U_Y] = nn__carve(ws, used, c->cout * P0);
  a[U_COL] = nn__carve(ws, used, col);
  a[U_DCOL] = nn__carve(ws, used, tr * zmax(col, dcol));
  a[U_GA] = nn__carve(ws, used, tr * stream);
  a[U_GB] = nn__carve(ws, used, tr * stream);
  a[U_DT1] = nn__carve(ws, used, tr * dt1);
  a[U_DT2] = nn__carve(ws, used, tr * dt2);
  a[U_DU] = nn__carve(ws, used, tr * du);
  a[U_DY] = nn__carve(ws, used, tr * c->cout * P0);
  a[U_DX0] = nn__carve(ws, used, tr * c->cin * P0);
  a[U_FEAT] = nn__carve(ws, used, (size_t)Bm * F);
  a[U_E1] = nn__carve(ws, used, (size_t)Bm * E);
  a[U_E1A] = nn__carve(ws, used, (size_t)Bm * E);
  a[U_E2] = nn__carve(ws, used, (size_t)Bm * ET);
  a[U_DE2] = nn__carve(ws, used, tr * Bm * ET);
  a[U_DE1A] = nn__carve(ws, used, tr * Bm * E);
  a[U_DE1] = nn__carve(ws, used, tr * Bm * E);
  a[U_AO] = nn__carve(ws, used, c->widths[0] * P0);
  a[U_STO] = nn__carve(ws, used, 2 * Bm * G);
  a[U_H0] = nn__carve(ws, used, c->widths[0] * P0);
  for (int l = 0; l < L; l++) {
    size_t Pl = (size_t)Bm * p.S[l], wl = c->widths[l];
    a[U_DOWN0 + l] = l > 0 ? nn__carve(ws, used, wl * Pl) : NULL;
    int inner = l < L - 1;
    a[U_UP0 + l] = inner ? nn__carve(ws, used, c->widths[l + 1] * Pl) : NULL;
    a[U_CAT0 + l] = inner ? nn__carve(ws, used, 2 * wl * Pl) : NULL;
    a[U_DCAT0 + l] = inner ? nn__carve(ws, used, tr * 2 * wl * Pl) : NULL;
    a[U_R0 + l] = inner && !tr ? nn__carve(ws, used, wl * Pl) : NULL;
  }
  /* training keeps every block's activations; inference shares one set sized
   * for the largest block (identity blocks update the stream in place) */
  size_t a1max = 0, umax = 0;
  for (int k = 0; k < p.nblk; k++) {
    size_t Pl = (size_t)Bm * p.S[p.b[k].level];
    a1max = zmax(a1max, p.b[k].cin * Pl);
    umax = zmax(umax, p.b[k].cout * Pl);
  }
  for (int k = 0; k < p.nblk; k++) {
    const ublk *b = &p.b[k];
    size_t Pl = (size_t)Bm * p.S[b->level];
    int fresh = tr || k == 0;
    a[SLOT(k, K_A1)] = fresh ? nn__carve(ws, used, tr ? b->cin * Pl : a1max) : a[SLOT(0, K_A1)];
    a[SLOT(k, K_U1)] = fresh ? nn__carve(ws, used, tr ? b->cout * Pl : umax) : a[SLOT(0, K_U1)];
    a[SLOT(k, K_A2)] = fresh ? nn__carve(ws, used, tr ? b->cout * Pl : umax) : a[SLOT(0, K_A2)];
    a[SLOT(k, K_ST1)] = fresh ? nn__carve(ws, used, 2 * Bm * G) : a[SLOT(0, K_ST1)];
    a[SLOT(k, K_ST2)] = fresh ? nn__carve(ws, used, 2 * Bm * G) : a[SLOT(0, K_ST2)];
    a[SLOT(k, K_OUT)] = tr && !b->to_cat ? nn__carve(ws, used, b->cout * Pl) : NULL;
  }
  return 0;
}

// ----------------------------------------------------------------------------
// profiling (off unless ws->prof is set)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define PROF_T0() double t0_ = ws->prof ? now() : 0.0
#define PROF_ADD(cls, bwd, flop)                                                  \
  do {                                                                            \
    if (ws->prof) {                                                               \
      double t1_ = now();                                                         \
      (bwd ? ws->prof->bwd_s : ws->prof->fwd_s)[cls] += t1_ - t0_;                \
      (bwd ? ws->prof->bwd_flop : ws->prof->fwd_flop)[cls] += (double)(flop);     \
      t0_ = t1_;                                                                  \
    }                                                                             \
  } while (0)

/* GEMM FLOPs of a conv forward over B samples */
static double conv_flop(int cin, int cout, int k2, int B, int So) {
  return 2.0 * cin * cout * k2 * (double)B * So;
}

// ----------------------------------------------------------------------------
// forward

/* the kernel cache of weight tensor t in an inference workspace, else NULL */
static nn_conv_wcache *wcache(nn_workspace *ws, int t) {
  return t < ws->n_wc ? &ws->wc[t] : NULL;
}

/* residual block k: out = skip(h) + conv2(gn_silu(conv1(gn_silu(h)) + e)); out may be h
 * when the block is the identity-skip kind (inference) */
static void blk_fwd(const nn_model *m, nn_workspace *ws, const uplan *p, int k, int B,
                    const float *h, float *out) {
  const nn_unet_config *c = &m->uc;
  const ublk *b = &p->b[k];
  float **a = ws->act;
  int l = b->level, H = p->H[l], Wd = p->W[l], S = p->S[l], G = c->groups, t = b->t0;
  int Gm = ws->max_batch * G, k2 = p->kh * 3;
  float *a1 = a[SLOT(k, K_A1)], *u1 = a[SLOT(k, K_U1)], *a2 = a[SLOT(k, K_A2)];
  float *st1 = a[SLOT(k, K_ST1)], *st2 = a[SLOT(k, K_ST2)];
  a[SLOT(k, K_IN)] = (float *)h;
  a[SLOT(k, K_OUTP)] = out;
  PROF_T0();
  nn_gn_silu_forward(a1, st1, st1 + Gm, h, NN_P(m, t + TB_GN1_G), NN_P(m, t + TB_GN1_B), b->cin,
                     B, S, G);
  PROF_ADD(NN_PROF_GN, 0, 0);
  nn_conv_forward_c(u1, a[U_COL], a1, NN_P(m, t + TB_C1_W), NN_P(m, t + TB_C1_B),
                    wcache(ws, t + TB_C1_W), 0, b->cin, b->cout, B, H, Wd, p->kh, 3, 1);
  PROF_ADD(NN_PROF_CONV3, 0, conv_flop(b->cin, b->cout, k2, B, S));
  if (c->n_scalars) nn_chanbias_forward(u1, a[U_E2] + b->emb_off, p->emb_total, b->cout, B, S);
  PROF_ADD(NN_PROF_OTHER, 0, 0);
  nn_gn_silu_forward(a2, st2, st2 + Gm, u1, NN_P(m, t + TB_GN2_G), NN_P(m, t + TB_GN2_B), b->cout,
                     B, S, G);
  PROF_ADD(NN_PROF_GN, 0, 0);
  if (b->skip) {
    nn_conv_forward(out, NULL, h, NN_P(m, t + TB_SK_W), NN_P(m, t + TB_SK_B), b->cin, b->cout, B,
                    H, Wd, 1, 1, 1);
    PROF_ADD(NN_PROF_SKIP1, 0, conv_flop(b->cin, b->cout, 1, B, S));
  } else if (out != h) {
    memcpy(out, h, sizeof(float) * b->cout * B * S);
    PROF_ADD(NN_PROF_OTHER, 0, 0);
  }
  nn_conv_forward_c(out, a[U_COL], a2, NN_P(m, t + TB_C2_W), NN_P(m, t + TB_C2_B),
                    wcache(ws, t + TB_C2_W), 1, b->cout, b->cout, B, H, Wd, p->kh, 3, 1);
  PROF_ADD(NN_PROF_CONV3, 0, conv_flop(b->cout, b->cout, k2, B, S));
}

/* where block k writes: its level's skip half of the cat buffer, its own
 * buffer (training), or in place / the level's R buffer (inference) */
static float *blk_dest(nn_workspace *ws, const uplan *p, const nn_unet_config *c, int k, int B,
                       float *h) {
  const ublk *b = &p->b[k];
  int l = b->level;
  if (b->to_cat) return ws->act[U_CAT0 + l] + (size_t)c->widths[l] * B * p->S[l];
  if (ws->train) return ws->act[SLOT(k, K_OUT)];
  return b->skip ? ws->act[U_R0 + l] : h;
}

int nn__unet_forward(const nn_model *m, nn_workspace *ws, const float *x, const float *scalars,
                     int B, float *out) {
  const nn_unet_config *c = &m->uc;
  uplan p;
  walk(NULL, c, &p);
  int L = p.L, kh = p.kh, k2 = kh * 3, G = c->groups, Gm = ws->max_batch * G;
  int E = c->emb_dim, F = c->n_scalars * E;
  float **a = ws->act;
  PROF_T0();
  nn_transpose_bcs_to_cbs(a[U_X0], x, B, c->cin, p.S[0]);
  if (c->n_scalars) {
    nn_sinusoidal_forward(a[U_FEAT], scalars, B, c->n_scalars, E);
    nn_linear_forward(a[U_E1], a[U_FEAT], NN_P(m, p.t_emb), NN_P(m, p.t_emb + 1), B, F, E);
    nn_silu_forward(a[U_E1A], a[U_E1], (size_t)B * E);
    nn_linear_forward(a[U_E2], a[U_E1A], NN_P(m, p.t_emb + 2), NN_P(m, p.t_emb + 3), B, E,
                      p.emb_total);
  }
  PROF_ADD(NN_PROF_OTHER, 0, 0);
  nn_conv_forward_c(a[U_H0], a[U_COL], a[U_X0], NN_P(m, p.t_in), NN_P(m, p.t_in + 1),
                    wcache(ws, p.t_in), 0, c->cin, c->widths[0], B, p.H[0], p.W[0], kh, 3, 1);
  PROF_ADD(NN_PROF_IO, 0, conv_flop(c->cin, c->widths[0], k2, B, p.S[0]));
  float *h = a[U_H0];
  int k = 0;
  for (int l = 0; l < L; l++) {
    if (l > 0) {
      if (ws->prof) t0_ = now(); /* blk_fwd timed itself */
      nn_conv_forward(a[U_DOWN0 + l], a[U_COL], h, NN_P(m, p.t_down[l]), NN_P(m, p.t_down[l] + 1),
                      c->widths[l - 1], c->widths[l], B, p.H[l - 1], p.W[l - 1], kh, 3, 2);
      PROF_ADD(NN_PROF_DOWN, 0, conv_flop(c->widths[l - 1], c->widths[l], k2, B, p.S[l]));
      h = a[U_DOWN0 + l];
    }
    for (int j = 0; j < c->blocks; j++, k++) {
      float *o = blk_dest(ws, &p, c, k, B, h);
      blk_fwd(m, ws, &p, k, B, h, o);
      h = o;
    }
  }
  for (int j = 0; j < c->mid; j++, k++) {
    float *o = blk_dest(ws, &p, c, k, B, h);
    blk_fwd(m, ws, &p, k, B, h, o);
    h = o;
  }
  if (ws->prof) t0_ = now();
  for (int l = L - 2; l >= 0; l--) {
    nn_upsample_forward(a[U_UP0 + l], h, c->widths[l + 1] * B, p.H[l + 1], p.W[l + 1], p.fh, 2);
    nn_conv_forward_c(a[U_CAT0 + l], a[U_COL], a[U_UP0 + l], NN_P(m, p.t_up[l]),
                      NN_P(m, p.t_up[l] + 1), wcache(ws, p.t_up[l]), 0, c->widths[l + 1],
                      c->widths[l], B, p.H[l], p.W[l], kh, 3, 1);
    PROF_ADD(NN_PROF_UP, 0, conv_flop(c->widths[l + 1], c->widths[l], k2, B, p.S[l]));
    h = a[U_CAT0 + l];
    for (int j = 0; j < c->blocks; j++, k++) {
      float *o = blk_dest(ws, &p, c, k, B, h);
      blk_fwd(m, ws, &p, k, B, h, o);
      h = o;
    }
    if (ws->prof) t0_ = now();
  }
  a[U_HF] = h;
  float *sto = a[U_STO];
  nn_gn_silu_forward(a[U_AO], sto, sto + Gm, h, NN_P(m, p.t_out), NN_P(m, p.t_out + 1),
                     c->widths[0], B, p.S[0], G);
  PROF_ADD(NN_PROF_GN, 0, 0);
  nn_conv_forward_c(a[U_Y], a[U_COL], a[U_AO], NN_P(m, p.t_out + 2), NN_P(m, p.t_out + 3),
                    wcache(ws, p.t_out + 2), 0, c->widths[0], c->cout, B, p.H[0], p.W[0], kh, 3, 1);
  PROF_ADD(NN_PROF_IO, 0, conv_flop(c->widths[0], c->cout, k2, B, p.S[0]));
  nn_transpose_cbs_to_bcs(out, a[U_Y], B, c->cout, p.S[0], 0);
  PROF_ADD(NN_PROF_OTHER, 0, 0);
  return SB_OK;
}

// ----------------------------------------------------------------------------
// backward

/* Block k backward. dio holds d(out); for an identity block it also receives
 * d(in) (+=, in place); for a 1x1-skip block d(in) accumulates into din. */
static void blk_bwd(const nn_model *m, nn_workspace *ws, const uplan *p, int k, int B, float *g,
                    float *dio, float *din) {
  const nn_unet_config *c = &m->uc;
  const ublk *b = &p->b[k];
  float **a = ws->act;
  int l = b->level, H = p->H[l], Wd = p->W[l], S = p->S[l], G = c->groups, t = b->t0;
  int Gm = ws->max_batch * G, k2 = p->kh * 3;
  size_t P = (size_t)B * S;
  float *h = a[SLOT(k, K_IN)], *st1 = a[SLOT(k, K_ST1)], *st2 = a[SLOT(k, K_ST2)];
  float *dt1 = a[U_DT1], *dt2 = a[U_DT2], *col = a[U_COL], *dcol = a[U_DCOL];
  double wf = g ? 2.0 : 1.0; /* dx and (with g) dw GEMMs */
  PROF_T0();
  memset(dt1, 0, sizeof(float) * b->cout * P);
  nn_conv_backward_t(dt1, NN_G(g, m, t + TB_C2_W), NN_G(g, m, t + TB_C2_B), col, dcol, dio,
                   a[SLOT(k, K_A2)], NN_P(m, t + TB_C2_W), b->cout, b->cout, B, H, Wd, p->kh, 3, 1);
  PROF_ADD(NN_PROF_CONV3, 1, wf * conv_flop(b->cout, b->cout, k2, B, S));
  memset(dt2, 0, sizeof(float) * b->cout * P);
  nn_gn_silu_backward(dt2, NN_G(g, m, t + TB_GN2_G), NN_G(g, m, t + TB_GN2_B), dt1,
                      a[SLOT(k, K_U1)], NN_P(m, t + TB_GN2_G), NN_P(m, t + TB_GN2_B), st2,
                      st2 + Gm, b->cout, B, S, G);
  PROF_ADD(NN_PROF_GN, 1, 0);
  if (c->n_scalars) nn_chanbias_backward(a[U_DE2] + b->emb_off, dt2, p->emb_total, b->cout, B, S);
  memset(dt1, 0, sizeof(float) * b->cin * P);
  PROF_ADD(NN_PROF_OTHER, 1, 0);
  nn_conv_backward_t(dt1, NN_G(g, m, t + TB_C1_W), NN_G(g, m, t + TB_C1_B), col, dcol, dt2,
                   a[SLOT(k, K_A1)], NN_P(m, t + TB_C1_W), b->cin, b->cout, B, H, Wd, p->kh, 3, 1);
  PROF_ADD(NN_PROF_CONV3, 1, wf * conv_flop(b->cin, b->cout, k2, B, S));
  float *target = dio;
  if (b->skip) {
    nn_conv_backward(din, NN_G(g, m, t + TB_SK_W), NN_G(g, m, t + TB_SK_B), NULL, NULL, dio, h,
                     NN_P(m, t + TB_SK_W), b->cin, b->cout, B, H, Wd, 1, 1, 1);
    PROF_ADD(NN_PROF_SKIP1, 1, wf * conv_flop(b->cin, b->cout, 1, B, S));
    target = din;
  }
  nn_gn_silu_backward(target, NN_G(g, m, t + TB_GN1_G), NN_G(g, m, t + TB_GN1_B), dt1, h,
                      NN_P(m, t + TB_GN1_G), NN_P(m, t + TB_GN1_B), st1, st1 + Gm, b->cin, B, S,
                      G);
  PROF_ADD(NN_PROF_GN, 1, 0);
}

int nn__unet_backward(const nn_model *m, nn_workspace *ws, const float *dout, float *g,
                      float *dx) {
  const nn_unet_config *c = &m->uc;
  uplan p;
  walk(NULL, c, &p);
  int B = ws->B, L = p.L, kh = p.kh, k2 = kh * 3, G = c->groups, Gm = ws->max_batch * G;
  int E = c->emb_dim, F = c->n_scalars * E, w0 = c->widths[0];
  size_t P0 = (size_t)B * p.S[0];
  float **a = ws->act, *col = a[U_COL], *dcol = a[U_DCOL];
  double wf = g ? 2.0 : 1.0;
  PROF_T0();
  nn_transpose_bcs_to_cbs(a[U_DY], dout, B, c->cout, p.S[0]);
  if (c->n_scalars) memset(a[U_DE2], 0, sizeof(float) * B * p.emb_total);
  memset(a[U_DT1], 0, sizeof(float) * w0 * P0);
  PROF_ADD(NN_PROF_OTHER, 1, 0);
  nn_conv_backward_t(a[U_DT1], NN_G(g, m, p.t_out + 2), NN_G(g, m, p.t_out + 3), col, dcol,
                   a[U_DY], a[U_AO], NN_P(m, p.t_out + 2), w0, c->cout, B, p.H[0], p.W[0], kh, 3,
                   1);
  PROF_ADD(NN_PROF_IO, 1, wf * conv_flop(w0, c->cout, k2, B, p.S[0]));
  float *cur = a[U_GA], *other = a[U_GB], *sto = a[U_STO];
  memset(cur, 0, sizeof(float) * w0 * P0);
  nn_gn_silu_backward(cur, NN_G(g, m, p.t_out), NN_G(g, m, p.t_out + 1), a[U_DT1], a[U_HF],
                      NN_P(m, p.t_out), NN_P(m, p.t_out + 1), sto, sto + Gm, w0, B, p.S[0], G);
  PROF_ADD(NN_PROF_GN, 1, 0);
  /* decoder, level 0 upwards; the first block of a level writes d(cat) */
  for (int l = 0; l < L - 1; l++) {
    size_t Pl = (size_t)B * p.S[l], wl = c->widths[l], wn = c->widths[l + 1];
    float *dcat = a[U_DCAT0 + l];
    for (int j = c->blocks - 1; j >= 0; j--) {
      if (j == 0) memset(dcat, 0, sizeof(float) * 2 * wl * Pl);
      blk_bwd(m, ws, &p, p.dec0[l] + j, B, g, cur, dcat);
    }
    if (ws->prof) t0_ = now();
    memset(a[U_DU], 0, sizeof(float) * wn * Pl);
    nn_conv_backward_t(a[U_DU], NN_G(g, m, p.t_up[l]), NN_G(g, m, p.t_up[l] + 1), col, dcol, dcat,
                     a[U_UP0 + l], NN_P(m, p.t_up[l]), (int)wn, (int)wl, B, p.H[l], p.W[l], kh,
                     3, 1);
    memset(cur, 0, sizeof(float) * wn * B * p.S[l + 1]);
    nn_upsample_backward(cur, a[U_DU], (int)wn * B, p.H[l + 1], p.W[l + 1], p.fh, 2);
    PROF_ADD(NN_PROF_UP, 1, wf * conv_flop((int)wn, (int)wl, k2, B, p.S[l]));
  }
  for (int j = c->mid - 1; j >= 0; j--) blk_bwd(m, ws, &p, p.mid0 + j, B, g, cur, NULL);
  /* encoder, coarsest level first; the skip's gradient (second half of d(cat))
   * seeds the stream gradient of the level below */
  for (int l = L - 1; l >= 0; l--) {
    for (int j = c->blocks - 1; j >= 0; j--) blk_bwd(m, ws, &p, p.enc0[l] + j, B, g, cur, NULL);
    if (l == 0) break;
    if (ws->prof) t0_ = now();
    size_t Pd = (size_t)B * p.S[l - 1], wd = c->widths[l - 1];
    memcpy(other, a[U_DCAT0 + l - 1] + wd * Pd, sizeof(float) * wd * Pd);
    float *xin = a[U_CAT0 + l - 1] + wd * Pd; /* the down conv's input is level l-1's skip */
    nn_conv_backward(other, NN_G(g, m, p.t_down[l]), NN_G(g, m, p.t_down[l] + 1), col, dcol, cur,
                     xin, NN_P(m, p.t_down[l]), (int)wd, c->widths[l], B, p.H[l - 1], p.W[l - 1],
                     kh, 3, 2);
    PROF_ADD(NN_PROF_DOWN, 1, wf * conv_flop((int)wd, c->widths[l], k2, B, p.S[l]));
    float *t = cur;
    cur = other;
    other = t;
  }
  if (ws->prof) t0_ = now();
  float *dx0 = NULL;
  if (dx) {
    dx0 = a[U_DX0];
    memset(dx0, 0, sizeof(float) * c->cin * P0);
  }
  if (dx || g)
    nn_conv_backward_t(dx0, NN_G(g, m, p.t_in), NN_G(g, m, p.t_in + 1), col, dcol, cur, a[U_X0],
                     NN_P(m, p.t_in), c->cin, w0, B, p.H[0], p.W[0], kh, 3, 1);
  PROF_ADD(NN_PROF_IO, 1, wf * conv_flop(c->cin, w0, k2, B, p.S[0]));
  if (dx) nn_transpose_cbs_to_bcs(dx, dx0, B, c->cin, p.S[0], 1);
  if (c->n_scalars && g) {
    memset(a[U_DE1A], 0, sizeof(float) * B * E);
    nn_linear_backward(a[U_DE1A], NN_G(g, m, p.t_emb + 2), NN_G(g, m, p.t_emb + 3), a[U_DE2],
                       a[U_E1A], NN_P(m, p.t_emb + 2), B, E, p.emb_total);
    memset(a[U_DE1], 0, sizeof(float) * B * E);
    nn_silu_backward(a[U_DE1], a[U_DE1A], a[U_E1], (size_t)B * E);
    nn_linear_backward(NULL, NN_G(g, m, p.t_emb), NN_G(g, m, p.t_emb + 1), a[U_DE1], a[U_FEAT],
                       NN_P(m, p.t_emb), B, F, E);
  }
  PROF_ADD(NN_PROF_OTHER, 1, 0);
  return SB_OK;
}
