#include "obs/obs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonb.h"
#include "util/rng.h"

const char *obs_kind_name(obs_kind k) {
  switch (k) {
  case OBS_IDENTITY: return "identity";
  case OBS_SUBSAMPLE: return "subsample";
  case OBS_STATIONS: return "stations";
  case OBS_KERNEL_STATIONS: return "kernel_stations";
  case OBS_COARSEN: return "coarsen";
  case OBS_DENSE: return "dense";
  case OBS_RANDOM_STATIONS: return "random_stations";
  case OBS_VORTICITY: return "vorticity";
  }
  return "?";
}

const char *obs_fn_name(obs_fn f) {
  switch (f) {
  case OBS_FN_NONE: return "linear";
  case OBS_FN_ARCTAN: return "arctan";
  case OBS_FN_SQUARE: return "square";
  case OBS_FN_ABS: return "abs";
  }
  return "?";
}

const char *obs_type_name(const obs_op *op) { return op->fn ? obs_fn_name(op->fn) : obs_kind_name(op->kind); }

int obs_is_linear(const obs_op *op) { return op->fn == OBS_FN_NONE; }

double obs_fn_value(obs_fn f, double s) {
  switch (f) {
  case OBS_FN_NONE: return s;
  case OBS_FN_ARCTAN: return atan(s);
  case OBS_FN_SQUARE: return s * s;
  case OBS_FN_ABS: return fabs(s);
  }
  return s;
}

double obs_fn_deriv(obs_fn f, double s) {
  switch (f) {
  case OBS_FN_NONE: return 1.0;
  case OBS_FN_ARCTAN: return 1.0 / (1.0 + s * s);
  case OBS_FN_SQUARE: return 2.0 * s;
  case OBS_FN_ABS: return s > 0 ? 1.0 : s < 0 ? -1.0 : 0.0;
  }
  return 1.0;
}

void obs_free(obs_op *op) {
  if (!op) return;
  free(op->row_ptr);
  free(op->col);
  free(op->val);
  free(op->idx);
  free(op->chan);
  free(op);
}

/* Allocates CSR storage for n_obs rows with nnz entries in total. */
static int alloc_csr(obs_op *op, int n_obs, size_t nnz, sb_error *err) {
  op->n_obs = n_obs;
  op->row_ptr = calloc((size_t)n_obs + 1, sizeof *op->row_ptr);
  op->col = malloc((nnz ? nnz : 1) * sizeof *op->col);
  op->val = malloc((nnz ? nnz : 1) * sizeof *op->val);
  if (!op->row_ptr || !op->col || !op->val) return sb_fail(err, SB_ENOMEM, "operator: out of memory");
  return SB_OK;
}

/* Reads an optional integer field; *v keeps its default when absent. */
static int get_int(const json_t *j, const char *key, int *v, long lo, long hi, sb_error *err) {
  json_t *x = json_object_get(j, key);
  if (!x) return SB_OK;
  if (!json_is_integer(x))
    return sb_fail(err, SB_EINVAL, "operator.%s must be an integer", key);
  json_int_t i = json_integer_value(x);
  if (i < lo || i > hi)
    return sb_fail(err, SB_ERANGE, "operator.%s = %lld is outside %ld..%ld", key, (long long)i, lo, hi);
  *v = (int)i;
  return SB_OK;
}

static int get_num(const json_t *j, const char *key, double *v, double lo, double hi, sb_error *err) {
  json_t *x = json_object_get(j, key);
  if (!x) return SB_OK;
  if (!json_is_number(x)) return sb_fail(err, SB_EINVAL, "operator.%s must be a number", key);
  double d = json_number_value(x);
  if (!isfinite(d) || d < lo || d > hi)
    return sb_fail(err, SB_ERANGE, "operator.%s = %g is outside %g..%g", key, d, lo, hi);
  *v = d;
  return SB_OK;
}

/* Reads an integer array field of length n_expect (n_expect < 0: any >= 1)
 * with values in 0..dim-1 into a malloc'd *out. */
static int get_index_array(const json_t *j, const char *key, int dim, int n_expect, int **out, int *n,
                           sb_error *err) {
  json_t *a = json_object_get(j, key);
  if (!json_is_array(a)) return sb_fail(err, SB_EINVAL, "operator.%s must be an array of integers", key);
  size_t len = json_array_size(a);
  if (len == 0) return sb_fail(err, SB_EINVAL, "operator.%s must not be empty", key);
  if (n_expect >= 0 && len != (size_t)n_expect)
    return sb_fail(err, SB_EINVAL, "operator.%s has %zu entries, expected %d", key, len, n_expect);
  if (len > (size_t)dim * 4)
    return sb_fail(err, SB_ERANGE, "operator.%s has %zu entries, more than 4x the state size %d", key, len, dim);
  int *v = malloc(len * sizeof *v);
  if (!v) return sb_fail(err, SB_ENOMEM, "out of memory");
  for (size_t i = 0; i < len; i++) {
    json_t *e = json_array_get(a, i);
    if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= dim) {
      free(v);
      return sb_fail(err, SB_ERANGE, "operator.%s[%zu] must be an integer in 0..%d", key, i, dim - 1);
    }
    v[i] = (int)json_integer_value(e);
  }
  *out = v;
  *n = (int)len;
  return SB_OK;
}

static int check_keys(const json_t *j, const char *const *allowed, sb_error *err) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)j, key, v) {
    int ok = 0;
    for (int i = 0; allowed[i]; i++) ok |= !strcmp(key, allowed[i]);
    if (!ok) return sb_fail(err, SB_EINVAL, "operator: unknown field '%s'", key);
  }
  return SB_OK;
}

