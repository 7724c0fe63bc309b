/* obs.h: observation operators y = A x or y = f(A x) (+ Gaussian noise).
 *
 * An operator is bound to a state shape [C][H][W] when it is built; A is kept
 * as sparse rows (CSR), so identity/subsample/stations cost O(n_obs) and a
 * dense matrix costs O(n_obs * dim). The JSON form is the same in requests,
 * model metadata and the CLI:
 *   {"type":"identity"}
 *   {"type":"subsample","stride":2,"offset":0}
 *       1D states: along the nodes. 2D states (H > 1): a number applies to both
 *       axes, or per axis [along H, along W]: "stride":[2,4],"offset":[0,1]
 *   {"type":"stations","indices":[0,5,9]}  (flat indices into [C][H][W])
 *   {"type":"stations","points":[[row,col],...]}  grid points, every channel
 *   {"type":"random_stations","fraction":0.05,"seed":0}  (or "count": n) distinct
 *       grid points drawn from the seed, every channel; serialization writes
 *       "count" and the drawn "points"
 *   {"type":"kernel_stations","block":4,"sigma_k":0.8,"radius":2,"seed":0}
 *       (or with explicit "positions":[...]; serialization always writes them)
 *   {"type":"coarsen","factor":2}          (block mean per channel; 2D: factor x
 *       factor, or per axis "factor":[fh,fw])
 *   {"type":"vorticity","factor":4,"method":"spectral"}  2D velocity states
 *       (C = 2: u along W, v along H) on the periodic [0, 2 pi)^2: the curl
 *       dv/dx - du/dy at every grid point (spectral differentiation, the Nyquist
 *       mode's derivative zero, or "method":"fd": 2nd-order central differences),
 *       then block means over factor (number or [fh,fw], default 1)
 *   {"type":"dense","matrix":[[...], ...]} (n_obs rows of dim numbers)
 * subsample, coarsen, stations with points and random_stations take an optional
 * "channels":[...] (default every channel); observations are ordered channel by
 * channel, then row-major. Missing observations are NaN in y arrays (null in JSON).
 *
 * Nonlinear operators wrap a linear one with an elementwise function f:
 *   {"type":"arctan","of":{...linear operator...}}   y_i = atan((A x)_i)
 *   {"type":"square","of":{...}}                     y_i = (A x)_i^2
 *   {"type":"abs","of":{...}}                        y_i = |(A x)_i|
 * The CSR below is then the inner A (kind, parameters, locations and
 * distances are the inner operator's) and fn says which f. They do not nest:
 * "of" must be a linear operator (arctan of square is refused). */
#ifndef SB_OBS_H
#define SB_OBS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/sb_error.h"

typedef enum {
  OBS_IDENTITY,
  OBS_SUBSAMPLE,
  OBS_STATIONS,
  OBS_KERNEL_STATIONS,
  OBS_COARSEN,
  OBS_DENSE,
  OBS_RANDOM_STATIONS,
  OBS_VORTICITY
} obs_kind;

/* The elementwise function of a nonlinear operator (OBS_FN_NONE: linear). */
typedef enum { OBS_FN_NONE = 0, OBS_FN_ARCTAN, OBS_FN_SQUARE, OBS_FN_ABS } obs_fn;

typedef struct obs_op {
  obs_kind kind;
  int C, H, W;       /* bound state shape */
  int state_dim;     /* C*H*W */
  int n_obs;
  /* A as CSR: row i has entries row_ptr[i]..row_ptr[i+1]-1 */
  int *row_ptr;
  int *col;
  double *val;
  /* parameters kept for serialization */
  int stride, offset, factor, block, radius;
  double sigma_k;
  uint64_t seed;
  int n_idx;
  int *idx;          /* stations: indices or points (h * W + w); kernel_stations: positions */
  int stride_h, offset_h, factor_h; /* 2D: along H (stride, offset, factor: along W) */
  int n_chan;        /* channels observed (subsample, coarsen, points, random_stations) */
  int *chan;
  int points;        /* stations given as points */
  int fd;            /* vorticity by finite differences */
  obs_fn fn;         /* elementwise function after A (OBS_FN_NONE: linear) */
} obs_op;

/* Builds an operator from its JSON description for states of shape [C][H][W].
 * On failure *out is NULL and err says which field is wrong. */
