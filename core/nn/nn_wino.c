/* nn_wino.c: 3x3 stride-1 circular convolutions by Winograd's minimal
 * filtering F(m x m, 3 x 3), m = 4 or 2 (Lavin & Gray 2016), see nn_wino.h.
 *
 * The output is cut into m x m tiles; tile (b, ty, tx) needs the (m+2)^2
 * input patch rows ty*m-1 .. ty*m+m, columns tx*m-1 .. tx*m+m, wrapped
 * circularly (so with H, W multiples of m there are no edge tiles: the torus
 * is tiled exactly). Per chunk of tiles:
 *   V[p][ci][t] = (B^T d B)[p] of tile t's patch of channel ci   (input transform)
 *   M[p]        = U[p] (NO x NI) . V[p] (NI x tiles)              (one sgemm per p)
 *   out tile    = A^T M A                                         (output transform)
 * with U[p][o][i] = (G k G^T)[p] of the 3x3 kernel k[o][i], transformed per call
 * (NI*NO kernels of ~150 flops against 2*(m+2)^2*NI*NO*tiles in the GEMMs: a few
 * percent; no cache to invalidate when an optimizer step changes the weights).
 * The transforms work on 8-wide vectors. Whole groups of 8 samples go the
 * batch-vector way: a channel's 8 planes are interleaved once (X8[pixel][8]),
 * so a patch value of one tile position in the 8 samples is one contiguous
 * load and the (m+2)^2 transformed values are 8 consecutive GEMM columns. The
 * remaining B % 8 samples go the tile-vector way: groups of NG tiles gathered
 * as structure-of-arrays (8 tiles per vector). */
#include "nn/nn_wino.h"

#include <cblas.h>
#include <string.h>

#include "nn/nn_simd.h"
#include "nn/nn_wino_tf.h"


#define NG 64            /* tiles per transform group (8 vectors of 8) */
#define NN_WINO_TILES 512 /* tiles per chunk: V and M of a chunk stay in L2/L3 */

static int wino_max = 4, wino_fused = 1;

int nn_conv_set_winograd_fused(int on) {
  int old = wino_fused;
  wino_fused = on != 0;
  return old;
}

int nn_conv_set_winograd(int max_m) {
  int old = wino_max;
  wino_max = max_m == 0 || max_m == 2 ? max_m : 4;
  return old;
}

int nn_wino_m(int H, int W, int kh, int kw, int stride) {
  if (kh != 3 || kw != 3 || stride != 1 || H < 2 || W < 2) return 0;
  if (wino_max >= 4 && H % 4 == 0 && W % 4 == 0) return 4;
  if (wino_max >= 2 && H % 2 == 0 && W % 2 == 0) return 2;
  return 0;
}

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

/* floats between the transform planes of V and M (rows x ld each): one cache
 * line more than a plane, so the 36 streams of a tile's values do not all map
 * to the same cache set (a plane is often a power of two bytes, 128 KiB) */
#define PS(rows, ld) ((size_t)(rows) * (ld) + 16)

/* GEMM columns per chunk: the batch-vector way takes whole groups of 8 samples
 * (8 columns per tile position), the tile way the nb < 8 remaining samples */
static size_t bv_chunk(int m, int B, int H, int W) {
  size_t per = (size_t)8 * (H / m) * (W / m), g = (size_t)B / 8, k = NN_WINO_TILES / per;
  k = k < 1 ? 1 : k;
  return g ? (k < g ? k : g) * per : 0;
}

static size_t tl_chunk(int m, int nb, int H, int W) {
  size_t nt = (size_t)nb * (H / m) * (W / m);
  return nt < NN_WINO_TILES ? nt : NN_WINO_TILES;
}

static size_t wino_ld(int m, int B, int H, int W) {
  size_t a = bv_chunk(m, B, H, W), b = tl_chunk(m, B % 8, H, W);
  return round8(a > b ? a : b);
}