/* A per-axis integer: a number (2D: both axes; 1D: along W, H gets 1) or, for
 * a 2D state, an array [along H, along W]. Keeps the defaults when absent. */
static int get_pair(const json_t *j, const char *key, const obs_op *op, int *h, int *w, long lo, long hi_h,
                    long hi_w, sb_error *err) {
  json_t *x = json_object_get(j, key);
  if (!x) return SB_OK;
  long v[2];
  if (json_is_integer(x)) {
    v[0] = v[1] = (long)json_integer_value(x);
    if (op->H == 1) v[0] = lo == 0 ? 0 : 1; /* a 1D state has one row */
  } else if (json_is_array(x) && json_array_size(x) == 2 && op->H > 1 &&
             json_is_integer(json_array_get(x, 0)) && json_is_integer(json_array_get(x, 1))) {
    v[0] = (long)json_integer_value(json_array_get(x, 0));
    v[1] = (long)json_integer_value(json_array_get(x, 1));
  } else {
    return sb_fail(err, SB_EINVAL, op->H > 1 ? "operator.%s must be an integer or [along H, along W]"
                                             : "operator.%s must be an integer", key);
  }
  if (op->H > 1 && (v[0] < lo || v[0] > hi_h))
    return sb_fail(err, SB_ERANGE, "operator.%s = %ld along H is outside %ld..%ld", key, v[0], lo, hi_h);
  if (v[1] < lo || v[1] > hi_w)
    return sb_fail(err, SB_ERANGE, "operator.%s = %ld%s is outside %ld..%ld", key, v[1], op->H > 1 ? " along W" : "",
                   lo, hi_w);
  *h = (int)v[0];
  *w = (int)v[1];
  return SB_OK;
}

static json_t *pair_json(const obs_op *op, int h, int w, int always_array) {
  if (op->H == 1 || (h == w && !always_array)) return json_integer(w);
  return json_pack("[i,i]", h, w);
}

/* Optional "channels": distinct channel indices (default: every channel). */
static int get_channels(const json_t *j, obs_op *op, sb_error *err) {
  json_t *a = json_object_get(j, "channels");
  int n = a ? (int)json_array_size(a) : op->C;
  if (a && (!json_is_array(a) || n == 0 || n > op->C))
    return sb_fail(err, SB_EINVAL, "operator.channels must be a non-empty array of distinct channels in 0..%d", op->C - 1);
  op->chan = malloc(sizeof(int) * (size_t)n);
  if (!op->chan) return sb_fail(err, SB_ENOMEM, "out of memory");
  op->n_chan = n;
  for (int i = 0; i < n; i++) {
    if (!a) {
      op->chan[i] = i;
      continue;
    }
    json_t *e = json_array_get(a, (size_t)i);
    if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= op->C)
      return sb_fail(err, SB_ERANGE, "operator.channels[%d] must be an integer in 0..%d", i, op->C - 1);
    op->chan[i] = (int)json_integer_value(e);
    for (int k = 0; k < i; k++)
      if (op->chan[k] == op->chan[i]) return sb_fail(err, SB_EINVAL, "operator.channels[%d] repeats channel %d", i, op->chan[i]);
  }
  return SB_OK;
}

static void channels_json(json_t *j, const obs_op *op, int *bad) {
  int dflt = op->n_chan == op->C;
  for (int i = 0; dflt && i < op->n_chan; i++) dflt = op->chan[i] == i;
  if (dflt) return; /* every channel in order: the default, not written */
  json_t *a = jb_array(bad);
  for (int i = 0; i < op->n_chan; i++) jb_push(a, json_integer(op->chan[i]), bad);
  jb_set(j, "channels", a, bad);
}

/* "points": [[row, col], ...] grid points into op->idx (row * W + col) */
static int get_points(const json_t *j, obs_op *op, int n_expect, sb_error *err) {
  json_t *a = json_object_get(j, "points");
  if (!json_is_array(a) || json_array_size(a) == 0)
    return sb_fail(err, SB_EINVAL, "operator.points must be a non-empty array of [row, column] pairs");
  size_t n = json_array_size(a);
  if (n_expect >= 0 && n != (size_t)n_expect)
    return sb_fail(err, SB_EINVAL, "operator.points has %zu entries, expected %d", n, n_expect);
  if (n > (size_t)op->H * op->W * 4)
    return sb_fail(err, SB_ERANGE, "operator.points has %zu entries, more than 4x the grid", n);
  op->idx = malloc(sizeof(int) * n);
  if (!op->idx) return sb_fail(err, SB_ENOMEM, "out of memory");
  op->n_idx = (int)n;
  for (size_t i = 0; i < n; i++) {
    json_t *p = json_array_get(a, i), *r = json_array_get(p, 0), *c = json_array_get(p, 1);
    if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_integer(r) || !json_is_integer(c) ||
        json_integer_value(r) < 0 || json_integer_value(r) >= op->H || json_integer_value(c) < 0 ||
        json_integer_value(c) >= op->W)
      return sb_fail(err, SB_ERANGE, "operator.points[%zu] must be [row, column] with row in 0..%d and column in 0..%d",
                     i, op->H - 1, op->W - 1);
    op->idx[i] = (int)json_integer_value(r) * op->W + (int)json_integer_value(c);
  }
  return SB_OK;
}

