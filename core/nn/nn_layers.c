/* nn_layers.c: layer kernels (see nn_layers.h for layouts and conventions). */
#include "nn/nn_layers.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_math.h"
#include "nn/nn_simd.h"
#include "nn/nn_wino.h"


// ----------------------------------------------------------------------------
// layout

void nn_transpose_bcs_to_cbs(float *out, const float *in, int B, int C, int S) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      memcpy(out + ((size_t)c * B + b) * S, in + ((size_t)b * C + c) * S, sizeof(float) * S);
}

void nn_transpose_cbs_to_bcs(float *out, const float *in, int B, int C, int S, int accumulate) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      float *o = out + ((size_t)b * C + c) * S;
      const float *i = in + ((size_t)c * B + b) * S;
      if (accumulate)
        for (int s = 0; s < S; s++) o[s] += i[s];
      else
        memcpy(o, i, sizeof(float) * S);
    }
}

// ----------------------------------------------------------------------------
// linear

void nn_linear_forward(float *out, const float *in, const float *w, const float *bias, int B,
                       int IC, int OC) {
  for (int b = 0; b < B; b++) {
    float *o = out + (size_t)b * OC;
    if (bias)
      memcpy(o, bias, sizeof(float) * OC);
    else
      memset(o, 0, sizeof(float) * OC);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, IC, 1.0f, in, IC, w, IC, 1.0f, out,
              OC);
}

void nn_linear_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                        const float *w, int B, int IC, int OC) {
  if (din)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IC, OC, 1.0f, dout, OC, w, IC, 1.0f,
                din, IC);
  if (dw)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, B, 1.0f, dout, OC, in, IC, 1.0f,
                dw, IC);
  if (dbias)
    for (int b = 0; b < B; b++)
      for (int o = 0; o < OC; o++) dbias[o] += dout[(size_t)b * OC + o];
}

void nn_masked_linear_forward(float *out, float *wm, const float *in, const float *w,
                              const float *mask, const float *bias, int B, int IC, int OC) {
  for (size_t i = 0; i < (size_t)OC * IC; i++) wm[i] = w[i] * mask[i];
  nn_linear_forward(out, in, wm, bias, B, IC, OC);
}

void nn_masked_linear_backward(float *din, float *dw, float *dbias, const float *dout,
                               const float *in, const float *wm, const float *mask, int B,
                               int IC, int OC) {
  nn_linear_backward(din, NULL, dbias, dout, in, wm, B, IC, OC);
  if (dw)
    for (int o = 0; o < OC; o++)
      for (int i = 0; i < IC; i++) {
        if (mask[(size_t)o * IC + i] == 0.0f) continue;
        float acc = 0.0f;
        for (int b = 0; b < B; b++) acc += dout[(size_t)b * OC + o] * in[(size_t)b * IC + i];
        dw[(size_t)o * IC + i] += acc * mask[(size_t)o * IC + i];
      }
}

// ----------------------------------------------------------------------------
// convolution (circular padding) as im2col + sgemm

int nn_conv_out_size(int n, int stride) { return (n + stride - 1) / stride; }

static inline int wrap(int i, int n) {
  i %= n;
  return i < 0 ? i + n : i;
}

/* The batch is processed in tiles of samples [b0, b0+nb) so the im2col
 * buffer of a tile (K x nb*Ho*Wo) stays in cache between its write and the
 * GEMM that reads it. */
#define NN_CONV_TILE_COLS 1024

static int conv_tile(int B, int HoWo) {
  int t = NN_CONV_TILE_COLS / (HoWo > 0 ? HoWo : 1);
  return t < 1 ? 1 : (t > B ? B : t);
}

size_t nn_conv_col_size(int Cin, int B, int H, int W, int kh, int kw, int stride) {
  if (kh == 1 && kw == 1 && stride == 1) return 0;
  int HoWo = nn_conv_out_size(H, stride) * nn_conv_out_size(W, stride);
  return (size_t)Cin * kh * kw * conv_tile(B, HoWo) * HoWo;
}

/* col (Cin*kh*kw, nb*Ho*Wo) <- samples b0..b0+nb-1 of x (Cin, B, H, W) */
/* Strided convolutions gather columns (wo * s + j - kw/2) mod W: a table per
 * tap j, built once per call, keeps the modulo out of the inner loop. */
#define NN_WRAP_TAB 4096
static const int *wrap_table(int *tab, int W, int Wo, int kw, int s) {
  if (s == 1 || (size_t)kw * Wo > NN_WRAP_TAB) return NULL;
  for (int j = 0; j < kw; j++)
    for (int wo = 0; wo < Wo; wo++) tab[j * Wo + wo] = wrap(wo * s + j - kw / 2, W);
  return tab;
}