size_t nn_wino_size(int NI, int NO, int B, int H, int W, int m) {
  if (!m) return 0;
  size_t A2 = (size_t)(m + 2) * (m + 2), ld = wino_ld(m, B, H, W);
  size_t x8 = B >= 8 ? (size_t)H * W * 8 : 0;
  size_t own = A2 * (PS(NI, ld) + PS(NO, ld)) + x8;
  size_t fu = B >= 8 && nn_wfu_ok(NI, NO, m) ? nn_wfu_size(NI, NO, H, W, m) : 0;
  return A2 * (size_t)NI * NO + (own > fu ? own : fu);
}

// ----------------------------------------------------------------------------
// kernel transform G g (the input and output transforms are in nn_wino_tf.h)

TF void g1d8(v8f *u, const v8f *g, int s, int us, int m) {
  v8f g0 = g[0], g1 = g[s], g2 = g[2 * s];
  if (m == 4) {
    v8f a = g0 + g2, sx = v8_set1(1.0f / 6), b = g0 * v8_set1(1.0f / 24) + g2 * v8_set1(1.0f / 6);
    v8f c = g1 * v8_set1(1.0f / 12);
    u[0] = g0 * v8_set1(1.0f / 4);
    u[us] = -(a + g1) * sx;
    u[2 * us] = -(a - g1) * sx;
    u[3 * us] = b + c;
    u[4 * us] = b - c;
    u[5 * us] = g2;
  } else {
    v8f h = v8_set1(0.5f), a = g0 + g2;
    u[0] = g0;
    u[us] = h * (a + g1);
    u[2 * us] = h * (a - g1);
    u[3 * us] = g2;
  }
}

/* U[p][o][i] = G k G^T with k = w[o][i] (w is (NO, NI, 3, 3)), or with flip the
 * kernel of the input gradient, k[o][i][a][b] = w[i][o][2-a][2-b] (w is (NI, NO, 3, 3)).
 * Eight input channels per vector: their kernels are first copied to kt[q][lane]. */
TF void wino_weights_m(float *U, const float *w, int NI, int NO, int m, int flip) {
  int A = m + 2;
  size_t plane = (size_t)NO * NI;
  float kt[9][64];
  v8f g[9], t[AMAX * 3], u[AMAX * AMAX];
  for (int o = 0; o < NO; o++)
    for (int i0 = 0; i0 < NI; i0 += 64) {
      int n = NI - i0 < 64 ? NI - i0 : 64;
      for (int l = 0; l < n; l++) {
        int i = i0 + l;
        const float *k = w + ((size_t)(flip ? i * NO + o : o * NI + i)) * 9;
        for (int q = 0; q < 9; q++) kt[q][l] = k[flip ? 8 - q : q];
      }
      for (int l = n; l < (n + 7) / 8 * 8; l++)
        for (int q = 0; q < 9; q++) kt[q][l] = 0.0f;
      for (int l = 0; l < n; l += 8) {
        for (int q = 0; q < 9; q++) g[q] = v8_load(&kt[q][l]);
        for (int c = 0; c < 3; c++) g1d8(t + c, g + c, 3, 3, m);         /* t = G g   (A x 3) */
        for (int r = 0; r < A; r++) g1d8(u + r * A, t + r * 3, 1, 1, m); /* u = t G^T (A x A) */
        float *dst = U + (size_t)o * NI + i0 + l;
        if (n - l >= 8)
          for (int p = 0; p < A * A; p++) v8_store(dst + p * plane, u[p]);
        else
          for (int p = 0; p < A * A; p++)
            for (int j = 0; j < n - l; j++) dst[p * plane + j] = u[p][j];
      }
    }
}

size_t nn_wino_u_size(int NI, int NO, int m) { return (size_t)(m + 2) * (m + 2) * NI * NO; }

NN_HOT
void nn_wino_weights(float *U, const float *w, int NI, int NO, int m, int flip) {
  if (m == 4)
    wino_weights_m(U, w, NI, NO, 4, flip);
  else
    wino_weights_m(U, w, NI, NO, 2, flip);
}

/* the tile way: input transform of tiles [t0, t0+n) of samples b0.. of x
 * (NI planes cstride apart, H x W each) into V[p][ci][ld] */
