/* nn_simd.h: 8-wide float vectors (GCC vector extensions) for the nn kernels
 * (internal). Compiled per target clone: AVX2/FMA registers in the x86-64-v3
 * clone, pairs of SSE registers in the portable one. Loads and stores are
 * unaligned. */
#ifndef SB_NN_SIMD_H
#define SB_NN_SIMD_H

#include <stdint.h>
#include <string.h>

#include "nn/nn_math.h"

/* the helpers are static and always inlined, so the vector-ABI note does not apply */
#pragma GCC diagnostic ignored "-Wpsabi"
#define V8_INLINE static inline __attribute__((always_inline))

/* NN_HOT: hot loops get an AVX2+FMA clone picked at run time; the portable build keeps
 * a baseline x86-64 version. Not under ASan or TSan (their instrumented ifunc
 * resolvers run before the sanitizer's runtime is up: TSan crashes there) nor
 * when the whole build already targets AVX2 (NATIVE=1; GCC 12 also ICEs on
 * clones there). */
#if defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__) && !defined(__AVX2__)
#define NN_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define NN_HOT
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

V8_INLINE v8f v8_load(const float *p) {
  v8f v;
  memcpy(&v, p, sizeof v);
  return v;
}
V8_INLINE void v8_store(float *p, v8f v) { memcpy(p, &v, sizeof v); }
V8_INLINE v8f v8_set1(float x) { return (v8f){x, x, x, x, x, x, x, x}; }
V8_INLINE v8f v8_select(v8i m, v8f a, v8f b) { return (v8f)(((v8i)a & m) | ((v8i)b & ~m)); }
V8_INLINE float v8_hsum(v8f v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* the vector twin of nn_expf (same reduction and polynomial, nn_math.h) */
V8_INLINE v8f v8_exp(v8f x) {
  x = v8_select(x < v8_set1(-87.0f), v8_set1(-87.0f), x);
  x = v8_select(x > v8_set1(88.0f), v8_set1(88.0f), x);
  v8f n, p;
  NN_EXP_POLY(v8f, x, n, p);
  v8i i = (__builtin_convertvector(n, v8i) + 127) << 23;
  return p * (v8f)i;
}

#endif
