/* nn_wino_tf.h: the 1D Winograd transforms and the 8 x 8 transpose shared by
 * nn_wino.c and nn_wino_fused.c (internal; static, always inlined). s is the
 * stride between the values (a compile-time constant after inlining).
 * Input: B^T d. Output: A^T m. */
#ifndef SB_NN_WINO_TF_H
#define SB_NN_WINO_TF_H

#include "nn/nn_simd.h"

#define TF static inline __attribute__((always_inline))
#define AMAX 6

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

/* r[j][i] -> r[i][j] (8 x 8 floats in 8 vectors) */
TF void tr8(v8f *r) {
  const v8i lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
  const v8i s01 = {0, 1, 8, 9, 4, 5, 12, 13}, s23 = {2, 3, 10, 11, 6, 7, 14, 15};
  const v8i plo = {0, 1, 2, 3, 8, 9, 10, 11}, phi = {4, 5, 6, 7, 12, 13, 14, 15};
  v8f t[8], s[8];
  for (int k = 0; k < 4; k++) {
    t[2 * k] = __builtin_shuffle(r[2 * k], r[2 * k + 1], lo);
    t[2 * k + 1] = __builtin_shuffle(r[2 * k], r[2 * k + 1], hi);
  }
  for (int h = 0; h < 2; h++) { /* h = 0: rows 0-3, h = 1: rows 4-7 */
    s[4 * h + 0] = __builtin_shuffle(t[4 * h], t[4 * h + 2], s01);
    s[4 * h + 1] = __builtin_shuffle(t[4 * h], t[4 * h + 2], s23);
    s[4 * h + 2] = __builtin_shuffle(t[4 * h + 1], t[4 * h + 3], s01);
    s[4 * h + 3] = __builtin_shuffle(t[4 * h + 1], t[4 * h + 3], s23);
  }
  for (int k = 0; k < 4; k++) {
    r[k] = __builtin_shuffle(s[k], s[4 + k], plo);
    r[4 + k] = __builtin_shuffle(s[k], s[4 + k], phi);
  }
}


/* Interleaved 8-lane values y[i * 8 + j] (i < n) back to 8 planes o + j * HW + i, plus bv,
 * added onto o when add: one transpose per 8 pixels, then the n % 8 left one by one. */
TF void planes8_store(float *o, size_t HW, const float *y, size_t n, float bv, int add) {
  v8f vb = v8_set1(bv);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f r[8];
    for (int k = 0; k < 8; k++) r[k] = v8_load(y + (i + k) * 8);
    tr8(r);
    for (int j = 0; j < 8; j++) {
      float *oj = o + (size_t)j * HW + i;
      v8_store(oj, add ? v8_load(oj) + (r[j] + vb) : r[j] + vb);
    }
  }
  for (; i < n; i++)
    for (int j = 0; j < 8; j++) {
      float *oj = o + (size_t)j * HW + i;
      *oj = add ? *oj + (y[i * 8 + j] + bv) : y[i * 8 + j] + bv;
    }
}

#endif