static void im2col(float *col, const float *x, int Cin, int B, int b0, int nb, int H, int W,
                   int kh, int kw, int s) {
  int Ho = nn_conv_out_size(H, s), Wo = nn_conv_out_size(W, s);
  size_t P = (size_t)nb * Ho * Wo;
  int tabmem[NN_WRAP_TAB];
  const int *tab = wrap_table(tabmem, W, Wo, kw, s);
  for (int ci = 0; ci < Cin; ci++)
    for (int i = 0; i < kh; i++)
      for (int j = 0; j < kw; j++) {
        float *dst = col + ((size_t)(ci * kh + i) * kw + j) * P;
        int dj = j - kw / 2;
        for (int b = 0; b < nb; b++) {
          const float *xb = x + ((size_t)ci * B + b0 + b) * H * W;
          for (int ho = 0; ho < Ho; ho++) {
            const float *row = xb + (size_t)wrap(ho * s + i - kh / 2, H) * W;
            float *d = dst + ((size_t)b * Ho + ho) * Wo;
            if (s == 1) {
              /* d[wo] = row[(wo + dj) mod W]: two contiguous pieces */
              int sh = wrap(dj, W);
              memcpy(d, row + sh, sizeof(float) * (W - sh));
              memcpy(d + (W - sh), row, sizeof(float) * sh);
            } else if (tab) {
              const int *ix = tab + (size_t)j * Wo;
              for (int wo = 0; wo < Wo; wo++) d[wo] = row[ix[wo]];
            } else {
              for (int wo = 0; wo < Wo; wo++) d[wo] = row[wrap(wo * s + dj, W)];
            }
          }
        }
      }
}

/* samples b0..b0+nb-1 of dx (Cin, B, H, W) += col2im(dcol) */
static void col2im_add(float *dx, const float *dcol, int Cin, int B, int b0, int nb, int H, int W,
                       int kh, int kw, int s) {
  int Ho = nn_conv_out_size(H, s), Wo = nn_conv_out_size(W, s);
  size_t P = (size_t)nb * Ho * Wo;
  int tabmem[NN_WRAP_TAB];
  const int *tab = wrap_table(tabmem, W, Wo, kw, s);
  for (int ci = 0; ci < Cin; ci++)
    for (int i = 0; i < kh; i++)
      for (int j = 0; j < kw; j++) {
        const float *src = dcol + ((size_t)(ci * kh + i) * kw + j) * P;
        int dj = j - kw / 2;
        for (int b = 0; b < nb; b++) {
          float *xb = dx + ((size_t)ci * B + b0 + b) * H * W;
          for (int ho = 0; ho < Ho; ho++) {
            float *row = xb + (size_t)wrap(ho * s + i - kh / 2, H) * W;
            const float *d = src + ((size_t)b * Ho + ho) * Wo;
            if (s == 1) {
              int sh = wrap(dj, W);
              for (int w = 0; w < W - sh; w++) row[sh + w] += d[w];
              for (int w = 0; w < sh; w++) row[w] += d[W - sh + w];
            } else if (tab) {
              const int *ix = tab + (size_t)j * Wo;
              for (int wo = 0; wo < Wo; wo++) row[ix[wo]] += d[wo];
            } else {
              for (int wo = 0; wo < Wo; wo++) row[wrap(wo * s + dj, W)] += d[wo];
            }
          }
        }
      }
}

void nn_conv_wcache_free(nn_conv_wcache *c) {
  free(c->U);
  free(c->wcopy);
  memset(c, 0, sizeof *c);
}

/* c's U for w (transformed now if w differs from c's copy); NULL when the
 * cache cannot be (re)allocated */
static const float *wcache_get(nn_conv_wcache *c, const float *w, int Cin, int Cout, int m) {
  size_t nw = (size_t)Cout * Cin * 9, nu = nn_wino_u_size(Cin, Cout, m);
  if (c->nw != nw || c->nu != nu || c->m != m) {
    nn_conv_wcache_free(c);
    c->U = malloc(nu * sizeof(float));
    c->wcopy = malloc(nw * sizeof(float));
    if (!c->U || !c->wcopy) {
      nn_conv_wcache_free(c);
      return NULL;
    }
    c->nw = nw, c->nu = nu, c->m = m;
  } else if (!memcmp(c->wcopy, w, nw * sizeof(float))) {
    return c->U;
  }
  nn_wino_weights(c->U, w, Cin, Cout, m, 0);
  memcpy(c->wcopy, w, nw * sizeof(float));
  return c->U;
}