TF void wino_input_m(float *V, const float *x, size_t cstride, int b0, int NI, int H, int W,
                     int m, size_t t0, int n, size_t ld) {
  const int A = m + 2, A2 = A * A, TW = W / m, tpi = (H / m) * TW;
  size_t HW = (size_t)H * W;
  int off[NG][AMAX * AMAX];
  size_t boff[NG];
  v8f D[AMAX * AMAX];
  for (int g0 = 0; g0 < n; g0 += NG) {
    int ng = n - g0 < NG ? n - g0 : NG, nv = (ng + 7) / 8;
    for (int l = 0; l < nv * 8; l++) {
      size_t t = t0 + g0 + (l < ng ? l : 0);
      int b = b0 + (int)(t / tpi), r = (int)(t % tpi), ty = r / TW, tx = r % TW;
      boff[l] = (size_t)b * HW;
      for (int a = 0; a < A; a++) {
        int h = ty * m - 1 + a;
        h = h < 0 ? h + H : h >= H ? h - H : h;
        for (int c = 0; c < A; c++) {
          int ww = tx * m - 1 + c;
          ww = ww < 0 ? ww + W : ww >= W ? ww - W : ww;
          off[l][a * A + c] = h * W + ww;
        }
      }
    }
    for (int ci = 0; ci < NI; ci++) {
      const float *xc = x + (size_t)ci * cstride;
      float *vc = V + (size_t)ci * ld + g0;
      for (int v = 0; v < nv; v++) {
        for (int q = 0; q < A2; q++)
          for (int j = 0; j < 8; j++) D[q][j] = xc[boff[v * 8 + j] + off[v * 8 + j][q]];
        for (int c = 0; c < A; c++) m == 4 ? bt4(D + c, D + c, A) : bt2(D + c, D + c, A);
        for (int r = 0; r < A; r++) m == 4 ? bt4(D + r * A, D + r * A, 1) : bt2(D + r * A, D + r * A, 1);
        for (int q = 0; q < A2; q++) v8_store(vc + q * PS(NI, ld) + v * 8, D[q]);
      }
    }
  }
}

/* output transform of tiles [t0, t0+n) from M[p][co][ld] into out (NO, B, H, W):
 * out = (add ? out : 0) + A^T M A + bias */
TF void wino_output_m(float *out, const float *M, const float *bias, size_t cstride, int b0,
                      int NO, int H, int W, int m, size_t t0, int n, size_t ld, int add) {
  const int A = m + 2, A2 = A * A, TW = W / m, tpi = (H / m) * TW;
  size_t HW = (size_t)H * W;
  size_t ooff[NG];
  v8f Mv[AMAX * AMAX], Y1[4 * AMAX], Y[16];
  float yv[16][8];
  for (int g0 = 0; g0 < n; g0 += NG) {
    int ng = n - g0 < NG ? n - g0 : NG, nv = (ng + 7) / 8;
    for (int l = 0; l < ng; l++) {
      size_t t = t0 + g0 + l;
      int b = b0 + (int)(t / tpi), r = (int)(t % tpi), ty = r / TW, tx = r % TW;
      ooff[l] = (size_t)b * HW + (size_t)ty * m * W + (size_t)tx * m;
    }
    for (int co = 0; co < NO; co++) {
      float *oc = out + (size_t)co * cstride, bv = bias ? bias[co] : 0.0f;
      const float *mc = M + (size_t)co * ld + g0;
      for (int v = 0; v < nv; v++) {
        for (int q = 0; q < A2; q++) Mv[q] = v8_load(mc + q * PS(NO, ld) + v * 8);
        /* Y1 (m x A) = A^T Mv (column by column), Y (m x m) = Y1 A (row by row) */
        for (int c = 0; c < A; c++) m == 4 ? at4(Y1 + c, Mv + c, A, A) : at2(Y1 + c, Mv + c, A, A);
        for (int r = 0; r < m; r++) m == 4 ? at4(Y + r * m, Y1 + r * A, 1, 1) : at2(Y + r * m, Y1 + r * A, 1, 1);
        for (int q = 0; q < m * m; q++) v8_store(yv[q], Y[q]);
        int lanes = ng - v * 8 < 8 ? ng - v * 8 : 8;
        for (int j = 0; j < lanes; j++) {
          float *o = oc + ooff[v * 8 + j];
          for (int r = 0; r < m; r++)
            for (int c = 0; c < m; c++) {
              float y = yv[r * m + c][j] + bv;
              o[(size_t)r * W + c] = add ? o[(size_t)r * W + c] + y : y;
            }
        }
      }
    }
  }
}