static json_t *points_json(const obs_op *op) {
  int bad = 0;
  json_t *a = jb_array(&bad);
  for (int i = 0; i < op->n_idx; i++) jb_push(a, json_pack("[i,i]", op->idx[i] / op->W, op->idx[i] % op->W), &bad);
  return jb_done(a, bad);
}

/* every listed channel at every grid point of op->idx, channel by channel */
static int build_points(obs_op *op, sb_error *err) {
  int n = op->n_chan * op->n_idx;
  int rc = alloc_csr(op, n, (size_t)n, err);
  if (rc) return rc;
  int k = 0;
  for (int c = 0; c < op->n_chan; c++)
    for (int i = 0; i < op->n_idx; i++, k++) {
      op->row_ptr[k + 1] = k + 1;
      op->col[k] = op->chan[c] * op->H * op->W + op->idx[i];
      op->val[k] = 1.0;
    }
  return SB_OK;
}

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

/* random_stations: count distinct grid points from the seed (partial Fisher-Yates), sorted */
static int draw_points(obs_op *op, int count, sb_error *err) {
  int G = op->H * op->W;
  int *perm = malloc(sizeof(int) * (size_t)G);
  op->idx = malloc(sizeof(int) * (size_t)count);
  if (!perm || !op->idx) {
    free(perm);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  for (int i = 0; i < G; i++) perm[i] = i;
  rng r;
  rng_init(&r, op->seed, 0x5A11D0u);
  for (int i = 0; i < count; i++) {
    int k = i + (int)rng_below(&r, (uint64_t)(G - i));
    int t = perm[i];
    perm[i] = perm[k];
    perm[k] = t;
    op->idx[i] = perm[i];
  }
  free(perm);
  qsort(op->idx, (size_t)count, sizeof(int), cmp_int);
  op->n_idx = count;
  return SB_OK;
}

/* derivative matrix [N][N] on N periodic points of [0, 2 pi) */
static void diff_matrix(int N, int fd, double *D) {
  const double h = 2 * M_PI / N;
  for (int j = 0; j < N; j++)
    for (int m = 0; m < N; m++) {
      double v = 0;
      if (fd) {
        int d = ((j - m) % N + N) % N;
        if (N > 2 && d == N - 1) v = 1 / (2 * h);  /* m = j + 1 */
        if (N > 2 && d == 1) v -= 1 / (2 * h);     /* m = j - 1 */
      } else {
        for (int k = 1; 2 * k < N; k++) v -= 2.0 / N * k * sin(k * (j - m) * h);
      }
      D[(size_t)j * N + m] = v;
    }
}

/* vorticity dv/dx - du/dy of a [2][H][W] velocity state, block means over fh x fw */
static int build_vorticity(obs_op *op, sb_error *err) {
  const int H = op->H, W = op->W, fh = op->factor_h, fw = op->factor;
  if (op->C != 2 || H < 3 || W < 3)
    return sb_fail(err, SB_ENOTSUP, "operator vorticity needs a 2D velocity state [2][H][W] (u, v), got [%d][%d][%d]",
                   op->C, H, W);
  if (H % fh || W % fw)
    return sb_fail(err, SB_EINVAL, "operator.factor = [%d, %d] does not divide the grid %dx%d", fh, fw, H, W);
  const int Ho = H / fh, Wo = W / fw, n = Ho * Wo;
  double *Dx = malloc(sizeof(double) * (size_t)W * W), *Dy = malloc(sizeof(double) * (size_t)H * H);
  double *row = malloc(sizeof(double) * (size_t)op->state_dim);
  size_t cap = (size_t)n * (size_t)(fh * W + fw * H);
  int rc = (!Dx || !Dy || !row) ? sb_fail(err, SB_ENOMEM, "out of memory") : alloc_csr(op, n, cap, err);
  if (rc) {
    free(Dx), free(Dy), free(row);
    return rc;
  }
  diff_matrix(W, op->fd, Dx);
  diff_matrix(H, op->fd, Dy);
  const double inv = 1.0 / (fh * fw);
  const size_t vo = (size_t)H * W; /* channel 1 */
  size_t e = 0;
  for (int I = 0; I < Ho; I++)
    for (int J = 0; J < Wo; J++) {
      memset(row, 0, sizeof(double) * (size_t)op->state_dim);
      for (int a = 0; a < fh; a++)
        for (int b = 0; b < fw; b++) {
          int i = I * fh + a, jj = J * fw + b;
          for (int m = 0; m < W; m++) row[vo + (size_t)i * W + m] += inv * Dx[(size_t)jj * W + m];
          for (int m = 0; m < H; m++) row[(size_t)m * W + jj] -= inv * Dy[(size_t)i * H + m];
        }
      for (int c = 0; c < op->state_dim; c++)
        if (row[c] != 0.0) {
          op->col[e] = c;
          op->val[e] = row[c];
          e++;
        }
      op->row_ptr[I * Wo + J + 1] = (int)e;
    }
  free(Dx), free(Dy), free(row);
  return SB_OK;
}

static int build_identity(obs_op *op, sb_error *err) {
  int rc = alloc_csr(op, op->state_dim, (size_t)op->state_dim, err);
  if (rc) return rc;
  for (int i = 0; i < op->state_dim; i++) {
    op->row_ptr[i + 1] = i + 1;
    op->col[i] = i;
    op->val[i] = 1.0;
  }
  return SB_OK;
}

static int build_pick(obs_op *op, const int *cols, int n, sb_error *err) {
  int rc = alloc_csr(op, n, (size_t)n, err);
  if (rc) return rc;
  for (int i = 0; i < n; i++) {
    op->row_ptr[i + 1] = i + 1;
    op->col[i] = cols[i];
    op->val[i] = 1.0;
  }
  return SB_OK;
}

/* Subsample picks every stride-th node (from offset) along W (and, for 2D
 * states, along H) of every listed channel. */
static int build_subsample(obs_op *op, sb_error *err) {
  int per_row = (op->W - op->offset + op->stride - 1) / op->stride;
  int rows = (op->H - op->offset_h + op->stride_h - 1) / op->stride_h;
  int n = op->n_chan * rows * per_row;
  int *cols = malloc((size_t)n * sizeof *cols);
  if (!cols) return sb_fail(err, SB_ENOMEM, "out of memory");
  int k = 0;
  for (int ci = 0; ci < op->n_chan; ci++)
    for (int h = op->offset_h; h < op->H; h += op->stride_h)
      for (int w = op->offset; w < op->W; w += op->stride) cols[k++] = (op->chan[ci] * op->H + h) * op->W + w;
  int rc = build_pick(op, cols, n, err);
  free(cols);
  return rc;
}

/* kernel_stations (thesis operator): one station per block of `block` nodes
 * of a 1D periodic state, at a position drawn once from the seed; it sees the
 * Gaussian-kernel weighted mean of its +-radius neighbours, weights
 * exp(-d^2 / (2 sigma_k^2)) normalized to sum to one. */
static int build_kernel_stations(obs_op *op, const json_t *j, sb_error *err) {
  int N = op->W;
  if (op->C != 1 || op->H != 1) return sb_fail(err, SB_ENOTSUP, "operator kernel_stations needs a 1D state");
  if (N % op->block != 0)
    return sb_fail(err, SB_EINVAL, "operator.block = %d does not divide the state size %d", op->block, N);
  int n = N / op->block;
  if (json_object_get(j, "positions")) {
    int rc = get_index_array(j, "positions", N, n, &op->idx, &op->n_idx, err);
    if (rc) return rc;
  } else {
    op->idx = malloc((size_t)n * sizeof *op->idx);
    if (!op->idx) return sb_fail(err, SB_ENOMEM, "out of memory");
    op->n_idx = n;
    rng r;
    rng_init(&r, op->seed, 0x57A710u);
    for (int k = 0; k < n; k++) op->idx[k] = k * op->block + (int)rng_below(&r, (uint64_t)op->block);
  }
  int width = 2 * op->radius + 1;
  int rc = alloc_csr(op, n, (size_t)n * (size_t)width, err);
  if (rc) return rc;
  double wsum = 0;
  for (int d = -op->radius; d <= op->radius; d++) wsum += exp(-(double)(d * d) / (2 * op->sigma_k * op->sigma_k));
  for (int k = 0; k < n; k++) {
    op->row_ptr[k + 1] = op->row_ptr[k] + width;
    for (int d = -op->radius, e = op->row_ptr[k]; d <= op->radius; d++, e++) {
      op->col[e] = ((op->idx[k] + d) % N + N) % N;
      op->val[e] = exp(-(double)(d * d) / (2 * op->sigma_k * op->sigma_k)) / wsum;
    }
  }
  return SB_OK;
}

/* coarsen: mean over factor_h x factor blocks of each listed channel (1D:
 * factor consecutive nodes). */
static int build_coarsen(obs_op *op, sb_error *err) {
  int r = op->factor, rh = op->H == 1 ? 1 : op->factor_h;
  if (op->W % r || op->H % rh) {
    if (op->H > 1 && rh != r)
      return sb_fail(err, SB_EINVAL, "operator.factor = [%d, %d] does not divide the state shape %dx%d", rh, r, op->H,
                     op->W);
    return sb_fail(err, SB_EINVAL, "operator.factor = %d does not divide the state shape %dx%d", r, op->H, op->W);
  }
  int Ho = op->H / rh, Wo = op->W / r, n = op->n_chan * Ho * Wo, per = rh * r;
  int rc = alloc_csr(op, n, (size_t)n * (size_t)per, err);
  if (rc) return rc;
  int k = 0, e = 0;
  for (int ci = 0; ci < op->n_chan; ci++) {
    int c = op->chan[ci];
    for (int i = 0; i < Ho; i++)
      for (int jj = 0; jj < Wo; jj++, k++) {
        for (int a = 0; a < rh; a++)
          for (int b = 0; b < r; b++, e++) {
            op->col[e] = (c * op->H + i * rh + a) * op->W + jj * r + b;
            op->val[e] = 1.0 / per;
          }
        op->row_ptr[k + 1] = e;
      }
  }
  return SB_OK;
}

static int build_dense(obs_op *op, const json_t *j, sb_error *err) {
  json_t *m = json_object_get(j, "matrix");
  if (!json_is_array(m) || json_array_size(m) == 0)
    return sb_fail(err, SB_EINVAL, "operator.matrix must be a non-empty array of rows");
  size_t rows = json_array_size(m);
  if (rows > (size_t)op->state_dim * 4)
    return sb_fail(err, SB_ERANGE, "operator.matrix has %zu rows, more than 4x the state size", rows);
  int rc = alloc_csr(op, (int)rows, rows * (size_t)op->state_dim, err);
  if (rc) return rc;
  size_t e = 0;
  for (size_t i = 0; i < rows; i++) {
    json_t *row = json_array_get(m, i);
    if (!json_is_array(row) || json_array_size(row) != (size_t)op->state_dim)
      return sb_fail(err, SB_EINVAL, "operator.matrix[%zu] must be an array of %d numbers", i, op->state_dim);
    for (int c = 0; c < op->state_dim; c++) {
      json_t *x = json_array_get(row, (size_t)c);
      if (!json_is_number(x) || !isfinite(json_number_value(x)))
        return sb_fail(err, SB_EINVAL, "operator.matrix[%zu][%d] must be a finite number", i, c);
      double v = json_number_value(x);
      if (v != 0.0) {
        op->col[e] = c;
        op->val[e] = v;
        e++;
      }
    }
    op->row_ptr[i + 1] = (int)e;
  }
  return SB_OK;
}

static const obs_fn fns[] = {OBS_FN_ARCTAN, OBS_FN_SQUARE, OBS_FN_ABS};

/* {"type": f, "of": {linear operator}}: the inner operator with fn set. */
static int nonlinear_from_json(obs_op **out, const json_t *j, obs_fn fn, int C, int H, int W, sb_error *err) {
  static const char *const keys[] = {"type", "of", NULL};
  int rc = check_keys(j, keys, err);
  if (rc) return rc;
  const json_t *of = json_object_get(j, "of");
  if (!json_is_object(of))
    return sb_fail(err, SB_EINVAL, "operator.of is required for %s: the linear operator it wraps, e.g. "
                   "{\"type\":\"%s\",\"of\":{\"type\":\"identity\"}}", obs_fn_name(fn), obs_fn_name(fn));
  const json_t *it = json_object_get(of, "type");
  for (size_t k = 0; json_is_string(it) && k < sizeof fns / sizeof fns[0]; k++)
    if (!strcmp(json_string_value(it), obs_fn_name(fns[k])))
      return sb_fail(err, SB_ENOTSUP, "operator.of must be a linear operator: nonlinear operators do not nest "
                     "(%s of %s)", obs_fn_name(fn), obs_fn_name(fns[k]));
  if ((rc = obs_from_json(out, of, C, H, W, err))) return sb_wrap(err, "operator.of");
  (*out)->fn = fn;
  return SB_OK;
}

int obs_from_json(obs_op **out, const json_t *j, int C, int H, int W, sb_error *err) {
  *out = NULL;
  if (!json_is_object(j)) return sb_fail(err, SB_EINVAL, "operator must be a JSON object with a \"type\"");
  if (C < 1 || H < 1 || W < 1) return sb_fail(err, SB_EINVAL, "operator: bad state shape");
  json_t *jt = json_object_get(j, "type");
  if (!json_is_string(jt))
    return sb_fail(err, SB_EINVAL, "operator.type must be one of identity, subsample, stations, random_stations, "
                                   "kernel_stations, coarsen, vorticity, dense, arctan, square, abs");
  const char *type = json_string_value(jt);
  for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++)
    if (!strcmp(type, obs_fn_name(fns[k]))) return nonlinear_from_json(out, j, fns[k], C, H, W, err);
  obs_op *op = calloc(1, sizeof *op);
  if (!op) return sb_fail(err, SB_ENOMEM, "out of memory");
  op->C = C;
  op->H = H;
  op->W = W;
  op->state_dim = C * H * W;
  op->stride = op->stride_h = 1;
  op->factor = op->factor_h = 1;
  op->block = 4;
  op->radius = 2;
  op->sigma_k = 0.8;
  int rc;
  if (!strcmp(type, "identity")) {
    static const char *const keys[] = {"type", NULL};
    op->kind = OBS_IDENTITY;
    if (!(rc = check_keys(j, keys, err))) rc = build_identity(op, err);
  } else if (!strcmp(type, "subsample")) {
    static const char *const keys[] = {"type", "stride", "offset", "channels", NULL};
    op->kind = OBS_SUBSAMPLE;
    if (!(rc = check_keys(j, keys, err)) && !(rc = get_pair(j, "stride", op, &op->stride_h, &op->stride, 1, H, W, err)) &&
        !(rc = get_pair(j, "offset", op, &op->offset_h, &op->offset, 0, op->stride_h - 1, op->stride - 1, err)) &&
        !(rc = get_channels(j, op, err)))
      rc = build_subsample(op, err);
  } else if (!strcmp(type, "stations")) {
    static const char *const keys[] = {"type", "indices", "points", "channels", NULL};
    op->kind = OBS_STATIONS;
    if (!(rc = check_keys(j, keys, err))) {
      if (json_object_get(j, "points") && json_object_get(j, "indices"))
        rc = sb_fail(err, SB_EINVAL, "operator: give stations either as indices or as points, not both");
      else if (json_object_get(j, "points")) {
        op->points = 1;
        if (!(rc = get_points(j, op, -1, err)) && !(rc = get_channels(j, op, err))) rc = build_points(op, err);
      } else if (json_object_get(j, "channels")) {
        rc = sb_fail(err, SB_EINVAL, "operator.channels goes with points (indices are flat state indices)");
      } else if (!(rc = get_index_array(j, "indices", op->state_dim, -1, &op->idx, &op->n_idx, err))) {
        rc = build_pick(op, op->idx, op->n_idx, err);
      }
    }
  } else if (!strcmp(type, "random_stations")) {
    static const char *const keys[] = {"type", "count", "fraction", "seed", "points", "channels", NULL};
    op->kind = OBS_RANDOM_STATIONS;
    op->points = 1;
    int seed = 0, count = -1;
    double fraction = -1;
    int G = H * W;
    if (!(rc = check_keys(j, keys, err)) && !(rc = get_int(j, "count", &count, 1, G, err)) &&
        !(rc = get_num(j, "fraction", &fraction, 1e-9, 1.0, err)) &&
        !(rc = get_int(j, "seed", &seed, 0, 2147483647L, err)) && !(rc = get_channels(j, op, err))) {
      op->seed = (uint64_t)seed;
      if (count > 0 && fraction > 0)
        rc = sb_fail(err, SB_EINVAL, "operator: give random_stations a count or a fraction, not both");
      else if (count < 0 && fraction < 0 && !json_object_get(j, "points"))
        rc = sb_fail(err, SB_EINVAL, "operator.count or operator.fraction is required for random_stations");
      else {
        if (fraction > 0) {
          count = (int)lround(fraction * G);
          if (count < 1) count = 1;
        }
        rc = json_object_get(j, "points") ? get_points(j, op, count, err) : draw_points(op, count, err);
        if (!rc) rc = build_points(op, err);
      }
    }
  } else if (!strcmp(type, "kernel_stations")) {
    static const char *const keys[] = {"type", "block", "sigma_k", "radius", "seed", "positions", NULL};
    op->kind = OBS_KERNEL_STATIONS;
    int seed = 0;
    if (!(rc = check_keys(j, keys, err)) && !(rc = get_int(j, "block", &op->block, 1, W, err)) &&
        !(rc = get_int(j, "radius", &op->radius, 0, (W - 1) / 2, err)) &&
        !(rc = get_num(j, "sigma_k", &op->sigma_k, 1e-3, 1e3, err)) &&
        !(rc = get_int(j, "seed", &seed, 0, 2147483647L, err))) {
      op->seed = (uint64_t)seed;
      rc = build_kernel_stations(op, j, err);
    }
  } else if (!strcmp(type, "coarsen")) {
    static const char *const keys[] = {"type", "factor", "channels", NULL};
    op->kind = OBS_COARSEN;
    if (!json_object_get(j, "factor")) rc = sb_fail(err, SB_EINVAL, "operator.factor is required for coarsen");
    else if (!(rc = check_keys(j, keys, err)) && !(rc = get_pair(j, "factor", op, &op->factor_h, &op->factor, 1, H, W, err)) &&
             !(rc = get_channels(j, op, err)))
      rc = build_coarsen(op, err);
  } else if (!strcmp(type, "vorticity")) {
    static const char *const keys[] = {"type", "factor", "method", NULL};
    op->kind = OBS_VORTICITY;
    json_t *m = json_object_get(j, "method");
    if (!(rc = check_keys(j, keys, err))) {
      if (m && (!json_is_string(m) || (strcmp(json_string_value(m), "spectral") && strcmp(json_string_value(m), "fd"))))
        rc = sb_fail(err, SB_EINVAL, "operator.method must be \"spectral\" or \"fd\"");
      else if (C != 2 || H < 3)
        rc = sb_fail(err, SB_ENOTSUP, "operator vorticity needs a 2D velocity state [2][H][W] (u, v), got [%d][%d][%d]",
                     C, H, W);
      else if (!(rc = get_pair(j, "factor", op, &op->factor_h, &op->factor, 1, H, W, err))) {
        op->fd = m && !strcmp(json_string_value(m), "fd");
        rc = build_vorticity(op, err);
      }
    }
  } else if (!strcmp(type, "dense")) {
    static const char *const keys[] = {"type", "matrix", NULL};
    op->kind = OBS_DENSE;
    if (!(rc = check_keys(j, keys, err))) rc = build_dense(op, j, err);
  } else {
    rc = sb_fail(err, SB_EINVAL,
                 "operator.type '%s' is unknown (use identity, subsample, stations, random_stations, kernel_stations, "
                 "coarsen, vorticity or dense, or arctan, square or abs of one of them)", type);
  }
  if (rc) {
    obs_free(op);
    return rc;
  }
  *out = op;
  return SB_OK;
}

