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
 * The transforms run on groups of NG tiles held as structure-of-arrays, so each
 * of the (m+2)^2 values is an 8-wide vector over 8 tiles. */
#include "nn/nn_wino.h"

#include <cblas.h>
#include <string.h>

#include "nn/nn_simd.h"

/* see nn_layers.c */
#if defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__) && !defined(__AVX2__)
#define NN_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define NN_HOT
#endif

#define NG 64            /* tiles per transform group (8 vectors of 8) */
#define NN_WINO_TILES 512 /* tiles per chunk: V and M of a chunk stay in L2/L3 */
#define AMAX 6

static int wino_max = 4;

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

static size_t chunk_tiles(int m, int B, int H, int W) {
  size_t nt = (size_t)B * (H / m) * (W / m);
  return nt < NN_WINO_TILES ? nt : NN_WINO_TILES;
}

size_t nn_wino_size(int NI, int NO, int B, int H, int W, int m) {
  if (!m) return 0;
  size_t A2 = (size_t)(m + 2) * (m + 2), ld = round8(chunk_tiles(m, B, H, W));
  return A2 * ((size_t)NI * NO + ((size_t)NI + NO) * ld);
}

// ----------------------------------------------------------------------------
// 1D transforms; s is the stride between the values (a compile-time constant
// after inlining). Input: B^T d. Output: A^T m. Kernel: G g.

#define TF static inline __attribute__((always_inline))

/* F(4,3), points 0, ±1, ±2, ∞ */
TF void bt4(v8f *o, const v8f *d, int s) {
  v8f d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  v8f four = v8_set1(4.0f), five = v8_set1(5.0f), two = v8_set1(2.0f);
  o[0] = four * d0 - five * d2 + d4;
  o[s] = (d3 + d4) - four * (d1 + d2);
  o[2 * s] = four * (d1 - d2) + (d4 - d3);
  o[3 * s] = two * (d3 - d1) + (d4 - d2);
  o[4 * s] = two * (d1 - d3) + (d4 - d2);
  o[5 * s] = four * d1 - five * d3 + d5;
}

TF void at4(v8f *y, const v8f *m, int s, int ys) {
  v8f a = m[s] + m[2 * s], b = m[s] - m[2 * s], c = m[3 * s] + m[4 * s], d = m[3 * s] - m[4 * s];
  y[0] = m[0] + a + c;
  y[ys] = b + v8_set1(2.0f) * d;
  y[2 * ys] = a + v8_set1(4.0f) * c;
  y[3 * ys] = b + v8_set1(8.0f) * d + m[5 * s];
}

/* F(2,3), points 0, ±1, ∞ */
TF void bt2(v8f *o, const v8f *d, int s) {
  v8f d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s];
  o[0] = d0 - d2;
  o[s] = d1 + d2;
  o[2 * s] = d2 - d1;
  o[3 * s] = d1 - d3;
}

TF void at2(v8f *y, const v8f *m, int s, int ys) {
  y[0] = m[0] + m[s] + m[2 * s];
  y[ys] = m[s] - m[2 * s] - m[3 * s];
}

static void g1d(float *u, const float *g, int s, int us, int m) {
  float g0 = g[0], g1 = g[s], g2 = g[2 * s];
  if (m == 4) {
    u[0] = g0 * (1.0f / 4);
    u[us] = -(g0 + g1 + g2) * (1.0f / 6);
    u[2 * us] = -(g0 - g1 + g2) * (1.0f / 6);
    u[3 * us] = g0 * (1.0f / 24) + g1 * (1.0f / 12) + g2 * (1.0f / 6);
    u[4 * us] = g0 * (1.0f / 24) - g1 * (1.0f / 12) + g2 * (1.0f / 6);
    u[5 * us] = g2;
  } else {
    u[0] = g0;
    u[us] = 0.5f * (g0 + g1 + g2);
    u[2 * us] = 0.5f * (g0 - g1 + g2);
    u[3 * us] = g2;
  }
}

/* U[p][o][i] = G k G^T with k = w[o][i] (w is (NO, NI, 3, 3)), or with flip the
 * kernel of the input gradient, k[o][i][a][b] = w[i][o][2-a][2-b] (w is (NI, NO, 3, 3)). */
static void wino_weights(float *U, const float *w, int NI, int NO, int m, int flip) {
  int A = m + 2;
  size_t plane = (size_t)NO * NI;
  for (int o = 0; o < NO; o++)
    for (int i = 0; i < NI; i++) {
      float g[9], t[AMAX * 3], u[AMAX * AMAX];
      const float *k = w + ((size_t)(flip ? i * NO + o : o * NI + i)) * 9;
      for (int q = 0; q < 9; q++) g[q] = k[flip ? 8 - q : q];
      for (int c = 0; c < 3; c++) g1d(t + c, g + c, 3, 3, m);     /* t = G g   (A x 3) */
      for (int r = 0; r < A; r++) g1d(u + r * A, t + r * 3, 1, 1, m); /* u = t G^T (A x A) */
      for (int p = 0; p < A * A; p++) U[p * plane + (size_t)o * NI + i] = u[p];
    }
}

