#include "util/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
  uint64_t p = (uint64_t)a * b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

void rng_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(PHILOX_M0, c0, &hi0, &lo0);
    mulhilo(PHILOX_M1, c2, &hi1, &lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void rng_init(rng *r, uint64_t seed, uint64_t stream) {
  r->key[0] = (uint32_t)seed;
  r->key[1] = (uint32_t)(seed >> 32);
  r->stream = stream;
  r->block = 0;
  r->used = 4;
  r->has_spare = 0;
  r->spare = 0.0;
}

static void refill(rng *r) {
  uint32_t ctr[4] = {(uint32_t)r->block, (uint32_t)(r->block >> 32),
                     (uint32_t)r->stream, (uint32_t)(r->stream >> 32)};
  rng_philox4x32(ctr, r->key, r->buf);
  r->block++;
  r->used = 0;
}

uint32_t rng_u32(rng *r) {
  if (r->used >= 4) refill(r);
  return r->buf[r->used++];
}

uint64_t rng_u64(rng *r) {
  uint64_t hi = rng_u32(r);
  return (hi << 32) | rng_u32(r);
}

double rng_uniform(rng *r) {
  return (double)(rng_u64(r) >> 11) * 0x1.0p-53;
}

double rng_uniform_pos(rng *r) {
  return ((double)(rng_u64(r) >> 11) + 0.5) * 0x1.0p-53;
}

uint64_t rng_below(rng *r, uint64_t n) {
  if (n <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do v = rng_u64(r); while (v >= limit);
  return v % n;
}

double rng_normal(rng *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  double u1 = rng_uniform_pos(r), u2 = rng_uniform(r);
  double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586476925 * u2;
  r->spare = rad * sin(th);
  r->has_spare = 1;
  return rad * cos(th);
}

void rng_fill_normal(rng *r, double *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = rng_normal(r);
}

void rng_fill_normal_f(rng *r, float *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(r);
}