int obs_from_string(obs_op **out, const char *text, int C, int H, int W, sb_error *err) {
  json_error_t je;
  *out = NULL;
  json_t *j = json_loads(text, 0, &je);
  if (!j) return sb_fail(err, SB_EINVAL, "operator is not valid JSON: %s (column %d)", je.text, je.column);
  int rc = obs_from_json(out, j, C, H, W, err);
  json_decref(j);
  return rc;
}

static json_t *linear_to_json(const obs_op *op);

json_t *obs_to_json(const obs_op *op) {
  json_t *j = linear_to_json(op);
  if (!op->fn || !j) return j;
  return json_pack("{s:s, s:o}", "type", obs_fn_name(op->fn), "of", j);
}

/* the JSON of the linear part (NULL when memory runs out) */
static json_t *linear_to_json(const obs_op *op) {
  int bad = 0;
  json_t *j = json_pack("{s:s}", "type", obs_kind_name(op->kind));
  switch (op->kind) {
  case OBS_IDENTITY: break;
  case OBS_SUBSAMPLE:
    jb_set(j, "stride", pair_json(op, op->stride_h, op->stride, 1), &bad);
    jb_set(j, "offset", pair_json(op, op->offset_h, op->offset, 1), &bad);
    channels_json(j, op, &bad);
    break;
  case OBS_STATIONS:
  case OBS_KERNEL_STATIONS: {
    if (op->points) {
      jb_set(j, "points", points_json(op), &bad);
      channels_json(j, op, &bad);
      break;
    }
    json_t *a = jb_array(&bad);
    for (int i = 0; i < op->n_idx; i++) jb_push(a, json_integer(op->idx[i]), &bad);
    if (op->kind == OBS_STATIONS) {
      jb_set(j, "indices", a, &bad);
    } else {
      jb_set(j, "block", json_integer(op->block), &bad);
      jb_set_real(j, "sigma_k", op->sigma_k, &bad);
      jb_set(j, "radius", json_integer(op->radius), &bad);
      jb_set(j, "seed", json_integer((json_int_t)op->seed), &bad);
      jb_set(j, "positions", a, &bad);
    }
    break;
  }
  case OBS_RANDOM_STATIONS:
    jb_set(j, "seed", json_integer((json_int_t)op->seed), &bad);
    jb_set(j, "count", json_integer(op->n_idx), &bad);
    jb_set(j, "points", points_json(op), &bad);
    channels_json(j, op, &bad);
    break;
  case OBS_COARSEN:
    jb_set(j, "factor", pair_json(op, op->factor_h, op->factor, 0), &bad);
    channels_json(j, op, &bad);
    break;
  case OBS_VORTICITY:
    jb_set(j, "factor", pair_json(op, op->factor_h, op->factor, 0), &bad);
    jb_set(j, "method", json_string(op->fd ? "fd" : "spectral"), &bad);
    break;
  case OBS_DENSE: {
    double *A = obs_dense(op);
    json_t *m = jb_array(&bad);
    if (!A) bad++;
    for (int i = 0; A && i < op->n_obs; i++) {
      json_t *row = jb_array(&bad);
      for (int c = 0; c < op->state_dim; c++) jb_push_real(row, A[(size_t)i * op->state_dim + c], &bad);
      jb_push(m, row, &bad);
    }
    free(A);
    jb_set(j, "matrix", m, &bad);
    break;
  }
  }
  return jb_done(j, bad);
}

