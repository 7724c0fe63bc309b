/* sim.h: the generic simulator interface every estimator, the evaluator and
 * the server use. A system has a state of `dim` doubles laid out as
 * [channels][height][width] (1D systems: height = 1), a deterministic
 * transition over one observation interval, and an initial distribution.
 *
 * Time: index t counts observation intervals. For a stationary preset
 * (l96-sakov) the initial distribution is already the climatology, so t does
 * not matter; for a time-varying preset (l96-thesis) the state at index t is
 * x_0 ~ p_0 advanced t intervals and p(x_t) changes with t.
 *
 * linear-gauss (lingauss.h) is a linear-Gaussian system with a known
 * posterior: a smooth stationary Gaussian field advected one node per
 * interval, for checking any estimator against the exact answer. */
#ifndef SB_SIM_H
#define SB_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "util/sb_error.h"

typedef struct sim sim;

struct sim {
  char preset[32];   /* "l96-sakov", "l96-thesis", "kolmogorov", "kolmogorov-t", "linear-gauss" */
  char system[32];   /* "lorenz96", "kolmogorov", "linear-gaussian" */
  int channels, height, width;
  int dim;           /* channels * height * width */
  double dt;         /* model time between two observations */
  int stationary;    /* 1: p(x_t) does not depend on t */
  long t_max;        /* largest supported time index (inclusive) */
  /* Draws B initial states x_0 into x [B][dim]; state b uses the RNG stream
   * (seed, stream0 + b). For stationary presets this includes the spin-up,
   * so x_0 is on the attractor. */
  int (*init)(const sim *s, double *x, size_t B, uint64_t seed, uint64_t stream0, sb_error *err);
  /* Advances B states in place by n observation intervals (n >= 0). */
  int (*advance)(const sim *s, double *x, size_t B, long n, sb_error *err);
  void (*free)(sim *s);
  /* Optional (NULL when the system has no adjoint: Kolmogorov, linear-gauss):
   * one state advanced one observation interval, y = M(x) (y may be NULL),
   * and, when u is not NULL, xbar = (dM/dx)^T u. work: step_vjp_work
   * doubles; no state is kept, so threads may call it at once with their
   * own work. Used by the dynamics term of the guided samplers (diff_dyn.h). */
  void (*step_vjp)(const sim *s, const double *x, const double *u, double *y, double *xbar, double *work);
  size_t step_vjp_work;
  void *impl;
  double param[8];   /* system parameters, e.g. F, integration dt, spin-up */
  /* Rough work of one state, in floating-point operations, for the work
   * and memory estimates made before a job is accepted and for chunking
   * work between cancel checks: one init (spin-up included) and one
   * advance by one observation interval. */
  double flops_init, flops_step;
};

/* Creates the simulator for a preset name. N <= 0 picks the preset's default
 * (l96-sakov: 40, l96-thesis: 32; l96-thesis accepts 8..256; linear-gauss:
 * 16, accepts 4..1024). The Kolmogorov presets (kolmogorov.h) have a fixed
 * state of 2 x 32 x 32: N must be <= 0 or 32. */
int sim_create(sim **out, const char *preset, int N, sb_error *err);
void sim_free(sim *s);

/* Convenience: draws B states at time index t: init, then advance t. */
int sim_sample_at(const sim *s, double *x, size_t B, long t, uint64_t seed, uint64_t stream0,
                  sb_error *err);

/* The shape of one state for files and clients: [W] for a 1D system with one
 * channel (Lorenz96), [C][W] for a 1D system with channels, [C][H][W] for a 2D
 * system. Returns the number of dimensions (1..3) written to shape. */
int sim_state_shape(const sim *s, size_t shape[3]);

/* Names of the known presets, NULL-terminated. */
extern const char *const sim_presets[];

#endif