static void conv_fwd(float *out, float *col, const float *x, const float *w, const float *bias,
                     nn_conv_wcache *c, int Cin, int Cout, int B, int H, int W, int kh, int kw,
                     int stride, int add) {
  int Ho = nn_conv_out_size(H, stride), Wo = nn_conv_out_size(W, stride), HoWo = Ho * Wo;
  int P = B * HoWo, K = Cin * kh * kw, tile = conv_tile(B, HoWo);
  int pointwise = kh == 1 && kw == 1 && stride == 1; /* x is already the col matrix */
  int m = nn_wino_m(H, W, kh, kw, stride);
  if (m) { /* 3x3 stride 1: Winograd F(m x m, 3 x 3), col holds its scratch */
    const float *U = c ? wcache_get(c, w, Cin, Cout, m) : NULL;
    nn_wino_conv_u(out, col, x, w, U, bias, Cin, Cout, B, H, W, m, add, 0);
    return;
  }
  for (int co = 0; co < Cout; co++) {
    float v = bias ? bias[co] : 0.0f, *o = out + (size_t)co * P;
    if (add)
      for (int p = 0; p < P; p++) o[p] += v;
    else
      for (int p = 0; p < P; p++) o[p] = v;
  }
  if (pointwise) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cout, P, K, 1.0f, w, K, x, P, 1.0f,
                out, P);
    return;
  }
  for (int b0 = 0; b0 < B; b0 += tile) {
    int nb = B - b0 < tile ? B - b0 : tile, Pt = nb * HoWo;
    im2col(col, x, Cin, B, b0, nb, H, W, kh, kw, stride);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cout, Pt, K, 1.0f, w, K, col, Pt, 1.0f,
                out + (size_t)b0 * HoWo, P);
  }
}

void nn_conv_forward(float *out, float *col, const float *x, const float *w, const float *bias,
                     int Cin, int Cout, int B, int H, int W, int kh, int kw, int stride) {
  conv_fwd(out, col, x, w, bias, NULL, Cin, Cout, B, H, W, kh, kw, stride, 0);
}

void nn_conv_forward_c(float *out, float *col, const float *x, const float *w, const float *bias,
                       nn_conv_wcache *c, int add, int Cin, int Cout, int B, int H, int W, int kh,
                       int kw, int stride) {
  conv_fwd(out, col, x, w, bias, c, Cin, Cout, B, H, W, kh, kw, stride, add);
}

void nn_conv_forward_add(float *out, float *col, const float *x, const float *w,
                         const float *bias, int Cin, int Cout, int B, int H, int W, int kh, int kw,
                         int stride) {
  conv_fwd(out, col, x, w, bias, NULL, Cin, Cout, B, H, W, kh, kw, stride, 1);
}

void nn_conv_backward(float *dx, float *dw, float *dbias, float *col, float *dcol,
                      const float *dout, const float *x, const float *w, int Cin, int Cout,
                      int B, int H, int W, int kh, int kw, int stride) {
  int Ho = nn_conv_out_size(H, stride), Wo = nn_conv_out_size(W, stride), HoWo = Ho * Wo;
  int P = B * HoWo, K = Cin * kh * kw, tile = conv_tile(B, HoWo);
  if (dbias)
    for (int co = 0; co < Cout; co++) {
      const float *d = dout + (size_t)co * P;
      float acc = 0.0f;
      for (int p = 0; p < P; p++) acc += d[p];
      dbias[co] += acc;
    }
  if (kh == 1 && kw == 1 && stride == 1) { /* pointwise: x and dx are the col matrices */
    if (dw)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, K, P, 1.0f, dout, P, x, P, 1.0f,
                  dw, K);
    if (dx)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, Cout, 1.0f, w, K, dout, P, 1.0f,
                  dx, P);
    return;
  }
  for (int b0 = 0; b0 < B; b0 += tile) {
    int nb = B - b0 < tile ? B - b0 : tile, Pt = nb * HoWo;
    const float *dt = dout + (size_t)b0 * HoWo;
    if (dw) {
      im2col(col, x, Cin, B, b0, nb, H, W, kh, kw, stride);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, K, Pt, 1.0f, dt, P, col, Pt,
                  1.0f, dw, K);
    }
    if (dx) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, Pt, Cout, 1.0f, w, K, dt, P, 0.0f,
                  dcol, Pt);
      col2im_add(dx, dcol, Cin, B, b0, nb, H, W, kh, kw, stride);
    }
  }
}

/* Winograd scratch for either tile the geometry allows (so sizes do not depend
 * on nn_conv_set_winograd) */
static size_t wino_scratch(int Cin, int Cout, int B, int H, int W, int kh, int kw, int stride) {
  if (kh != 3 || kw != 3 || stride != 1 || H < 2 || W < 2 || H % 2 || W % 2) return 0;
  size_t s2 = nn_wino_size(Cin, Cout, B, H, W, 2);
  size_t s4 = H % 4 || W % 4 ? 0 : nn_wino_size(Cin, Cout, B, H, W, 4);
  return s2 > s4 ? s2 : s4;
}