void obs_apply(const obs_op *op, const double *x, double *y, size_t B) {
  for (size_t b = 0; b < B; b++) {
    const double *xb = x + b * (size_t)op->state_dim;
    double *yb = y + b * (size_t)op->n_obs;
    for (int i = 0; i < op->n_obs; i++) {
      double s = 0;
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) s += op->val[e] * xb[op->col[e]];
      yb[i] = op->fn ? obs_fn_value(op->fn, s) : s;
    }
  }
}

void obs_apply_deriv(const obs_op *op, const double *x, double *y, double *dy, size_t B) {
  for (size_t b = 0; b < B; b++) {
    const double *xb = x + b * (size_t)op->state_dim;
    double *yb = y + b * (size_t)op->n_obs, *db = dy + b * (size_t)op->n_obs;
    for (int i = 0; i < op->n_obs; i++) {
      double s = 0;
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) s += op->val[e] * xb[op->col[e]];
      yb[i] = obs_fn_value(op->fn, s);
      db[i] = obs_fn_deriv(op->fn, s);
    }
  }
}

void obs_jacobian_t(const obs_op *op, const double *x, const double *r, double *g, size_t B) {
  if (!op->fn) {
    obs_apply_adjoint(op, r, g, B);
    return;
  }
  for (size_t b = 0; b < B; b++) {
    const double *xb = x + b * (size_t)op->state_dim, *rb = r + b * (size_t)op->n_obs;
    double *gb = g + b * (size_t)op->state_dim;
    for (int i = 0; i < op->n_obs; i++) {
      double s = 0;
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) s += op->val[e] * xb[op->col[e]];
      double w = obs_fn_deriv(op->fn, s) * rb[i];
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) gb[op->col[e]] += op->val[e] * w;
    }
  }
}

