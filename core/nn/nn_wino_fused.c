/* nn_wino_fused.c: the Winograd convolution of whole groups of 8 samples as a
 * pipeline over small chunks of tiles that stay in L2 (see nn_wino.h).
 *
 * nn_wino.c's unfused way transforms 512 tiles for all 36 positions (4.7 MB
 * of V at 64 channels), runs 36 sgemms and transforms M back: V and M live in
 * L3 and the transforms were bound by their stores and loads (31% of the U-Net
 * inference), the sgemms repacked V and zeroed M on every call (13%). Here:
 *   1. per chunk of nv tile vectors (8 tiles each, one per sample; whole tile
 *      rows or a part of one), per input channel: the chunk's input region of
 *      the 8 sample planes is interleaved (X[row][col][8 samples], 8 x 8
 *      transposes), and the input transform writes V[p] directly in the
 *      micro-kernel's panel layout (panels of FV tile vectors: [panel][ci][FV
 *      * 8]); nv is chosen so that V (36 x NI x 8 nv floats) stays in L2;
 *   2. per block of output channels: M[p] = U[p] V[p] by an 8-wide register
 *      micro-kernel (RK output channels x FV tile vectors, the whole NI sum in
 *      registers: no packing, no zeroing, no beta pass), then the output
 *      transform of the block, one channel at a time through the region
 *      buffer and 8 x 8 transposes into the output planes (+ bias, or added).
 * U is the caller's (NO x NI per position, as nn_wino.c computes it). */
#include <string.h>

#include "nn/nn_simd.h"
#include "nn/nn_wino.h"
#include "nn/nn_wino_tf.h"

#define FV 2             /* tile vectors per micro-kernel panel (16 columns) */
#define RK 6             /* output channels per micro-kernel */
#define VCH (96 * 1024)  /* floats of a chunk's V (384 KiB: stays in the 1 MiB L2) */
#define MCH (64 * 1024)  /* floats of a block's M */
#define PADF 16          /* floats between transform planes (no cache-set aliasing) */

static int chunk_nv(int NI, int A2, int tpi) {
  int nv = VCH / (A2 * NI * 8);
  nv = nv < 1 ? 1 : nv;
  return nv < tpi ? nv : tpi;
}

int nn_wfu_ok(int NI, int NO, int m) {
  int A2 = (m + 2) * (m + 2);
  (void)NO;
  return VCH / (A2 * NI * 8) >= 2;
}

static int block_no(int NO, int A2, int nv) {
  int ob = MCH / (A2 * nv * 8) / RK * RK;
  ob = ob < RK ? RK : ob;
  return ob < NO ? ob : NO;
}

/* A chunk: tile rows ty0 .. ty0+nr-1, tile columns tx0 .. tx0+ntx-1 of a
 * group (whole rows, or a part of one row); its tile vector v is tile
 * (ty0 + v / ntx, tx0 + v % ntx) of the 8 samples. */
typedef struct fchunk {
  int ty0, nr, tx0, ntx;
} fchunk;

static int wrap(int i, int n) { return i < 0 ? i + n : i >= n ? i - n : i; }

/* interleave the chunk's input region (rows ty0*m-1 .. (ty0+nr)*m, columns
 * tx0*m-1 .. (tx0+ntx)*m, wrapped) of the 8 planes p (HW apart) into
 * X[row][col][8]: 8 x 8 transposes over the contiguous middle columns */
TF void region_in(float *X, const float *p, size_t HW, int H, int W, int m, fchunk k) {
  int R = k.nr * m + 2, C = k.ntx * m + 2, n = k.ntx * m;
  for (int lr = 0; lr < R; lr++) {
    const float *src = p + (size_t)wrap(k.ty0 * m - 1 + lr, H) * W;
    float *d = X + (size_t)lr * C * 8;
    int w0 = k.tx0 * m, c = 0;
    for (; c + 8 <= n; c += 8) {
      v8f r[8];
      for (int j = 0; j < 8; j++) r[j] = v8_load(src + (size_t)j * HW + w0 + c);
      tr8(r);
      for (int i = 0; i < 8; i++) v8_store(d + (size_t)(1 + c + i) * 8, r[i]);
    }
    for (; c < n; c++)
      for (int j = 0; j < 8; j++) d[(size_t)(1 + c) * 8 + j] = src[(size_t)j * HW + w0 + c];
    int wl = wrap(w0 - 1, W), wr = wrap(w0 + n, W);
    for (int j = 0; j < 8; j++) {
      d[j] = src[(size_t)j * HW + wl];
      d[(size_t)(C - 1) * 8 + j] = src[(size_t)j * HW + wr];
    }
  }
}