int obs_from_json(obs_op **out, const json_t *j, int C, int H, int W, sb_error *err);
/* Same from JSON text. */
int obs_from_string(obs_op **out, const char *text, int C, int H, int W, sb_error *err);
/* New reference to the operator's JSON description (explicit, round-trips). */
json_t *obs_to_json(const obs_op *op);
void obs_free(obs_op *op);
const char *obs_kind_name(obs_kind k);
/* "arctan", "square", "abs" ("linear" for OBS_FN_NONE). */
const char *obs_fn_name(obs_fn f);
/* The operator's JSON type: the function's name when nonlinear, else the kind's. */
const char *obs_type_name(const obs_op *op);
/* 1 for y = A x, 0 for y = f(A x) */
int obs_is_linear(const obs_op *op);
/* f and f' at s (f' of abs at 0 is 0) */
double obs_fn_value(obs_fn f, double s);
double obs_fn_deriv(obs_fn f, double s);

/* y[b] = A x[b] (nonlinear: f(A x[b])) for B states: x [B][state_dim], y [B][n_obs]. */
void obs_apply(const obs_op *op, const double *x, double *y, size_t B);
/* Single precision variant (states from a network). */
void obs_apply_f(const obs_op *op, const float *x, float *y, size_t B);
/* y[b] = f(A x[b]) as obs_apply and dy[b] = f'(A x[b]), the diagonal of the
 * Jacobian J = diag(f'(A x)) A (1 everywhere for a linear operator). */
void obs_apply_deriv(const obs_op *op, const double *x, double *y, double *dy, size_t B);
/* g[b] += J(x[b])^T r[b] = A^T (f'(A x[b]) * r[b]): the Jacobian-transpose
 * product at the states x [B][state_dim] (linear: A^T r, x unused). */
void obs_jacobian_t(const obs_op *op, const double *x, const double *r, double *g, size_t B);
/* g[b] += A^T r[b] with the linear part A (the inner operator of a nonlinear
 * one): r [B][n_obs], g [B][state_dim]. */
void obs_apply_adjoint(const obs_op *op, const double *r, double *g, size_t B);
void obs_apply_adjoint_f(const obs_op *op, const float *r, float *g, size_t B);
/* Dense copy of A (the linear part), row-major [n_obs][state_dim], caller frees. */
double *obs_dense(const obs_op *op);

/* Where things are, for localization (LETKF). Locations are (row, col) in grid
 * units of the bound [C][H][W] state; the grid is periodic in both axes (a
 * torus; a 1D state is a ring of W nodes with row 0).
 *   state component c: the grid point of c (every channel of a point shares it);
 *   observation row i: 2D coarsen and vorticity: the centre of its block
 *   ((fh-1)/2, (fw-1)/2 past the block's first point; a grid point at factor 1);
 *   every other case (stations, subsample, random_stations, 1D operators,
 *   dense): the grid point of its largest |weight| entry (the first of ties),
 *   which for 1D coarsen is the block's first node. */
void obs_location(const obs_op *op, int row, double loc[2]);
void obs_state_location(const obs_op *op, int c, double loc[2]);
/* Euclidean distance on the periodic H x W grid: each axis wraps (|d| or
 * period - |d|, the smaller). */
double obs_distance(const obs_op *op, const double a[2], const double b[2]);

/* Observation noise: one std per observed component (a scalar is broadcast). */
typedef struct obs_noise {
  int n;
  double *std;
} obs_noise;

/* Parses a positive finite number or an array of n_obs of them. */
int obs_noise_from_json(obs_noise *out, const json_t *j, int n_obs, sb_error *err);
int obs_noise_scalar(obs_noise *out, double std, int n_obs, sb_error *err);
json_t *obs_noise_to_json(const obs_noise *nz);
void obs_noise_free(obs_noise *nz);
/* y[b][i] += std[i] * N(0,1) with the RNG stream (seed, stream0 + b). */
void obs_add_noise(const obs_noise *nz, double *y, size_t B, uint64_t seed, uint64_t stream0);

/* Parses a window of observations: an array of W rows, each either null
 * (nothing observed at that time) or an array of n_obs numbers or nulls.
 * Missing entries become NaN in y [W][n_obs]. Rejects wrong lengths,
 * non-numbers and non-finite numbers with a message naming the position. */
int obs_window_from_json(const json_t *rows, int W, int n_obs, double *y, sb_error *err);
/* Number of observed (non-NaN) entries in y[n]. */
size_t obs_count_observed(const double *y, size_t n);

#endif