void obs_apply_f(const obs_op *op, const float *x, float *y, size_t B) {
  for (size_t b = 0; b < B; b++) {
    const float *xb = x + b * (size_t)op->state_dim;
    float *yb = y + b * (size_t)op->n_obs;
    for (int i = 0; i < op->n_obs; i++) {
      double s = 0;
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) s += op->val[e] * xb[op->col[e]];
      yb[i] = (float)(op->fn ? obs_fn_value(op->fn, s) : s);
    }
  }
}

void obs_apply_adjoint(const obs_op *op, const double *r, double *g, size_t B) {
  for (size_t b = 0; b < B; b++) {
    const double *rb = r + b * (size_t)op->n_obs;
    double *gb = g + b * (size_t)op->state_dim;
    for (int i = 0; i < op->n_obs; i++)
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) gb[op->col[e]] += op->val[e] * rb[i];
  }
}

void obs_apply_adjoint_f(const obs_op *op, const float *r, float *g, size_t B) {
  for (size_t b = 0; b < B; b++) {
    const float *rb = r + b * (size_t)op->n_obs;
    float *gb = g + b * (size_t)op->state_dim;
    for (int i = 0; i < op->n_obs; i++)
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) gb[op->col[e]] += (float)(op->val[e] * rb[i]);
  }
}