/* the batch-vector way: samples b0 .. b0 + 8 ngr - 1 of x; column
 * (g tpi + ty TW + tx) 8 + j of V is tile (ty, tx) of sample b0 + 8 g + j */
TF void bv_input_m(float *V, float *X8, const float *x, size_t cstride, int b0, int ngr, int NI,
                   int H, int W, int m, size_t ld) {
  const int A = m + 2, A2 = A * A, TH = H / m, TW = W / m, tpi = TH * TW;
  size_t HW = (size_t)H * W;
  v8f D[AMAX * AMAX];
  int rows[AMAX], cols[AMAX];
  for (int ci = 0; ci < NI; ci++)
    for (int g = 0; g < ngr; g++) {
      const float *p = x + (size_t)ci * cstride + (size_t)(b0 + 8 * g) * HW;
      size_t i = 0;
      for (; i + 8 <= HW; i += 8) { /* 8 pixels of the 8 samples: one transpose */
        v8f r[8];
        for (int j = 0; j < 8; j++) r[j] = v8_load(p + (size_t)j * HW + i);
        tr8(r);
        for (int k = 0; k < 8; k++) v8_store(X8 + (i + k) * 8, r[k]);
      }
      for (; i < HW; i++)
        for (int j = 0; j < 8; j++) X8[i * 8 + j] = p[(size_t)j * HW + i];
      float *vc = V + (size_t)ci * ld + (size_t)g * tpi * 8;
      for (int ty = 0; ty < TH; ty++) {
        for (int a = 0; a < A; a++) {
          int h = ty * m - 1 + a;
          rows[a] = (h < 0 ? h + H : h >= H ? h - H : h) * W;
        }
        for (int tx = 0; tx < TW; tx++) {
          for (int c = 0; c < A; c++) {
            int ww = tx * m - 1 + c;
            cols[c] = ww < 0 ? ww + W : ww >= W ? ww - W : ww;
          }
          for (int a = 0; a < A; a++)
            for (int c = 0; c < A; c++) D[a * A + c] = v8_load(X8 + (size_t)(rows[a] + cols[c]) * 8);
          for (int c = 0; c < A; c++) m == 4 ? bt4(D + c, D + c, A) : bt2(D + c, D + c, A);
          for (int r = 0; r < A; r++) m == 4 ? bt4(D + r * A, D + r * A, 1) : bt2(D + r * A, D + r * A, 1);
          float *vt = vc + (size_t)(ty * TW + tx) * 8;
          for (int q = 0; q < A2; q++) v8_store(vt + q * PS(NI, ld), D[q]);
        }
      }
    }
}

TF void bv_output_m(float *out, float *Y8, const float *M, const float *bias, size_t cstride,
                    int b0, int ngr, int NO, int H, int W, int m, size_t ld, int add) {
  const int A = m + 2, A2 = A * A, TH = H / m, TW = W / m, tpi = TH * TW;
  size_t HW = (size_t)H * W;
  v8f Mv[AMAX * AMAX], Y1[4 * AMAX], Y[16];
  for (int co = 0; co < NO; co++)
    for (int g = 0; g < ngr; g++) {
      const float *mc = M + (size_t)co * ld + (size_t)g * tpi * 8;
      for (int ty = 0; ty < TH; ty++)
        for (int tx = 0; tx < TW; tx++) {
          const float *mt = mc + (size_t)(ty * TW + tx) * 8;
          for (int q = 0; q < A2; q++) Mv[q] = v8_load(mt + q * PS(NO, ld));
          for (int c = 0; c < A; c++) m == 4 ? at4(Y1 + c, Mv + c, A, A) : at2(Y1 + c, Mv + c, A, A);
          for (int r = 0; r < m; r++) m == 4 ? at4(Y + r * m, Y1 + r * A, 1, 1) : at2(Y + r * m, Y1 + r * A, 1, 1);
          for (int r = 0; r < m; r++)
            for (int c = 0; c < m; c++)
              v8_store(Y8 + ((size_t)(ty * m + r) * W + tx * m + c) * 8, Y[r * m + c]);
        }
      float bv = bias ? bias[co] : 0.0f;
      float *o = out + (size_t)co * cstride + (size_t)(b0 + 8 * g) * HW;
      planes8_store(o, HW, Y8, HW, bv, add); /* back to 8 planes */
    }
}

