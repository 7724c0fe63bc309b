#include "obs/obs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/rng.h"

const char *obs_kind_name(obs_kind k) {
  switch (k) {
  case OBS_IDENTITY: return "identity";
  case OBS_SUBSAMPLE: return "subsample";
  case OBS_STATIONS: return "stations";
  case OBS_KERNEL_STATIONS: return "kernel_stations";
  case OBS_COARSEN: return "coarsen";
  case OBS_DENSE: return "dense";
  }
  return "?";
}

void obs_free(obs_op *op) {
  if (!op) return;
  free(op->row_ptr);
  free(op->col);
  free(op->val);
  free(op->idx);
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

/* Subsample picks every stride-th node (from offset) along the last axis of
 * every channel and row. */
static int build_subsample(obs_op *op, sb_error *err) {
  int per_row = (op->W - op->offset + op->stride - 1) / op->stride;
  int n = op->C * op->H * per_row;
  int *cols = malloc((size_t)n * sizeof *cols);
  if (!cols) return sb_fail(err, SB_ENOMEM, "out of memory");
  int k = 0;
  for (int c = 0; c < op->C; c++)
    for (int h = 0; h < op->H; h++)
      for (int w = op->offset; w < op->W; w += op->stride) cols[k++] = (c * op->H + h) * op->W + w;
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

/* coarsen: mean over factor x factor blocks of each channel (1D: factor
 * consecutive nodes). */
static int build_coarsen(obs_op *op, sb_error *err) {
  int r = op->factor, rh = op->H == 1 ? 1 : r;
  if (op->W % r || op->H % rh)
    return sb_fail(err, SB_EINVAL, "operator.factor = %d does not divide the state shape %dx%d", r, op->H, op->W);
  int Ho = op->H / rh, Wo = op->W / r, n = op->C * Ho * Wo, per = rh * r;
  int rc = alloc_csr(op, n, (size_t)n * (size_t)per, err);
  if (rc) return rc;
  int k = 0, e = 0;
  for (int c = 0; c < op->C; c++)
    for (int i = 0; i < Ho; i++)
      for (int jj = 0; jj < Wo; jj++, k++) {
        for (int a = 0; a < rh; a++)
          for (int b = 0; b < r; b++, e++) {
            op->col[e] = (c * op->H + i * rh + a) * op->W + jj * r + b;
            op->val[e] = 1.0 / per;
          }
        op->row_ptr[k + 1] = e;
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

int obs_from_json(obs_op **out, const json_t *j, int C, int H, int W, sb_error *err) {
  *out = NULL;
  if (!json_is_object(j)) return sb_fail(err, SB_EINVAL, "operator must be a JSON object with a \"type\"");
  if (C < 1 || H < 1 || W < 1) return sb_fail(err, SB_EINVAL, "operator: bad state shape");
  json_t *jt = json_object_get(j, "type");
  if (!json_is_string(jt))
    return sb_fail(err, SB_EINVAL, "operator.type must be one of identity, subsample, stations, kernel_stations, coarsen, dense");
  const char *type = json_string_value(jt);
  obs_op *op = calloc(1, sizeof *op);
  if (!op) return sb_fail(err, SB_ENOMEM, "out of memory");
  op->C = C;
  op->H = H;
  op->W = W;
  op->state_dim = C * H * W;
  op->stride = 1;
  op->factor = 1;
  op->block = 4;
  op->radius = 2;
  op->sigma_k = 0.8;
  int rc;
  if (!strcmp(type, "identity")) {
    static const char *const keys[] = {"type", NULL};
    op->kind = OBS_IDENTITY;
    if (!(rc = check_keys(j, keys, err))) rc = build_identity(op, err);
  } else if (!strcmp(type, "subsample")) {
    static const char *const keys[] = {"type", "stride", "offset", NULL};
    op->kind = OBS_SUBSAMPLE;
    if (!(rc = check_keys(j, keys, err)) && !(rc = get_int(j, "stride", &op->stride, 1, W, err)) &&
        !(rc = get_int(j, "offset", &op->offset, 0, op->stride - 1, err)))
      rc = build_subsample(op, err);
  } else if (!strcmp(type, "stations")) {
    static const char *const keys[] = {"type", "indices", NULL};
    op->kind = OBS_STATIONS;
    if (!(rc = check_keys(j, keys, err)) &&
        !(rc = get_index_array(j, "indices", op->state_dim, -1, &op->idx, &op->n_idx, err)))
      rc = build_pick(op, op->idx, op->n_idx, err);
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
    static const char *const keys[] = {"type", "factor", NULL};
    op->kind = OBS_COARSEN;
    if (!json_object_get(j, "factor")) rc = sb_fail(err, SB_EINVAL, "operator.factor is required for coarsen");
    else if (!(rc = check_keys(j, keys, err)) && !(rc = get_int(j, "factor", &op->factor, 1, W, err)))
      rc = build_coarsen(op, err);
  } else if (!strcmp(type, "dense")) {
    static const char *const keys[] = {"type", "matrix", NULL};
    op->kind = OBS_DENSE;
    if (!(rc = check_keys(j, keys, err))) rc = build_dense(op, j, err);
  } else {
    rc = sb_fail(err, SB_EINVAL,
                 "operator.type '%s' is unknown (use identity, subsample, stations, kernel_stations, coarsen or dense)", type);
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

json_t *obs_to_json(const obs_op *op) {
  json_t *j = json_pack("{s:s}", "type", obs_kind_name(op->kind));
  switch (op->kind) {
  case OBS_IDENTITY: break;
  case OBS_SUBSAMPLE:
    json_object_set_new(j, "stride", json_integer(op->stride));
    json_object_set_new(j, "offset", json_integer(op->offset));
    break;
  case OBS_STATIONS:
  case OBS_KERNEL_STATIONS: {
    json_t *a = json_array();
    for (int i = 0; i < op->n_idx; i++) json_array_append_new(a, json_integer(op->idx[i]));
    if (op->kind == OBS_STATIONS) {
      json_object_set_new(j, "indices", a);
    } else {
      json_object_set_new(j, "block", json_integer(op->block));
      json_object_set_new(j, "sigma_k", json_real(op->sigma_k));
      json_object_set_new(j, "radius", json_integer(op->radius));
      json_object_set_new(j, "seed", json_integer((json_int_t)op->seed));
      json_object_set_new(j, "positions", a);
    }
    break;
  }
  case OBS_COARSEN: json_object_set_new(j, "factor", json_integer(op->factor)); break;
  case OBS_DENSE: {
    double *A = obs_dense(op);
    json_t *m = json_array();
    for (int i = 0; A && i < op->n_obs; i++) {
      json_t *row = json_array();
      for (int c = 0; c < op->state_dim; c++) json_array_append_new(row, json_real(A[(size_t)i * op->state_dim + c]));
      json_array_append_new(m, row);
    }
    free(A);
    json_object_set_new(j, "matrix", m);
    break;
  }
  }
  return j;
}

void obs_apply(const obs_op *op, const double *x, double *y, size_t B) {
  for (size_t b = 0; b < B; b++) {
    const double *xb = x + b * (size_t)op->state_dim;
    double *yb = y + b * (size_t)op->n_obs;
    for (int i = 0; i < op->n_obs; i++) {
      double s = 0;
      for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) s += op->val[e] * xb[op->col[e]];
      yb[i] = s;
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
      yb[i] = (float)s;
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
  json_t *a = json_array();
  for (int i = 0; i < nz->n; i++) json_array_append_new(a, json_real(nz->std[i]));
  return a;
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