/* input transform of tiles [t0, t0+n) of x (NI, B, H, W) into V[p][ci][ld] */
TF void wino_input_m(float *V, const float *x, int NI, int B, int H, int W, int m, size_t t0,
                     int n, size_t ld) {
  const int A = m + 2, A2 = A * A, TW = W / m, tpi = (H / m) * TW;
  size_t HW = (size_t)H * W, cstride = (size_t)B * HW;
  int off[NG][AMAX * AMAX];
  size_t boff[NG];
  v8f D[AMAX * AMAX];
  for (int g0 = 0; g0 < n; g0 += NG) {
    int ng = n - g0 < NG ? n - g0 : NG, nv = (ng + 7) / 8;
    for (int l = 0; l < nv * 8; l++) {
      size_t t = t0 + g0 + (l < ng ? l : 0);
      int b = (int)(t / tpi), r = (int)(t % tpi), ty = r / TW, tx = r % TW;
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
        for (int q = 0; q < A2; q++) v8_store(vc + (size_t)q * NI * ld + v * 8, D[q]);
      }
    }
  }
}

/* output transform of tiles [t0, t0+n) from M[p][co][ld] into out (NO, B, H, W):
 * out = (add ? out : 0) + A^T M A + bias */
TF void wino_output_m(float *out, const float *M, const float *bias, int NO, int B, int H, int W,
                      int m, size_t t0, int n, size_t ld, int add) {
  const int A = m + 2, A2 = A * A, TW = W / m, tpi = (H / m) * TW;
  size_t HW = (size_t)H * W, cstride = (size_t)B * HW;
  size_t ooff[NG];
  v8f Mv[AMAX * AMAX], Y1[4 * AMAX], Y[16];
  float yv[16][8];
  for (int g0 = 0; g0 < n; g0 += NG) {
    int ng = n - g0 < NG ? n - g0 : NG, nv = (ng + 7) / 8;
    for (int l = 0; l < ng; l++) {
      size_t t = t0 + g0 + l;
      int b = (int)(t / tpi), r = (int)(t % tpi), ty = r / TW, tx = r % TW;
      ooff[l] = (size_t)b * HW + (size_t)ty * m * W + (size_t)tx * m;
    }
    for (int co = 0; co < NO; co++) {
      float *oc = out + (size_t)co * cstride, bv = bias ? bias[co] : 0.0f;
      const float *mc = M + (size_t)co * ld + g0;
      for (int v = 0; v < nv; v++) {
        for (int q = 0; q < A2; q++) Mv[q] = v8_load(mc + (size_t)q * NO * ld + v * 8);
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

NN_HOT
static void wino_input(float *V, const float *x, int NI, int B, int H, int W, int m, size_t t0,
                       int n, size_t ld) {
  if (m == 4)
    wino_input_m(V, x, NI, B, H, W, 4, t0, n, ld);
  else
    wino_input_m(V, x, NI, B, H, W, 2, t0, n, ld);
}

NN_HOT
static void wino_output(float *out, const float *M, const float *bias, int NO, int B, int H,
                        int W, int m, size_t t0, int n, size_t ld, int add) {
  if (m == 4)
    wino_output_m(out, M, bias, NO, B, H, W, 4, t0, n, ld, add);
  else
    wino_output_m(out, M, bias, NO, B, H, W, 2, t0, n, ld, add);
}

void nn_wino_conv(float *out, float *scratch, const float *x, const float *w, const float *bias,
                  int NI, int NO, int B, int H, int W, int m, int add, int flip) {
  const int A = m + 2, A2 = A * A;
  size_t nt = (size_t)B * (H / m) * (W / m), ct = chunk_tiles(m, B, H, W), ld = round8(ct);
  float *U = scratch, *V = U + (size_t)A2 * NO * NI, *M = V + (size_t)A2 * NI * ld;
  wino_weights(U, w, NI, NO, m, flip);
  for (size_t t0 = 0; t0 < nt; t0 += ct) {
    int n = (int)(nt - t0 < ct ? nt - t0 : ct);
    wino_input(V, x, NI, B, H, W, m, t0, n, ld);
    for (int p = 0; p < A2; p++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, NO, n, NI, 1.0f,
                  U + (size_t)p * NO * NI, NI, V + (size_t)p * NI * ld, (int)ld, 0.0f,
                  M + (size_t)p * NO * ld, (int)ld);
    wino_output(out, M, bias, NO, B, H, W, m, t0, n, ld, add);
  }
}