NN_HOT
static void wino_input(float *V, const float *x, size_t cstride, int b0, int NI, int H, int W,
                       int m, size_t t0, int n, size_t ld) {
  if (m == 4)
    wino_input_m(V, x, cstride, b0, NI, H, W, 4, t0, n, ld);
  else
    wino_input_m(V, x, cstride, b0, NI, H, W, 2, t0, n, ld);
}

NN_HOT
static void wino_output(float *out, const float *M, const float *bias, size_t cstride, int b0,
                        int NO, int H, int W, int m, size_t t0, int n, size_t ld, int add) {
  if (m == 4)
    wino_output_m(out, M, bias, cstride, b0, NO, H, W, 4, t0, n, ld, add);
  else
    wino_output_m(out, M, bias, cstride, b0, NO, H, W, 2, t0, n, ld, add);
}

NN_HOT
static void bv_input(float *V, float *X8, const float *x, size_t cstride, int b0, int ngr, int NI,
                     int H, int W, int m, size_t ld) {
  if (m == 4)
    bv_input_m(V, X8, x, cstride, b0, ngr, NI, H, W, 4, ld);
  else
    bv_input_m(V, X8, x, cstride, b0, ngr, NI, H, W, 2, ld);
}

NN_HOT
static void bv_output(float *out, float *Y8, const float *M, const float *bias, size_t cstride,
                      int b0, int ngr, int NO, int H, int W, int m, size_t ld, int add) {
  if (m == 4)
    bv_output_m(out, Y8, M, bias, cstride, b0, ngr, NO, H, W, 4, ld, add);
  else
    bv_output_m(out, Y8, M, bias, cstride, b0, ngr, NO, H, W, 2, ld, add);
}

/* M[p] = U[p] V[p] for the n columns of a chunk */
static void wino_gemms(float *M, const float *U, const float *V, int NI, int NO, int A2, int n,
                       size_t ld) {
  for (int p = 0; p < A2; p++)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, NO, n, NI, 1.0f,
                U + (size_t)p * NO * NI, NI, V + p * PS(NI, ld), (int)ld, 0.0f,
                M + p * PS(NO, ld), (int)ld);
}

void nn_wino_conv(float *out, float *scratch, const float *x, const float *w, const float *bias,
                  int NI, int NO, int B, int H, int W, int m, int add, int flip) {
  nn_wino_conv_u(out, scratch, x, w, NULL, bias, NI, NO, B, H, W, m, add, flip);
}