size_t nn_conv_scratch_size(int Cin, int Cout, int B, int H, int W, int kh, int kw, int stride) {
  size_t c = nn_conv_col_size(Cin, B, H, W, kh, kw, stride);
  size_t t = wino_scratch(Cin, Cout, B, H, W, kh, kw, stride);
  return c > t ? c : t;
}

size_t nn_conv_dcol_size(int Cin, int Cout, int B, int H, int W, int kh, int kw, int stride) {
  size_t c = nn_conv_col_size(Cin, B, H, W, kh, kw, stride);
  if (stride != 1 || (kh == 1 && kw == 1)) return c;
  size_t t = nn_conv_col_size(Cout, B, H, W, kh, kw, 1) + (size_t)Cin * Cout * kh * kw;
  size_t wt = wino_scratch(Cout, Cin, B, H, W, kh, kw, stride);
  t = t > wt ? t : wt;
  return c > t ? c : t;
}

/* Stride 1: d/dx of a circular convolution is the circular convolution of
 * dout with the flipped, transposed kernel w'[ci][co][i][j] = w[co][ci][kh-1-i][kw-1-j],
 * so dx is one well-shaped GEMM per tile (M = Cin, K = Cout*kh*kw) on im2col(dout)
 * accumulating straight into dx, instead of a K = Cout GEMM and a col2im scatter. */
void nn_conv_backward_t(float *dx, float *dw, float *dbias, float *col, float *dcol,
                        const float *dout, const float *x, const float *w, int Cin, int Cout,
                        int B, int H, int W, int kh, int kw, int stride) {
  int m = nn_wino_m(H, W, kh, kw, stride);
  if (m) { /* 3x3 stride 1 by Winograd: dw from the same transforms, dx as a
              convolution of dout with the flipped kernel (+=) */
    if (dbias)
      for (int co = 0; co < Cout; co++) {
        const float *d = dout + (size_t)co * B * H * W;
        float acc = 0.0f;
        for (size_t p = 0; p < (size_t)B * H * W; p++) acc += d[p];
        dbias[co] += acc;
      }
    if (dw) nn_wino_dw(dw, col, x, dout, Cin, Cout, B, H, W, m);
    if (dx) nn_wino_conv(dx, dcol, dout, w, NULL, Cout, Cin, B, H, W, m, 1, 1);
    return;
  }
  if (stride != 1 || (kh == 1 && kw == 1) || !dx) {
    nn_conv_backward(dx, dw, dbias, col, dcol, dout, x, w, Cin, Cout, B, H, W, kh, kw, stride);
    return;
  }
  nn_conv_backward(NULL, dw, dbias, col, dcol, dout, x, w, Cin, Cout, B, H, W, kh, kw, stride);
  int HW = H * W, P = B * HW, kk = kh * kw, K2 = Cout * kk, tile = conv_tile(B, HW);
  float *wf = dcol + nn_conv_col_size(Cout, B, H, W, kh, kw, 1);
  for (int ci = 0; ci < Cin; ci++)
    for (int co = 0; co < Cout; co++)
      for (int t = 0; t < kk; t++)
        wf[((size_t)ci * Cout + co) * kk + t] = w[((size_t)co * Cin + ci) * kk + (kk - 1 - t)];
  for (int b0 = 0; b0 < B; b0 += tile) {
    int nb = B - b0 < tile ? B - b0 : tile, Pt = nb * HW;
    im2col(dcol, dout, Cout, B, b0, nb, H, W, kh, kw, 1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cin, Pt, K2, 1.0f, wf, K2, dcol, Pt,
                1.0f, dx + (size_t)b0 * HW, P);
  }
}

// ----------------------------------------------------------------------------
// nearest upsampling

void nn_upsample_forward(float *out, const float *x, int CB, int H, int W, int fh, int fw) {
  int Ho = H * fh, Wo = W * fw;
  for (int r = 0; r < CB; r++)
    for (int h = 0; h < Ho; h++) {
      const float *src = x + ((size_t)r * H + h / fh) * W;
      float *dst = out + ((size_t)r * Ho + h) * Wo;
      for (int w = 0; w < Wo; w++) dst[w] = src[w / fw];
    }
}

void nn_upsample_backward(float *dx, const float *dout, int CB, int H, int W, int fh, int fw) {
  int Ho = H * fh, Wo = W * fw;
  for (int r = 0; r < CB; r++)
    for (int h = 0; h < Ho; h++) {
      float *dst = dx + ((size_t)r * H + h / fh) * W;
      const float *src = dout + ((size_t)r * Ho + h) * Wo;
      for (int w = 0; w < Wo; w++) dst[w / fw] += src[w];
    }
}