/* prefetch for writing the rows [r0, r0 + nr), columns [c0, c0 + n), of the
 * 8 planes at p (HW apart): the next output channel's region while this one
 * is transformed (the stores of the output were a third of the output
 * transform; the same for the input's loads did not help, it is not done) */
TF void prefetch_rows(float *p, size_t HW, int W, int r0, int nr, int c0, int n) {
  for (int r = 0; r < nr; r++) {
    float *row = p + (size_t)(r0 + r) * W + c0;
    for (int j = 0; j < 8; j++)
      for (int c = 0; c < n; c += 16) __builtin_prefetch(row + (size_t)j * HW + c, 1);
  }
}

/* input transform of the chunk into the panels of V: tile vector v of
 * channel ci at V + q*vs + (v/FV)*NI*FV*8 + ci*pw*8 + (v%FV)*8 for position q,
 * pw the width of v's panel; x holds samples b0..b0+7 (planes HW apart,
 * channels cstride apart); X is the region buffer */
TF void fu_input_m(float *V, size_t vs, float *X, const float *x, size_t cstride, int b0, int NI,
                   int H, int W, int m, fchunk k) {
  const int A = m + 2, A2 = A * A, C = k.ntx * m + 2, nv = k.nr * k.ntx;
  size_t HW = (size_t)H * W;
  v8f D[AMAX * AMAX];
  for (int ci = 0; ci < NI; ci++) {
    region_in(X, x + (size_t)ci * cstride + (size_t)b0 * HW, HW, H, W, m, k);
    for (int v = 0; v < nv; v++) {
      const float *t = X + ((size_t)(v / k.ntx) * m * C + (size_t)(v % k.ntx) * m) * 8;
      for (int a = 0; a < A; a++)
        for (int c = 0; c < A; c++) D[a * A + c] = v8_load(t + ((size_t)a * C + c) * 8);
      for (int c = 0; c < A; c++) m == 4 ? bt4(D + c, D + c, A) : bt2(D + c, D + c, A);
      for (int r = 0; r < A; r++) m == 4 ? bt4(D + r * A, D + r * A, 1) : bt2(D + r * A, D + r * A, 1);
      int pn = v / FV, pw = nv - pn * FV < FV ? nv - pn * FV : FV;
      float *d = V + (size_t)pn * NI * FV * 8 + (size_t)ci * pw * 8 + (v % FV) * 8;
      for (int q = 0; q < A2; q++) v8_store(d + q * vs, D[q]);
    }
  }
}

/* C[r][c] = sum_k U[r][k] Vp[k][c] for R <= 6 rows (U rows ldu apart) and
 * P <= 2 tile vectors (Vp rows P*8 floats), C rows ldc apart. R and P are
 * constants after inlining; the R x P accumulators stay in registers (named
 * variables: GCC at -O2 kept an array of them on the stack) */
#define UK_ROW(r)                                             \
  if (R > r) {                                                \
    float a = U[(r) * ldu + k]; /* vector * scalar: one vbroadcastss */ \
    c##r##0 += b0 * a;                                        \
    if (P > 1) c##r##1 += b1 * a;                             \
  }