void nn_wino_conv_u(float *out, float *scratch, const float *x, const float *w, const float *Uc,
                    const float *bias, int NI, int NO, int B, int H, int W, int m, int add,
                    int flip) {
  const int A = m + 2, A2 = A * A;
  size_t tpi = (size_t)(H / m) * (W / m), ld = wino_ld(m, B, H, W), cstride = (size_t)B * H * W;
  float *U = scratch, *V = U + (size_t)A2 * NO * NI, *M = V + A2 * PS(NI, ld);
  float *X8 = M + A2 * PS(NO, ld);
  if (Uc)
    U = (float *)Uc; /* only read */
  else
    nn_wino_weights(U, w, NI, NO, m, flip);
  int ng = B / 8, b8 = 8 * ng;
  if (ng && wino_fused && nn_wfu_ok(NI, NO, m)) {
    nn_wfu_conv(out, V, x, U, bias, NI, NO, B, ng, H, W, m, add);
  } else if (ng) {
    int gpc = (int)(bv_chunk(m, B, H, W) / (8 * tpi));
    for (int g0 = 0; g0 < ng; g0 += gpc) {
      int n = ng - g0 < gpc ? ng - g0 : gpc;
      bv_input(V, X8, x, cstride, 8 * g0, n, NI, H, W, m, ld);
      wino_gemms(M, U, V, NI, NO, A2, (int)(n * 8 * tpi), ld);
      bv_output(out, X8, M, bias, cstride, 8 * g0, n, NO, H, W, m, ld, add);
    }
  }
  if (B > b8) {
    size_t nt = (size_t)(B - b8) * tpi, ct = tl_chunk(m, B - b8, H, W);
    for (size_t t0 = 0; t0 < nt; t0 += ct) {
      int n = (int)(nt - t0 < ct ? nt - t0 : ct);
      wino_input(V, x, cstride, b8, NI, H, W, m, t0, n, ld);
      wino_gemms(M, U, V, NI, NO, A2, n, ld);
      wino_output(out, M, bias, cstride, b8, NO, H, W, m, t0, n, ld, add);
    }
  }
}

// ----------------------------------------------------------------------------
// weight gradient: the adjoint of the forward's algebra. With V = B^T d B of
// the input tiles and dM = A dY A^T of the output gradient's tiles,
// dU[p] = sum over tiles dM[p] V[p]^T (one sgemm per p, K = tiles) and
// dw = G^T dU G.

/* A y for F(4,3): y (m values) -> A values; and F(2,3) */
TF void a4(v8f *o, const v8f *y, int s, int os) {
  v8f y0 = y[0], y1 = y[s], y2 = y[2 * s], y3 = y[3 * s];
  v8f e = y0 + y2, f = y1 + y3, g = v8_set1(2.0f) * y1 + v8_set1(8.0f) * y3;
  v8f h = y0 + v8_set1(4.0f) * y2;
  o[0] = y0;
  o[os] = e + f;
  o[2 * os] = e - f;
  o[3 * os] = h + g;
  o[4 * os] = h - g;
  o[5 * os] = y3;
}

TF void a2(v8f *o, const v8f *y, int s, int os) {
  v8f y0 = y[0], y1 = y[s];
  o[0] = y0;
  o[os] = y0 + y1;
  o[2 * os] = y0 - y1;
  o[3 * os] = -y1;
}

/* dM (A x A) = A dY A^T from dY (m x m, row stride m) */
TF void dm_tile(v8f *dM, const v8f *dY, int m) {
  int A = m + 2;
  v8f T[AMAX * 4];
  for (int c = 0; c < m; c++) m == 4 ? a4(T + c, dY + c, m, m) : a2(T + c, dY + c, m, m); /* A x m */
  for (int r = 0; r < A; r++) m == 4 ? a4(dM + r * A, T + r * m, 1, 1) : a2(dM + r * A, T + r * m, 1, 1);
}

/* the batch-vector way of the output gradient: columns as in bv_input_m */
TF void bv_dout_m(float *dM, float *X8, const float *dy, size_t cstride, int b0, int ngr, int NO,
                  int H, int W, int m, size_t ld) {
  const int A = m + 2, A2 = A * A, TH = H / m, TW = W / m, tpi = TH * TW;
  size_t HW = (size_t)H * W;
  v8f Y[16], D[AMAX * AMAX];
  for (int co = 0; co < NO; co++)
    for (int g = 0; g < ngr; g++) {
      const float *p = dy + (size_t)co * cstride + (size_t)(b0 + 8 * g) * HW;
      size_t i = 0;
      for (; i + 8 <= HW; i += 8) {
        v8f r[8];
        for (int j = 0; j < 8; j++) r[j] = v8_load(p + (size_t)j * HW + i);
        tr8(r);
        for (int k = 0; k < 8; k++) v8_store(X8 + (i + k) * 8, r[k]);
      }
      for (; i < HW; i++)
        for (int j = 0; j < 8; j++) X8[i * 8 + j] = p[(size_t)j * HW + i];
      float *mc = dM + (size_t)co * ld + (size_t)g * tpi * 8;
      for (int ty = 0; ty < TH; ty++)
        for (int tx = 0; tx < TW; tx++) {
          for (int r = 0; r < m; r++)
            for (int c = 0; c < m; c++)
              Y[r * m + c] = v8_load(X8 + ((size_t)(ty * m + r) * W + tx * m + c) * 8);
          dm_tile(D, Y, m);
          float *mt = mc + (size_t)(ty * TW + tx) * 8;
          for (int q = 0; q < A2; q++) v8_store(mt + q * PS(NO, ld), D[q]);
        }
    }
}

