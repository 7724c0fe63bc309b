/* rng.h: Philox4x32-10 counter-based random numbers (Salmon et al., SC'11).
 *
 * A stream is fully determined by (seed, stream): trajectory b of a batch,
 * sample s of a request, or case c of an evaluation each get their own
 * stream, so results do not depend on thread count or on the order in which
 * streams are consumed. A stream has 2^64 blocks of 4 x 32 bits. */
#ifndef SB_RNG_H
#define SB_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rng {
  uint32_t key[2];
  uint64_t stream;  /* counter words 2..3 */
  uint64_t block;   /* counter words 0..1 */
  uint32_t buf[4];  /* last generated block */
  int used;         /* words of buf already consumed (4 = empty) */
  int has_spare;    /* Box-Muller keeps the second normal */
  double spare;
} rng;

/* Starts the stream (seed, stream) at its first block. */
void rng_init(rng *r, uint64_t seed, uint64_t stream);

/* Raw Philox4x32-10 block function: out = philox(counter, key). */
void rng_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

uint32_t rng_u32(rng *r);
uint64_t rng_u64(rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform(rng *r);
/* Uniform in (0, 1): never 0, safe under log(). */
double rng_uniform_pos(rng *r);
/* Uniform integer in [0, n), unbiased (n >= 1). */
uint64_t rng_below(rng *r, uint64_t n);
/* Standard normal (Box-Muller on two uniforms). */
double rng_normal(rng *r);
void rng_fill_normal(rng *r, double *x, size_t n);
void rng_fill_normal_f(rng *r, float *x, size_t n);

#endif