// ----------------------------------------------------------------------------
// GroupNorm on (C, B, S)

/* mean and rstd of group (b, g): channels c0..c0+cpg-1, each S contiguous values */
static inline __attribute__((always_inline)) void gn_stats(float *mean, float *rstd,
                                                           const float *x, int c0, int cpg, int b,
                                                           int B, int S) {
  v8f acc = v8_set1(0.0f);
  float tail = 0.0f;
  for (int c = c0; c < c0 + cpg; c++) {
    const float *xc = x + ((size_t)c * B + b) * S;
    int s = 0;
    for (; s + 8 <= S; s += 8) acc += v8_load(xc + s);
    for (; s < S; s++) tail += xc[s];
  }
  float m = (v8_hsum(acc) + tail) / (float)(cpg * S);
  v8f vm = v8_set1(m), vacc = v8_set1(0.0f);
  float var = 0.0f;
  for (int c = c0; c < c0 + cpg; c++) {
    const float *xc = x + ((size_t)c * B + b) * S;
    int s = 0;
    for (; s + 8 <= S; s += 8) {
      v8f d = v8_load(xc + s) - vm;
      vacc += d * d;
    }
    for (; s < S; s++) var += (xc[s] - m) * (xc[s] - m);
  }
  var = (var + v8_hsum(vacc)) / (float)(cpg * S);
  *mean = m;
  *rstd = 1.0f / sqrtf(var + NN_NORM_EPS);
}

NN_HOT
void nn_groupnorm_forward(float *out, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int C, int B, int S, int G) {
  int cpg = C / G;
  for (int b = 0; b < B; b++)
    for (int g = 0; g < G; g++) {
      float m, r;
      gn_stats(&m, &r, x, g * cpg, cpg, b, B, S);
      mean[b * G + g] = m;
      rstd[b * G + g] = r;
      for (int c = g * cpg; c < (g + 1) * cpg; c++) {
        const float *xc = x + ((size_t)c * B + b) * S;
        float *oc = out + ((size_t)c * B + b) * S;
        float a = r * gamma[c], d = beta[c] - m * a;
        for (int s = 0; s < S; s++) oc[s] = xc[s] * a + d;
      }
    }
}

NN_HOT
void nn_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                           const float *x, const float *gamma, const float *mean,
                           const float *rstd, int C, int B, int S, int G) {
  int cpg = C / G;
  float n = (float)(cpg * S);
  for (int b = 0; b < B; b++)
    for (int g = 0; g < G; g++) {
      float m = mean[b * G + g], r = rstd[b * G + g], s1 = 0.0f, s2 = 0.0f;
      for (int c = g * cpg; c < (g + 1) * cpg; c++) {
        const float *xc = x + ((size_t)c * B + b) * S, *dc = dout + ((size_t)c * B + b) * S;
        float dg = 0.0f, db = 0.0f;
        for (int s = 0; s < S; s++) {
          float xh = (xc[s] - m) * r;
          dg += dc[s] * xh;
          db += dc[s];
        }
        if (dgamma) dgamma[c] += dg;
        if (dbeta) dbeta[c] += db;
        s1 += db * gamma[c];
        s2 += dg * gamma[c];
      }
      if (!dx) continue;
      s1 /= n;
      s2 /= n;
      for (int c = g * cpg; c < (g + 1) * cpg; c++) {
        const float *xc = x + ((size_t)c * B + b) * S, *dc = dout + ((size_t)c * B + b) * S;
        float *dxc = dx + ((size_t)c * B + b) * S, gm = gamma[c];
        for (int s = 0; s < S; s++) {
          float xh = (xc[s] - m) * r;
          dxc[s] += r * (dc[s] * gm - s1 - xh * s2);
        }
      }
    }
}

NN_HOT
void nn_gn_silu_forward(float *out, float *mean, float *rstd, const float *x, const float *gamma,
                        const float *beta, int C, int B, int S, int G) {
  int cpg = C / G;
  const v8f one = v8_set1(1.0f);
  for (int b = 0; b < B; b++)
    for (int g = 0; g < G; g++) {
      float m, r;
      gn_stats(&m, &r, x, g * cpg, cpg, b, B, S);
      mean[b * G + g] = m;
      rstd[b * G + g] = r;
      for (int c = g * cpg; c < (g + 1) * cpg; c++) {
        const float *xc = x + ((size_t)c * B + b) * S;
        float *oc = out + ((size_t)c * B + b) * S;
        float a = r * gamma[c], d = beta[c] - m * a;
        v8f va = v8_set1(a), vd = v8_set1(d);
        int s = 0;
        for (; s + 8 <= S; s += 8) {
          v8f y = v8_load(xc + s) * va + vd;
          v8_store(oc + s, y / (one + v8_exp(-y)));
        }
        for (; s < S; s++) {
          float y = xc[s] * a + d;
          oc[s] = y / (1.0f + nn_expf(-y));
        }
      }
    }
}

