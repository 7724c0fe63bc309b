/* nn_math.h: small inline math shared by the nn kernels (internal). */
#ifndef SB_NN_MATH_H
#define SB_NN_MATH_H

#include <stdint.h>
#include <string.h>

/* Vectorizable exp(x) for float: range reduction x = n ln2 + r, |r| <= ln2/2,
 * degree-6 Taylor polynomial (relative error < 2e-7, about 2 ulp), 2^n built in
 * the exponent bits. Inputs are clamped to [-87, 88] (no inf, no denormals). */
/* The reduction and polynomial shared by nn_expf and its vector twin v8_exp
 * (nn_simd.h): x already clamped; T is float or an 8-wide float vector
 * (GCC vector extensions broadcast the scalar constants). Sets n (the power
 * of two) and p (exp of the remainder). */
#define NN_EXP_POLY(T, x, n, p)                                              \
  do {                                                                       \
    n = ((x) * 1.44269504088896341f + 12582912.0f) - 12582912.0f;            \
    T r_ = (x) - n * 0.693145751953125f;                                     \
    r_ = r_ - n * 1.428606765330187045e-06f;                                 \
    p = r_ * (1.0f / 720.0f) + 1.0f / 120.0f;                                \
    p = p * r_ + 1.0f / 24.0f;                                               \
    p = p * r_ + 1.0f / 6.0f;                                                \
    p = p * r_ + 0.5f;                                                       \
    p = p * r_ + 1.0f;                                                       \
    p = p * r_ + 1.0f;                                                       \
  } while (0)

static inline float nn_expf(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  float n, p;
  NN_EXP_POLY(float, x, n, p);
  int32_t i = ((int32_t)n + 127) << 23;
  float s;
  memcpy(&s, &i, sizeof s);
  return p * s;
}

static inline float nn_sigmoidf(float x) { return 1.0f / (1.0f + nn_expf(-x)); }

#endif