double *obs_dense(const obs_op *op) {
  double *A = calloc((size_t)op->n_obs * (size_t)op->state_dim, sizeof *A);
  if (!A) return NULL;
  for (int i = 0; i < op->n_obs; i++)
    for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) A[(size_t)i * op->state_dim + op->col[e]] += op->val[e];
  return A;
}

static void grid_point(const obs_op *op, int c, double loc[2]) {
  int g = c % (op->H * op->W);
  loc[0] = (double)(g / op->W);
  loc[1] = (double)(g % op->W);
}

void obs_state_location(const obs_op *op, int c, double loc[2]) { grid_point(op, c, loc); }

void obs_location(const obs_op *op, int row, double loc[2]) {
  if (op->H > 1 && (op->kind == OBS_COARSEN || op->kind == OBS_VORTICITY)) {
    int fh = op->factor_h, fw = op->factor, Ho = op->H / fh, Wo = op->W / fw;
    int b = row % (Ho * Wo); /* coarsen: channel by channel; vorticity: one channel */
    loc[0] = (b / Wo) * fh + (fh - 1) / 2.0;
    loc[1] = (b % Wo) * fw + (fw - 1) / 2.0;
    return;
  }
  int best = -1;
  double bv = -1.0;
  for (int e = op->row_ptr[row]; e < op->row_ptr[row + 1]; e++)
    if (fabs(op->val[e]) > bv) {
      bv = fabs(op->val[e]);
      best = op->col[e];
    }
  grid_point(op, best < 0 ? 0 : best, loc);
}