/* nn_gn_silu_backward keeps a group's dy (the gradient through SiLU) from its
 * first pass for the second when the group fits: one exp per element
 * instead of two, the same values bit for bit */
#define NN_GN_DY_CACHE 8192

NN_HOT
void nn_gn_silu_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                         const float *x, const float *gamma, const float *beta,
                         const float *mean, const float *rstd, int C, int B, int S, int G) {
  int cpg = C / G;
  float n = (float)(cpg * S);
  const v8f one = v8_set1(1.0f);
  float dyc[NN_GN_DY_CACHE];
  int cache = dx && (size_t)cpg * S <= NN_GN_DY_CACHE;
  for (int b = 0; b < B; b++)
    for (int g = 0; g < G; g++) {
      float m = mean[b * G + g], r = rstd[b * G + g], s1 = 0.0f, s2 = 0.0f;
      v8f vm = v8_set1(m), vr = v8_set1(r);
      for (int c = g * cpg; c < (g + 1) * cpg; c++) {
        const float *xc = x + ((size_t)c * B + b) * S, *dc = dout + ((size_t)c * B + b) * S;
        float *dyk = cache ? dyc + (size_t)(c - g * cpg) * S : dyc;
        float a = r * gamma[c], d = beta[c] - m * a, dg = 0.0f, db = 0.0f;
        v8f va = v8_set1(a), vd = v8_set1(d), vdg = v8_set1(0.0f), vdb = v8_set1(0.0f);
        int s = 0;
        for (; s + 8 <= S; s += 8) {
          v8f xv = v8_load(xc + s), y = xv * va + vd, sg = one / (one + v8_exp(-y));
          v8f dy = v8_load(dc + s) * sg * (one + y * (one - sg));
          if (cache) v8_store(dyk + s, dy);
          vdg += dy * ((xv - vm) * vr);
          vdb += dy;
        }
        for (; s < S; s++) {
          float y = xc[s] * a + d, sg = 1.0f / (1.0f + nn_expf(-y));
          float dy = dc[s] * sg * (1.0f + y * (1.0f - sg));
          if (cache) dyk[s] = dy;
          dg += dy * ((xc[s] - m) * r);
          db += dy;
        }
        dg += v8_hsum(vdg);
        db += v8_hsum(vdb);
        if (dgamma) dgamma[c] += dg;
        if (dbeta) dbeta[c] += db;
        s1 += db * gamma[c];
        s2 += dg * gamma[c];
      }
      if (!dx) continue;
      s1 /= n;
      s2 /= n;
      v8f vs1 = v8_set1(s1), vs2 = v8_set1(s2);
      for (int c = g * cpg; c < (g + 1) * cpg; c++) {
        const float *xc = x + ((size_t)c * B + b) * S, *dc = dout + ((size_t)c * B + b) * S;
        const float *dyk = cache ? dyc + (size_t)(c - g * cpg) * S : dyc;
        float *dxc = dx + ((size_t)c * B + b) * S, gm = gamma[c];
        float a = r * gm, d = beta[c] - m * a;
        v8f va = v8_set1(a), vd = v8_set1(d), vg = v8_set1(gm);
        int s = 0;
        for (; s + 8 <= S; s += 8) {
          v8f xv = v8_load(xc + s), dy;
          if (cache) {
            dy = v8_load(dyk + s);
          } else {
            v8f y = xv * va + vd, sg = one / (one + v8_exp(-y));
            dy = v8_load(dc + s) * sg * (one + y * (one - sg));
          }
          v8f xh = (xv - vm) * vr;
          v8_store(dxc + s, v8_load(dxc + s) + vr * (dy * vg - vs1 - xh * vs2));
        }
        for (; s < S; s++) {
          float dy;
          if (cache) {
            dy = dyk[s];
          } else {
            float y = xc[s] * a + d, sg = 1.0f / (1.0f + nn_expf(-y));
            dy = dc[s] * sg * (1.0f + y * (1.0f - sg));
          }
          float xh = (xc[s] - m) * r;
          dxc[s] += r * (dy * gm - s1 - xh * s2);
        }
      }
    }
}

// ----------------------------------------------------------------------------
// LayerNorm (B, C)