/* the tile way: tiles [t0, t0+n) of samples b0.. */
TF void tl_dout_m(float *dM, const float *dy, size_t cstride, int b0, int NO, int H, int W, int m,
                  size_t t0, int n, size_t ld) {
  const int A = m + 2, A2 = A * A, TW = W / m, tpi = (H / m) * TW;
  size_t HW = (size_t)H * W, ooff[NG];
  float buf[16][NG];
  v8f Y[16], D[AMAX * AMAX];
  for (int g0 = 0; g0 < n; g0 += NG) {
    int ng = n - g0 < NG ? n - g0 : NG, nv = (ng + 7) / 8;
    for (int l = 0; l < nv * 8; l++) {
      size_t t = t0 + g0 + (l < ng ? l : 0);
      int b = b0 + (int)(t / tpi), r = (int)(t % tpi), ty = r / TW, tx = r % TW;
      ooff[l] = (size_t)b * HW + (size_t)ty * m * W + (size_t)tx * m;
    }
    for (int co = 0; co < NO; co++) {
      const float *pc = dy + (size_t)co * cstride;
      for (int l = 0; l < nv * 8; l++)
        for (int r = 0; r < m; r++)
          for (int c = 0; c < m; c++) buf[r * m + c][l] = pc[ooff[l] + (size_t)r * W + c];
      float *mc = dM + (size_t)co * ld + g0;
      for (int v = 0; v < nv; v++) {
        for (int q = 0; q < m * m; q++) Y[q] = v8_load(&buf[q][v * 8]);
        dm_tile(D, Y, m);
        for (int q = 0; q < A2; q++) v8_store(mc + q * PS(NO, ld) + v * 8, D[q]);
      }
    }
  }
}

/* G^T u for a vector u of A values -> 3 */
TF void gt(v8f *o, const v8f *u, int s, int os, int m) {
  if (m == 4) {
    v8f p = u[s] + u[2 * s], q = u[s] - u[2 * s], r = u[3 * s] + u[4 * s], t = u[3 * s] - u[4 * s];
    v8f s6 = v8_set1(1.0f / 6);
    o[0] = u[0] * v8_set1(1.0f / 4) - p * s6 + r * v8_set1(1.0f / 24);
    o[os] = t * v8_set1(1.0f / 12) - q * s6;
    o[2 * os] = (r - p) * s6 + u[5 * s];
  } else {
    v8f h = v8_set1(0.5f), p = u[s] + u[2 * s];
    o[0] = u[0] + h * p;
    o[os] = h * (u[s] - u[2 * s]);
    o[2 * os] = h * p + u[3 * s];
  }
}

/* dw[o][i] += G^T dU[o][i] G, eight input channels per vector */
TF void wino_dw_fold_m(float *dw, const float *dU, int NI, int NO, int m) {
  int A = m + 2;
  size_t plane = (size_t)NO * NI;
  v8f u[AMAX * AMAX], t[3 * AMAX], k[9];
  float kb[9][8];
  for (int o = 0; o < NO; o++)
    for (int i0 = 0; i0 < NI; i0 += 8) {
      int n = NI - i0 < 8 ? NI - i0 : 8;
      const float *src = dU + (size_t)o * NI + i0;
      for (int p = 0; p < A * A; p++) {
        if (n == 8) {
          u[p] = v8_load(src + p * plane);
        } else {
          float tmp[8] = {0};
          for (int j = 0; j < n; j++) tmp[j] = src[p * plane + j];
          u[p] = v8_load(tmp);
        }
      }
      for (int c = 0; c < A; c++) gt(t + c, u + c, A, A, m);     /* t = G^T u (3 x A) */
      for (int r = 0; r < 3; r++) gt(k + r * 3, t + r * A, 1, 1, m); /* k = t G   (3 x 3) */
      for (int q = 0; q < 9; q++) v8_store(kb[q], k[q]);
      for (int j = 0; j < n; j++) {
        float *d = dw + ((size_t)o * NI + i0 + j) * 9;
        for (int q = 0; q < 9; q++) d[q] += kb[q][j];
      }
    }
}