static double wrap(double d, int period) {
  d = fabs(d);
  return period - d < d ? period - d : d;
}

double obs_distance(const obs_op *op, const double a[2], const double b[2]) {
  double dh = wrap(a[0] - b[0], op->H), dw = wrap(a[1] - b[1], op->W);
  return sqrt(dh * dh + dw * dw);
}

int obs_noise_scalar(obs_noise *out, double std, int n_obs, sb_error *err) {
  out->n = 0;
  out->std = NULL;
  if (!isfinite(std) || std <= 0) return sb_fail(err, SB_ERANGE, "noise_std must be a positive finite number, got %g", std);
  if (n_obs < 1) return sb_fail(err, SB_EINVAL, "noise: operator observes nothing");
  out->std = malloc((size_t)n_obs * sizeof *out->std);
  if (!out->std) return sb_fail(err, SB_ENOMEM, "out of memory");
  for (int i = 0; i < n_obs; i++) out->std[i] = std;
  out->n = n_obs;
  return SB_OK;
}

int obs_noise_from_json(obs_noise *out, const json_t *j, int n_obs, sb_error *err) {
  out->n = 0;
  out->std = NULL;
  if (json_is_number(j)) return obs_noise_scalar(out, json_number_value(j), n_obs, err);
  if (!json_is_array(j))
    return sb_fail(err, SB_EINVAL, "noise_std must be a positive number or an array of %d positive numbers", n_obs);
  if (json_array_size(j) != (size_t)n_obs)
    return sb_fail(err, SB_EINVAL, "noise_std has %zu entries but the operator observes %d components",
                   json_array_size(j), n_obs);
  out->std = malloc((size_t)n_obs * sizeof *out->std);
  if (!out->std) return sb_fail(err, SB_ENOMEM, "out of memory");
  for (int i = 0; i < n_obs; i++) {
    json_t *e = json_array_get(j, (size_t)i);
    double v = json_is_number(e) ? json_number_value(e) : NAN;
    if (!isfinite(v) || v <= 0) {
      obs_noise_free(out);
      return sb_fail(err, SB_ERANGE, "noise_std[%d] must be a positive finite number", i);
    }
    out->std[i] = v;
  }
  out->n = n_obs;
  return SB_OK;
}

json_t *obs_noise_to_json(const obs_noise *nz) {
  int same = 1;
  for (int i = 1; i < nz->n; i++) same &= nz->std[i] == nz->std[0];
  if (same && nz->n > 0) return json_real(nz->std[0]);
  int bad = 0;
  json_t *a = jb_array(&bad);
  for (int i = 0; i < nz->n; i++) jb_push_real(a, nz->std[i], &bad);
  return jb_done(a, bad);
}

void obs_noise_free(obs_noise *nz) {
  if (!nz) return;
  free(nz->std);
  nz->std = NULL;
  nz->n = 0;
}

void obs_add_noise(const obs_noise *nz, double *y, size_t B, uint64_t seed, uint64_t stream0) {
  for (size_t b = 0; b < B; b++) {
    rng r;
    rng_init(&r, seed, stream0 + b);
    for (int i = 0; i < nz->n; i++) y[b * (size_t)nz->n + i] += nz->std[i] * rng_normal(&r);
  }
}

int obs_window_from_json(const json_t *rows, int W, int n_obs, double *y, sb_error *err) {
  if (!json_is_array(rows))
    return sb_fail(err, SB_EINVAL, "observations must be an array of %d rows (oldest first)", W);
  if (json_array_size(rows) != (size_t)W)
    return sb_fail(err, SB_EINVAL, "observations has %zu rows, the window needs %d", json_array_size(rows), W);
  for (int t = 0; t < W; t++) {
    json_t *row = json_array_get(rows, (size_t)t);
    double *yt = y + (size_t)t * n_obs;
    if (json_is_null(row)) {
      for (int i = 0; i < n_obs; i++) yt[i] = NAN;
      continue;
    }
    if (!json_is_array(row))
      return sb_fail(err, SB_EINVAL, "observations[%d] must be an array of %d numbers (null for missing) or null", t, n_obs);
    if (json_array_size(row) != (size_t)n_obs)
      return sb_fail(err, SB_EINVAL, "observations[%d] has %zu values, the operator observes %d", t,
                     json_array_size(row), n_obs);
    for (int i = 0; i < n_obs; i++) {
      json_t *e = json_array_get(row, (size_t)i);
      if (json_is_null(e)) {
        yt[i] = NAN;
      } else if (json_is_number(e) && isfinite(json_number_value(e))) {
        yt[i] = json_number_value(e);
      } else {
        return sb_fail(err, SB_EINVAL, "observations[%d][%d] must be a finite number or null", t, i);
      }
    }
  }
  return SB_OK;
}

size_t obs_count_observed(const double *y, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++) c += !isnan(y[i]);
  return c;
}