void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int B, int C) {
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * C;
    float m = 0.0f, v = 0.0f;
    for (int c = 0; c < C; c++) m += xb[c];
    m /= (float)C;
    for (int c = 0; c < C; c++) v += (xb[c] - m) * (xb[c] - m);
    v /= (float)C;
    float r = 1.0f / sqrtf(v + NN_NORM_EPS);
    mean[b] = m;
    rstd[b] = r;
    for (int c = 0; c < C; c++) out[(size_t)b * C + c] = (xb[c] - m) * r * gamma[c] + beta[c];
  }
}

void nn_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                           const float *x, const float *gamma, const float *mean,
                           const float *rstd, int B, int C) {
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * C, *db = dout + (size_t)b * C;
    float m = mean[b], r = rstd[b], s1 = 0.0f, s2 = 0.0f;
    for (int c = 0; c < C; c++) {
      float xh = (xb[c] - m) * r, dxh = db[c] * gamma[c];
      s1 += dxh;
      s2 += dxh * xh;
      if (dgamma) dgamma[c] += db[c] * xh;
      if (dbeta) dbeta[c] += db[c];
    }
    s1 /= (float)C;
    s2 /= (float)C;
    if (dx)
      for (int c = 0; c < C; c++) {
        float xh = (xb[c] - m) * r;
        dx[(size_t)b * C + c] += r * (db[c] * gamma[c] - s1 - xh * s2);
      }
  }
}

// ----------------------------------------------------------------------------
// activations

NN_HOT
void nn_silu_forward(float *out, const float *x, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f v = v8_load(x + i);
    v8_store(out + i, v / (v8_set1(1.0f) + v8_exp(-v)));
  }
  for (; i < n; i++) out[i] = x[i] / (1.0f + nn_expf(-x[i]));
}