NN_HOT
static void bv_dout(float *dM, float *X8, const float *dy, size_t cstride, int b0, int ngr, int NO,
                    int H, int W, int m, size_t ld) {
  if (m == 4)
    bv_dout_m(dM, X8, dy, cstride, b0, ngr, NO, H, W, 4, ld);
  else
    bv_dout_m(dM, X8, dy, cstride, b0, ngr, NO, H, W, 2, ld);
}

NN_HOT
static void tl_dout(float *dM, const float *dy, size_t cstride, int b0, int NO, int H, int W, int m,
                    size_t t0, int n, size_t ld) {
  if (m == 4)
    tl_dout_m(dM, dy, cstride, b0, NO, H, W, 4, t0, n, ld);
  else
    tl_dout_m(dM, dy, cstride, b0, NO, H, W, 2, t0, n, ld);
}

NN_HOT
static void wino_dw_fold(float *dw, const float *dU, int NI, int NO, int m) {
  if (m == 4)
    wino_dw_fold_m(dw, dU, NI, NO, 4);
  else
    wino_dw_fold_m(dw, dU, NI, NO, 2);
}

/* dU[p] += dM[p] V[p]^T over the n columns of a chunk */
static void wino_dw_gemms(float *dU, const float *dM, const float *V, int NI, int NO, int A2, int n,
                          size_t ld) {
  for (int p = 0; p < A2; p++)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, NO, NI, n, 1.0f, dM + p * PS(NO, ld),
                (int)ld, V + p * PS(NI, ld), (int)ld, 1.0f, dU + (size_t)p * NO * NI, NI);
}

void nn_wino_dw(float *dw, float *scratch, const float *x, const float *dy, int NI, int NO, int B,
                int H, int W, int m) {
  const int A = m + 2, A2 = A * A;
  size_t tpi = (size_t)(H / m) * (W / m), ld = wino_ld(m, B, H, W), cstride_x = (size_t)B * H * W;
  float *dU = scratch, *V = dU + (size_t)A2 * NO * NI, *dM = V + A2 * PS(NI, ld);
  float *X8 = dM + A2 * PS(NO, ld);
  memset(dU, 0, sizeof(float) * A2 * NO * NI);
  int ng = B / 8, b8 = 8 * ng;
  if (ng) {
    int gpc = (int)(bv_chunk(m, B, H, W) / (8 * tpi));
    for (int g0 = 0; g0 < ng; g0 += gpc) {
      int n = ng - g0 < gpc ? ng - g0 : gpc;
      bv_input(V, X8, x, cstride_x, 8 * g0, n, NI, H, W, m, ld);
      bv_dout(dM, X8, dy, cstride_x, 8 * g0, n, NO, H, W, m, ld);
      wino_dw_gemms(dU, dM, V, NI, NO, A2, (int)(n * 8 * tpi), ld);
    }
  }
  if (B > b8) {
    size_t nt = (size_t)(B - b8) * tpi, ct = tl_chunk(m, B - b8, H, W);
    for (size_t t0 = 0; t0 < nt; t0 += ct) {
      int n = (int)(nt - t0 < ct ? nt - t0 : ct);
      wino_input(V, x, cstride_x, b8, NI, H, W, m, t0, n, ld);
      tl_dout(dM, dy, cstride_x, b8, NO, H, W, m, t0, n, ld);
      wino_dw_gemms(dU, dM, V, NI, NO, A2, n, ld);
    }
  }
  wino_dw_fold(dw, dU, NI, NO, m);
}