#define UK_STORE(r)                                           \
  if (R > r) {                                                \
    v8_store(C + (r) * ldc, c##r##0);                         \
    if (P > 1) v8_store(C + (r) * ldc + 8, c##r##1);          \
  }
TF void uk(float *C, size_t ldc, const float *U, size_t ldu, const float *Vp, int K, int R, int P) {
  const v8f z = v8_set1(0.0f);
  v8f c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z;
  v8f c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
  for (int k = 0; k < K; k++, Vp += P * 8) {
    v8f b0 = v8_load(Vp), b1 = P > 1 ? v8_load(Vp + 8) : z;
    UK_ROW(0) UK_ROW(1) UK_ROW(2) UK_ROW(3) UK_ROW(4) UK_ROW(5)
  }
  UK_STORE(0) UK_STORE(1) UK_STORE(2) UK_STORE(3) UK_STORE(4) UK_STORE(5)
}
#undef UK_ROW
#undef UK_STORE

/* M[p][o - o0][v] for o in [o0, o0 + nb), all positions and tile vectors of the chunk */
NN_HOT
static void fu_gemms(float *M, size_t ms, const float *U, const float *V, size_t vs, int NI,
                     int NO, int A2, int o0, int nb, int nv) {
  size_t ldc = (size_t)nv * 8;
  for (int p = 0; p < A2; p++) {
    const float *Up = U + (size_t)p * NO * NI, *Vq = V + p * vs;
    float *Mp = M + p * ms;
    for (int o = o0; o < o0 + nb; o += RK) {
      int R = o0 + nb - o < RK ? o0 + nb - o : RK;
      for (int pn = 0; pn * FV < nv; pn++) {
        int P = nv - pn * FV < FV ? nv - pn * FV : FV;
        const float *Ur = Up + (size_t)o * NI, *Vp = Vq + (size_t)pn * NI * FV * 8;
        float *C = Mp + (size_t)(o - o0) * ldc + (size_t)pn * FV * 8;
#define UK_CASE(r, p)                          \
  case (r) * 4 + (p):                          \
    uk(C, ldc, Ur, (size_t)NI, Vp, NI, r, p); \
    break;
        switch (R * 4 + P) {
          UK_CASE(6, 2) UK_CASE(6, 1) UK_CASE(5, 2) UK_CASE(5, 1) UK_CASE(4, 2) UK_CASE(4, 1)
          UK_CASE(3, 2) UK_CASE(3, 1) UK_CASE(2, 2) UK_CASE(2, 1) UK_CASE(1, 2) UK_CASE(1, 1)
        }
#undef UK_CASE
      }
    }
  }
}

/* output transform of channels [o0, o0+nb) of the chunk (M rows nv*8 floats)
 * into the chunk's region of out (+ bias, or added), one channel at a time
 * through Y[row][col][8] and 8 x 8 transposes */
TF void fu_output_m(float *out, float *Y, const float *M, size_t ms, const float *bias,
                    size_t cstride, int b0, int H, int W, int m, fchunk k, int o0, int nb,
                    int add) {
  const int A = m + 2, A2 = A * A, n = k.ntx * m, nv = k.nr * k.ntx;
  size_t HW = (size_t)H * W;
  v8f Mv[AMAX * AMAX], Y1[4 * AMAX], T[16];
  for (int ol = 0; ol < nb; ol++) {
    const float *mc = M + (size_t)ol * nv * 8;
    if (ol + 1 < nb)
      prefetch_rows(out + (size_t)(o0 + ol + 1) * cstride + (size_t)b0 * HW, HW, W, k.ty0 * m,
                    k.nr * m, k.tx0 * m, k.ntx * m);
    for (int v = 0; v < nv; v++) {
      for (int q = 0; q < A2; q++) Mv[q] = v8_load(mc + q * ms + v * 8);
      for (int c = 0; c < A; c++) m == 4 ? at4(Y1 + c, Mv + c, A, A) : at2(Y1 + c, Mv + c, A, A);
      for (int r = 0; r < m; r++) m == 4 ? at4(T + r * m, Y1 + r * A, 1, 1) : at2(T + r * m, Y1 + r * A, 1, 1);
      float *y = Y + ((size_t)(v / k.ntx) * m * n + (size_t)(v % k.ntx) * m) * 8;
      for (int r = 0; r < m; r++)
        for (int c = 0; c < m; c++) v8_store(y + ((size_t)r * n + c) * 8, T[r * m + c]);
    }
    float bv = bias ? bias[o0 + ol] : 0.0f;
    float *oc = out + (size_t)(o0 + ol) * cstride + (size_t)b0 * HW;
    for (int lr = 0; lr < k.nr * m; lr++) {
      float *o = oc + (size_t)(k.ty0 * m + lr) * W + k.tx0 * m;
      const float *y = Y + (size_t)lr * n * 8;
      planes8_store(o, HW, y, (size_t)n, bv, add);
    }
  }
}

NN_HOT
static void fu_input(float *V, size_t vs, float *X, const float *x, size_t cstride, int b0, int NI,
                     int H, int W, int m, fchunk k) {
  if (m == 4)
    fu_input_m(V, vs, X, x, cstride, b0, NI, H, W, 4, k);
  else
    fu_input_m(V, vs, X, x, cstride, b0, NI, H, W, 2, k);
}

NN_HOT
static void fu_output(float *out, float *Y, const float *M, size_t ms, const float *bias,
                      size_t cstride, int b0, int H, int W, int m, fchunk k, int o0, int nb,
                      int add) {
  if (m == 4)
    fu_output_m(out, Y, M, ms, bias, cstride, b0, H, W, 4, k, o0, nb, add);
  else
    fu_output_m(out, Y, M, ms, bias, cstride, b0, H, W, 2, k, o0, nb, add);
}

/* the chunks of a group: nr whole tile rows when a row fits in the nvc tile
 * vectors of L2's budget, else a row in `parts` near-equal parts */
typedef struct fplan {
  int nr, parts, nvx; /* nvx: the most tile vectors of a chunk */
  int ob;             /* output channels per block */
  size_t reg, vs, ms; /* floats: region buffer, V and M plane strides */
} fplan;

static fplan plan(int NI, int NO, int H, int W, int m) {
  int A2 = (m + 2) * (m + 2), TH = H / m, TW = W / m, nvc = chunk_nv(NI, A2, TH * TW);
  fplan f;
  f.nr = TW <= nvc ? nvc / TW : 1;
  f.parts = TW <= nvc ? 1 : (TW + nvc - 1) / nvc;
  f.nvx = TW <= nvc ? f.nr * TW : (TW + f.parts - 1) / f.parts;
  f.ob = block_no(NO, A2, f.nvx);
  int cols = (TW + f.parts - 1) / f.parts;
  f.reg = (size_t)(f.nr * m + 2) * (cols * m + 2) * 8;
  f.vs = (size_t)NI * f.nvx * 8 + PADF;
  f.ms = (size_t)f.ob * f.nvx * 8 + PADF;
  return f;
}

size_t nn_wfu_size(int NI, int NO, int H, int W, int m) {
  fplan f = plan(NI, NO, H, W, m);
  size_t A2 = (size_t)(m + 2) * (m + 2);
  return f.reg + A2 * (f.vs + f.ms);
}

void nn_wfu_conv(float *out, float *scratch, const float *x, const float *U, const float *bias,
                 int NI, int NO, int B, int ngr, int H, int W, int m, int add) {
  const int A = m + 2, A2 = A * A, TH = H / m, TW = W / m;
  size_t cstride = (size_t)B * H * W;
  fplan f = plan(NI, NO, H, W, m);
  float *X = scratch, *V = X + f.reg, *M = V + A2 * f.vs;
  for (int g = 0; g < ngr; g++)
    for (int ty = 0; ty < TH; ty += f.nr)
      for (int i = 0; i < f.parts; i++) {
        int a = TW * i / f.parts, b = TW * (i + 1) / f.parts;
        fchunk k = {ty, TH - ty < f.nr ? TH - ty : f.nr, a, b - a};
        int nv = k.nr * k.ntx;
        fu_input(V, f.vs, X, x, cstride, 8 * g, NI, H, W, m, k);
        for (int o0 = 0; o0 < NO; o0 += f.ob) {
          int nb = NO - o0 < f.ob ? NO - o0 : f.ob;
          fu_gemms(M, f.ms, U, V, f.vs, NI, NO, A2, o0, nb, nv);
          fu_output(out, X, M, f.ms, bias, cstride, 8 * g, H, W, m, k, o0, nb, add);
        }
      }
}