NN_HOT
void nn_silu_backward(float *dx, const float *dout, const float *x, size_t n) {
  const v8f one = v8_set1(1.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f v = v8_load(x + i), s = one / (one + v8_exp(-v));
    v8_store(dx + i, v8_load(dx + i) + v8_load(dout + i) * s * (one + v * (one - s)));
  }
  for (; i < n; i++) {
    float s = 1.0f / (1.0f + nn_expf(-x[i]));
    dx[i] += dout[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

void nn_tanh_forward(float *out, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = tanhf(x[i]);
}

void nn_tanh_backward(float *dx, const float *dout, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float t = tanhf(x[i]);
    dx[i] += dout[i] * (1.0f - t * t);
  }
}

void nn_relu_forward(float *out, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void nn_relu_backward(float *dx, const float *dout, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dout[i] : 0.0f;
}

/* softplus(x) = log(1 + e^x), computed stably as max(x,0) + log1p(e^-|x|) */
void nn_softplus_forward(float *out, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = fmaxf(x[i], 0.0f) + log1pf(expf(-fabsf(x[i])));
}

void nn_softplus_backward(float *dx, const float *dout, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) dx[i] += dout[i] / (1.0f + expf(-x[i]));
}

// ----------------------------------------------------------------------------
// residual add, channel bias, concatenation

void nn_add_forward(float *out, const float *a, const float *b, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void nn_add_backward(float *da, float *db, const float *dout, size_t n) {
  if (da)
    for (size_t i = 0; i < n; i++) da[i] += dout[i];
  if (db)
    for (size_t i = 0; i < n; i++) db[i] += dout[i];
}

void nn_chanbias_forward(float *x, const float *bias, int ldb, int C, int B, int S) {
  for (int c = 0; c < C; c++)
    for (int b = 0; b < B; b++) {
      float v = bias[(size_t)b * ldb + c], *xc = x + ((size_t)c * B + b) * S;
      for (int s = 0; s < S; s++) xc[s] += v;
    }
}

void nn_chanbias_backward(float *dbias, const float *dout, int ldb, int C, int B, int S) {
  for (int c = 0; c < C; c++)
    for (int b = 0; b < B; b++) {
      const float *dc = dout + ((size_t)c * B + b) * S;
      float acc = 0.0f;
      for (int s = 0; s < S; s++) acc += dc[s];
      dbias[(size_t)b * ldb + c] += acc;
    }
}

void nn_concat_forward(float *out, const float *a, int Ca, const float *b, int Cb, int R, int S) {
  for (int r = 0; r < R; r++) {
    float *o = out + (size_t)r * (Ca + Cb) * S;
    memcpy(o, a + (size_t)r * Ca * S, sizeof(float) * Ca * S);
    memcpy(o + (size_t)Ca * S, b + (size_t)r * Cb * S, sizeof(float) * Cb * S);
  }
}

void nn_concat_backward(float *da, float *db, const float *dout, int Ca, int Cb, int R, int S) {
  for (int r = 0; r < R; r++) {
    const float *d = dout + (size_t)r * (Ca + Cb) * S;
    if (da)
      for (size_t i = 0; i < (size_t)Ca * S; i++) da[(size_t)r * Ca * S + i] += d[i];
    if (db)
      for (size_t i = 0; i < (size_t)Cb * S; i++) db[(size_t)r * Cb * S + i] += d[(size_t)Ca * S + i];
  }
}

// ----------------------------------------------------------------------------
// sinusoidal embedding

void nn_sinusoidal_forward(float *out, const float *s, int B, int ns, int dim) {
  int h = dim / 2;
  double step = log(1000.0) / (h > 1 ? h - 1 : 1);
  for (int b = 0; b < B; b++)
    for (int k = 0; k < ns; k++) {
      double v = s[b * ns + k];
      float *o = out + ((size_t)b * ns + k) * dim;
      for (int j = 0; j < h; j++) {
        double a = v * exp(j * step);
        o[j] = (float)sin(a);
        o[h + j] = (float)cos(a);
      }
    }
}

// ----------------------------------------------------------------------------
// affine coupling

void nn_coupling_forward(float *y, float *logdet, const float *x, const float *sraw,
                         const float *t, const float *mask, float clamp, int B, int D) {
  for (int b = 0; b < B; b++) {
    float ld = 0.0f;
    for (int d = 0; d < D; d++) {
      size_t i = (size_t)b * D + d;
      if (mask[d] != 0.0f) {
        y[i] = x[i];
        continue;
      }
      float s = clamp * tanhf(sraw[i] / clamp);
      y[i] = x[i] * expf(s) + t[i];
      ld += s;
    }
    if (logdet) logdet[b] += ld;
  }
}

void nn_coupling_inverse(float *x, float *logdet, const float *y, const float *sraw,
                         const float *t, const float *mask, float clamp, int B, int D) {
  for (int b = 0; b < B; b++) {
    float ld = 0.0f;
    for (int d = 0; d < D; d++) {
      size_t i = (size_t)b * D + d;
      if (mask[d] != 0.0f) {
        x[i] = y[i];
        continue;
      }
      float s = clamp * tanhf(sraw[i] / clamp);
      x[i] = (y[i] - t[i]) * expf(-s);
      ld -= s;
    }
    if (logdet) logdet[b] += ld;
  }
}

void nn_coupling_backward(float *dx, float *dsraw, float *dt, const float *dy,
                          const float *dlogdet, const float *x, const float *sraw,
                          const float *mask, float clamp, int B, int D) {
  for (int b = 0; b < B; b++) {
    float dld = dlogdet ? dlogdet[b] : 0.0f;
    for (int d = 0; d < D; d++) {
      size_t i = (size_t)b * D + d;
      if (mask[d] != 0.0f) {
        if (dx) dx[i] += dy[i];
        continue;
      }
      float th = tanhf(sraw[i] / clamp), s = clamp * th, e = expf(s);
      if (dx) dx[i] += dy[i] * e;
      if (dt) dt[i] += dy[i];
      if (dsraw) dsraw[i] += (dy[i] * x[i] * e + dld) * (1.0f - th * th);
    }
  }
}

// ----------------------------------------------------------------------------
// losses

double nn_mse_loss(float *dpred, const float *pred, const float *target, size_t n, float dloss) {
  double acc = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)pred[i] - target[i];
    acc += d * d;
    if (dpred) dpred[i] = (float)(2.0 * d / (double)n) * dloss;
  }
  return acc / (double)n;
}

double nn_bce_logits_loss(float *dlogit, const float *logit, const float *label, size_t n,
                          float dloss) {
  double acc = 0.0;
  for (size_t i = 0; i < n; i++) {
    double z = logit[i], y = label[i];
    acc += fmax(z, 0.0) - z * y + log1p(exp(-fabs(z)));
    if (dlogit) dlogit[i] = (float)((1.0 / (1.0 + exp(-z)) - y) / (double)n) * dloss;
  }
  return acc / (double)n;
}

double nn_gauss_nll_loss(float *dmu, float *dlv, const float *mu, const float *lv,
                         const float *y, size_t n, float dloss) {
  const double l2pi = 1.8378770664093453;
  double acc = 0.0;
  for (size_t i = 0; i < n; i++) {
    double r = (double)y[i] - mu[i], iv = exp(-(double)lv[i]);
    acc += 0.5 * (lv[i] + r * r * iv + l2pi);
    if (dmu) dmu[i] = (float)(-r * iv / (double)n) * dloss;
    if (dlv) dlv[i] = (float)(0.5 * (1.0 - r * r * iv) / (double)n) * dloss;
  }
  return acc / (double)n;
}
