/* Observation operators: hand-computed cases, JSON round trips, adjoint
 * identity, noise, windows with missing values, and malformed input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "obs/obs.h"
#include "util/rng.h"

static obs_op *make(const char *text, int C, int H, int W) {
  obs_op *op;
  sb_error err = {0};
  if (obs_from_string(&op, text, C, H, W, &err)) fail_msg("%s: %s", text, err.msg);
  return op;
}

static void apply1(const obs_op *op, const double *x, double *y) { obs_apply(op, x, y, 1); }

static void test_identity_and_subsample(void **state) {
  (void)state;
  double x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8];
  obs_op *op = make("{\"type\":\"identity\"}", 1, 1, 8);
  assert_int_equal(op->n_obs, 8);
  apply1(op, x, y);
  assert_memory_equal(x, y, sizeof x);
  obs_free(op);
  op = make("{\"type\":\"subsample\",\"stride\":3,\"offset\":1}", 1, 1, 8);
  assert_int_equal(op->n_obs, 3); /* nodes 1, 4, 7 */
  apply1(op, x, y);
  assert_true(y[0] == 2 && y[1] == 5 && y[2] == 8);
  obs_free(op);
  op = make("{\"type\":\"subsample\",\"stride\":2}", 1, 1, 8);
  assert_int_equal(op->n_obs, 4);
  apply1(op, x, y);
  assert_true(y[0] == 1 && y[3] == 7);
  obs_free(op);
}

static void test_stations_and_coarsen(void **state) {
  (void)state;
  double x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8];
  obs_op *op = make("{\"type\":\"stations\",\"indices\":[7,0,0]}", 1, 1, 8);
  apply1(op, x, y);
  assert_true(y[0] == 8 && y[1] == 1 && y[2] == 1);
  obs_free(op);
  op = make("{\"type\":\"coarsen\",\"factor\":4}", 1, 1, 8);
  apply1(op, x, y);
  assert_int_equal(op->n_obs, 2);
  assert_true(fabs(y[0] - 2.5) < 1e-15 && fabs(y[1] - 6.5) < 1e-15);
  obs_free(op);
  /* 2 channels of 4x4, factor 2: per-channel 2x2 block means */
  double z[32], w[8];
  for (int i = 0; i < 32; i++) z[i] = i;
  op = make("{\"type\":\"coarsen\",\"factor\":2}", 2, 4, 4);
  assert_int_equal(op->n_obs, 8);
  apply1(op, z, w);
  assert_true(fabs(w[0] - (0 + 1 + 4 + 5) / 4.0) < 1e-14);
  assert_true(fabs(w[3] - (10 + 11 + 14 + 15) / 4.0) < 1e-14);
  assert_true(fabs(w[4] - (16 + 17 + 20 + 21) / 4.0) < 1e-14);
  obs_free(op);
}

static void test_kernel_stations(void **state) {
  (void)state;
  /* explicit positions: station at node 1 of 8 with sigma_k 0.8, radius 2 */
  obs_op *op = make("{\"type\":\"kernel_stations\",\"positions\":[1,6]}", 1, 1, 8);
  assert_int_equal(op->n_obs, 2);
  double w[5], s = 0;
  for (int d = -2; d <= 2; d++) s += w[d + 2] = exp(-d * d / (2 * 0.64));
  double x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[2];
  apply1(op, x, y);
  /* station at 1 sees nodes 7,0,1,2,3 (periodic); station at 6 sees 4..8 -> 0 */
  double e0 = (w[0] * 8 + w[1] * 1 + w[2] * 2 + w[3] * 3 + w[4] * 4) / s;
  double e1 = (w[0] * 5 + w[1] * 6 + w[2] * 7 + w[3] * 8 + w[4] * 1) / s;
  assert_true(fabs(y[0] - e0) < 1e-12 && fabs(y[1] - e1) < 1e-12);
  obs_free(op);
  /* seeded positions: one per block of 4, stable for a seed, stored */
  op = make("{\"type\":\"kernel_stations\",\"seed\":7}", 1, 1, 32);
  obs_op *again = make("{\"type\":\"kernel_stations\",\"seed\":7}", 1, 1, 32);
  assert_int_equal(op->n_obs, 8);
  int differs_from_start = 0;
  for (int k = 0; k < 8; k++) {
    assert_true(op->idx[k] >= 4 * k && op->idx[k] < 4 * k + 4);
    assert_int_equal(op->idx[k], again->idx[k]);
    differs_from_start |= op->idx[k] != 4 * k;
  }
  assert_true(differs_from_start);
  obs_free(again);
  obs_free(op);
  /* constant field is preserved (weights sum to one) */
  op = make("{\"type\":\"kernel_stations\"}", 1, 1, 16);
  double c[16], yc[4];
  for (int i = 0; i < 16; i++) c[i] = 3.0;
  apply1(op, c, yc);
  for (int k = 0; k < 4; k++) assert_true(fabs(yc[k] - 3.0) < 1e-12);
  obs_free(op);
}

static void test_dense(void **state) {
  (void)state;
  obs_op *op = make("{\"type\":\"dense\",\"matrix\":[[1,0,2],[0,-1,0.5]]}", 1, 1, 3);
  double x[3] = {1, 2, 4}, y[2];
  apply1(op, x, y);
  assert_true(y[0] == 9 && y[1] == 0);
  double *A = obs_dense(op);
  assert_true(A[2] == 2 && A[4] == -1 && A[5] == 0.5);
  free(A);
  obs_free(op);
}

/* op_json on a C x H x W state round-trips through JSON (same operator, same
 * values) and satisfies <Ax, r> = <x, A^T r>; batched float apply agrees with
 * double. */
static void check_roundtrip_and_adjoint(const char *op_json, int C, int H, int W, rng *r) {
  const int D = C * H * W;
  obs_op *a = make(op_json, C, H, W);
  json_t *j = obs_to_json(a);
  char *text = json_dumps(j, JSON_COMPACT);
  obs_op *b = make(text, C, H, W);
  json_t *j2 = obs_to_json(b);
  if (!json_equal(j, j2)) fail_msg("%s does not round-trip (%s)", op_json, text);
  double *x = malloc(sizeof(double) * 5 * D), *y1 = x + D, *y2 = x + 2 * D, *rr = x + 3 * D, *g = x + 4 * D;
  float *xf = malloc(sizeof(float) * 4 * D), *yf = xf + 2 * D;
  memset(g, 0, sizeof(double) * D);
  rng_fill_normal(r, x, (size_t)D);
  rng_fill_normal(r, rr, (size_t)a->n_obs);
  obs_apply(a, x, y1, 1);
  obs_apply(b, x, y2, 1);
  assert_memory_equal(y1, y2, sizeof(double) * a->n_obs);
  obs_apply_adjoint(a, rr, g, 1);
  double lhs = 0, rhs = 0;
  for (int k = 0; k < a->n_obs; k++) lhs += y1[k] * rr[k];
  for (int k = 0; k < D; k++) rhs += x[k] * g[k];
  assert_true(fabs(lhs - rhs) < 1e-12 * (1 + fabs(lhs)));
  for (int k = 0; k < D; k++) xf[k] = xf[D + k] = (float)x[k];
  obs_apply_f(a, xf, yf, 2);
  for (int k = 0; k < a->n_obs; k++) assert_true(fabs(yf[a->n_obs + k] - y1[k]) < 1e-5);
  free(x);
  free(xf);
  free(text);
  json_decref(j);
  json_decref(j2);
  obs_free(a);
  obs_free(b);
}

/* every operator round-trips through JSON and satisfies <Ax, r> = <x, A^T r> */
static void test_roundtrip_and_adjoint(void **state) {
  (void)state;
  const char *ops[] = {"{\"type\":\"identity\"}",
                       "{\"type\":\"subsample\",\"stride\":2,\"offset\":1}",
                       "{\"type\":\"stations\",\"indices\":[3,9,11]}",
                       "{\"type\":\"kernel_stations\",\"seed\":3}",
                       "{\"type\":\"coarsen\",\"factor\":4}",
                       "{\"type\":\"dense\",\"matrix\":[[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0.25]]}"};
  rng r;
  rng_init(&r, 1, 1);
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) check_roundtrip_and_adjoint(ops[i], 1, 1, 16, &r);
}

static void test_malformed_rejected(void **state) {
  (void)state;
  static const struct { const char *json; const char *needle; } bad[] = {
      {"[1,2]", "object"},
      {"{}", "operator.type"},
      {"{\"type\":3}", "operator.type"},
      {"{\"type\":\"fancy\"}", "unknown"},
      {"{\"type\":\"identity\",\"stride\":2}", "unknown field 'stride'"},
      {"{\"type\":\"subsample\",\"stride\":0}", "operator.stride"},
      {"{\"type\":\"subsample\",\"stride\":2.5}", "operator.stride"},
      {"{\"type\":\"subsample\",\"stride\":2,\"offset\":2}", "operator.offset"},
      {"{\"type\":\"subsample\",\"stride\":\"2\"}", "operator.stride"},
      {"{\"type\":\"stations\"}", "operator.indices"},
      {"{\"type\":\"stations\",\"indices\":[]}", "empty"},
      {"{\"type\":\"stations\",\"indices\":[16]}", "operator.indices[0]"},
      {"{\"type\":\"stations\",\"indices\":[1,-1]}", "operator.indices[1]"},
      {"{\"type\":\"stations\",\"indices\":[1,null]}", "operator.indices[1]"},
      {"{\"type\":\"kernel_stations\",\"block\":3}", "does not divide"},
      {"{\"type\":\"kernel_stations\",\"sigma_k\":-1}", "operator.sigma_k"},
      {"{\"type\":\"kernel_stations\",\"positions\":[1,2]}", "expected 4"},
      {"{\"type\":\"coarsen\"}", "operator.factor"},
      {"{\"type\":\"coarsen\",\"factor\":3}", "does not divide"},
      {"{\"type\":\"dense\",\"matrix\":[]}", "operator.matrix"},
      {"{\"type\":\"dense\",\"matrix\":[[1,2]]}", "operator.matrix[0]"},
      {"{\"type\":\"dense\",\"matrix\":[[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\"x\"]]}", "operator.matrix[0][15]"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    obs_op *op = (obs_op *)1;
    sb_error err = {0};
    int rc = obs_from_string(&op, bad[i].json, 1, 1, 16, &err);
    if (rc == 0) fail_msg("accepted %s", bad[i].json);
    assert_null(op);
    if (!strstr(err.msg, bad[i].needle)) fail_msg("%s: message '%s' lacks '%s'", bad[i].json, err.msg, bad[i].needle);
  }
  obs_op *op;
  sb_error err;
  assert_int_equal(obs_from_string(&op, "{\"type\":", 1, 1, 16, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "not valid JSON"));
  assert_int_not_equal(obs_from_string(&op, "{\"type\":\"kernel_stations\"}", 2, 4, 4, &err), 0);
}

/* 2D states [C][H][W]: per-axis coarsen and subsample, channels, points */
static void test_2d_pick_and_coarsen(void **state) {
  (void)state;
  double z[64], y[64];
  for (int i = 0; i < 64; i++) z[i] = i; /* [2][4][8] */
  obs_op *op = make("{\"type\":\"coarsen\",\"factor\":[2,4]}", 2, 4, 8);
  assert_int_equal(op->n_obs, 8);
  apply1(op, z, y);
  assert_true(fabs(y[0] - (0 + 1 + 2 + 3 + 8 + 9 + 10 + 11) / 8.0) < 1e-14);
  assert_true(fabs(y[4] - 32 - y[0]) < 1e-14);
  obs_free(op);
  op = make("{\"type\":\"coarsen\",\"factor\":[2,4],\"channels\":[1]}", 2, 4, 8);
  assert_int_equal(op->n_obs, 4);
  apply1(op, z, y);
  assert_true(fabs(y[0] - 37.5) < 1e-14);
  obs_free(op);
  op = make("{\"type\":\"subsample\",\"stride\":[2,4],\"offset\":[1,0]}", 2, 4, 8);
  assert_int_equal(op->n_obs, 8); /* rows 1, 3; columns 0, 4; both channels */
  apply1(op, z, y);
  const double want[8] = {8, 12, 24, 28, 40, 44, 56, 60};
  assert_memory_equal(y, want, sizeof want);
  obs_free(op);
  op = make("{\"type\":\"subsample\",\"stride\":2}", 2, 4, 8); /* a number: both axes */
  assert_int_equal(op->n_obs, 16);
  apply1(op, z, y);
  assert_true(y[0] == 0 && y[1] == 2 && y[4] == 16 && y[8] == 32);
  obs_free(op);
  op = make("{\"type\":\"stations\",\"points\":[[0,1],[3,7]]}", 2, 4, 8);
  assert_int_equal(op->n_obs, 4);
  apply1(op, z, y);
  assert_true(y[0] == 1 && y[1] == 31 && y[2] == 33 && y[3] == 63);
  obs_free(op);
  op = make("{\"type\":\"stations\",\"points\":[[3,7]],\"channels\":[1]}", 2, 4, 8);
  apply1(op, z, y);
  assert_int_equal(op->n_obs, 1);
  assert_true(y[0] == 63);
  obs_free(op);
}

static void test_random_stations(void **state) {
  (void)state;
  obs_op *a = make("{\"type\":\"random_stations\",\"fraction\":0.05,\"seed\":3}", 2, 32, 32);
  assert_int_equal(a->n_idx, 51); /* round(0.05 * 1024) grid points, both channels */
  assert_int_equal(a->n_obs, 102);
  for (int i = 1; i < a->n_idx; i++) assert_true(a->idx[i] > a->idx[i - 1]); /* distinct, sorted */
  for (int i = 0; i < a->n_idx; i++) assert_int_equal(a->col[a->n_idx + i], 1024 + a->col[i]);
  obs_op *b = make("{\"type\":\"random_stations\",\"count\":51,\"seed\":3}", 2, 32, 32);
  assert_memory_equal(a->idx, b->idx, sizeof(int) * 51);
  obs_free(b);
  b = make("{\"type\":\"random_stations\",\"count\":51,\"seed\":4}", 2, 32, 32);
  assert_memory_not_equal(a->idx, b->idx, sizeof(int) * 51);
  obs_free(b);
  /* the points drawn are spread out: every quarter of the grid gets some */
  int quarter[4] = {0};
  for (int i = 0; i < a->n_idx; i++) quarter[(a->idx[i] / 32 >= 16) * 2 + (a->idx[i] % 32 >= 16)]++;
  for (int q = 0; q < 4; q++) assert_true(quarter[q] > 0);
  /* serialization lists the points; reading it back gives the same operator */
  json_t *j = obs_to_json(a);
  assert_int_equal(json_integer_value(json_object_get(j, "count")), 51);
  assert_int_equal(json_array_size(json_object_get(j, "points")), 51);
  char *text = json_dumps(j, JSON_COMPACT);
  b = make(text, 2, 32, 32);
  assert_memory_equal(a->idx, b->idx, sizeof(int) * 51);
  free(text);
  json_decref(j);
  obs_free(a);
  obs_free(b);
  a = make("{\"type\":\"random_stations\",\"count\":10,\"channels\":[0]}", 2, 32, 32);
  assert_int_equal(a->n_obs, 10);
  obs_free(a);
}

/* u = sin x cos y, v = -cos x sin y sampled on the grid: curl 2 sin x sin y */
static void test_vorticity(void **state) {
  (void)state;
  const int N = 32;
  double *x = malloc(sizeof(double) * 2 * N * N), *y = malloc(sizeof(double) * N * N);
  const double h = 2 * M_PI / N;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      x[i * N + j] = sin(j * h) * cos(i * h);
      x[N * N + i * N + j] = -cos(j * h) * sin(i * h);
    }
  obs_op *op = make("{\"type\":\"vorticity\"}", 2, N, N);
  assert_int_equal(op->n_obs, N * N);
  apply1(op, x, y);
  double e = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) e = fmax(e, fabs(y[i * N + j] - 2 * sin(j * h) * sin(i * h)));
  assert_true(e < 1e-12);
  obs_free(op);
  op = make("{\"type\":\"vorticity\",\"method\":\"fd\"}", 2, N, N);
  apply1(op, x, y);
  e = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) e = fmax(e, fabs(y[i * N + j] - 2 * sin(h) / h * sin(j * h) * sin(i * h)));
  assert_true(e < 1e-12);
  obs_free(op);
  /* coarsened by 4: the block means of the pointwise curl */
  obs_op *pt = make("{\"type\":\"vorticity\"}", 2, N, N);
  op = make("{\"type\":\"vorticity\",\"factor\":4}", 2, N, N);
  assert_int_equal(op->n_obs, 64);
  double *yc = malloc(sizeof(double) * 64);
  apply1(pt, x, y);
  apply1(op, x, yc);
  double m = 0;
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++) m += y[(8 + a) * N + 4 + b] / 16;
  assert_true(fabs(yc[2 * 8 + 1] - m) < 1e-12);
  /* a uniform flow has no curl */
  for (int i = 0; i < 2 * N * N; i++) x[i] = i < N * N ? 0.7 : -0.3;
  apply1(op, x, yc);
  for (int i = 0; i < 64; i++) assert_true(fabs(yc[i]) < 1e-12);
  obs_free(op);
  obs_free(pt);
  free(x);
  free(y);
  free(yc);
}

static void test_2d_roundtrip_and_adjoint(void **state) {
  (void)state;
  const char *ops[] = {"{\"type\":\"subsample\",\"stride\":[2,4],\"offset\":[1,3],\"channels\":[1]}",
                       "{\"type\":\"subsample\",\"stride\":2}",
                       "{\"type\":\"coarsen\",\"factor\":[4,2]}",
                       "{\"type\":\"coarsen\",\"factor\":4,\"channels\":[0]}",
                       "{\"type\":\"stations\",\"points\":[[0,0],[7,5]],\"channels\":[1,0]}",
                       "{\"type\":\"random_stations\",\"fraction\":0.1,\"seed\":9}",
                       "{\"type\":\"vorticity\",\"factor\":2}",
                       "{\"type\":\"vorticity\",\"method\":\"fd\"}"};
  rng r;
  rng_init(&r, 1, 2);
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) check_roundtrip_and_adjoint(ops[i], 2, 8, 8, &r);
}

static void test_2d_malformed_rejected(void **state) {
  (void)state;
  static const struct { const char *json; int C, H, W; const char *needle; } bad[] = {
      {"{\"type\":\"vorticity\"}", 1, 1, 16, "2D velocity state"},
      {"{\"type\":\"vorticity\"}", 1, 8, 8, "2D velocity state"},
      {"{\"type\":\"vorticity\",\"method\":\"exact\"}", 2, 8, 8, "operator.method"},
      {"{\"type\":\"vorticity\",\"factor\":3}", 2, 8, 8, "does not divide"},
      {"{\"type\":\"coarsen\",\"factor\":[3,4]}", 2, 8, 8, "does not divide"},
      {"{\"type\":\"coarsen\",\"factor\":[2,2,2]}", 2, 8, 8, "operator.factor"},
      {"{\"type\":\"subsample\",\"stride\":[2,2]}", 1, 1, 16, "must be an integer"},
      {"{\"type\":\"subsample\",\"stride\":[2,9]}", 2, 8, 8, "along W"},
      {"{\"type\":\"subsample\",\"stride\":[2,2],\"offset\":[2,0]}", 2, 8, 8, "along H"},
      {"{\"type\":\"subsample\",\"channels\":[2]}", 2, 8, 8, "operator.channels[0]"},
      {"{\"type\":\"subsample\",\"channels\":[1,1]}", 2, 8, 8, "repeats"},
      {"{\"type\":\"subsample\",\"channels\":[]}", 2, 8, 8, "operator.channels"},
      {"{\"type\":\"stations\",\"points\":[[8,0]]}", 2, 8, 8, "operator.points[0]"},
      {"{\"type\":\"stations\",\"points\":[[1,1],[0]]}", 2, 8, 8, "operator.points[1]"},
      {"{\"type\":\"stations\",\"points\":[[1,1]],\"indices\":[0]}", 2, 8, 8, "not both"},
      {"{\"type\":\"stations\",\"indices\":[0],\"channels\":[0]}", 2, 8, 8, "goes with points"},
      {"{\"type\":\"random_stations\",\"seed\":1}", 2, 8, 8, "operator.count or operator.fraction"},
      {"{\"type\":\"random_stations\",\"count\":65}", 2, 8, 8, "operator.count"},
      {"{\"type\":\"random_stations\",\"fraction\":1.5}", 2, 8, 8, "operator.fraction"},
      {"{\"type\":\"random_stations\",\"count\":2,\"fraction\":0.5}", 2, 8, 8, "not both"},
      {"{\"type\":\"random_stations\",\"count\":2,\"points\":[[0,0]]}", 2, 8, 8, "expected 2"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    obs_op *op = (obs_op *)1;
    sb_error err = {0};
    int rc = obs_from_string(&op, bad[i].json, bad[i].C, bad[i].H, bad[i].W, &err);
    if (rc == 0) fail_msg("accepted %s", bad[i].json);
    assert_null(op);
    if (!strstr(err.msg, bad[i].needle)) fail_msg("%s: message '%s' lacks '%s'", bad[i].json, err.msg, bad[i].needle);
  }
}

static void test_noise(void **state) {
  (void)state;
  obs_noise nz;
  sb_error err;
  json_t *j = json_loads("[0.5, 2.0]", 0, NULL);
  assert_int_equal(obs_noise_from_json(&nz, j, 2, &err), 0);
  json_decref(j);
  const int B = 20000;
  double *y = calloc((size_t)B * 2, sizeof(double));
  obs_add_noise(&nz, y, B, 3, 0);
  double s0 = 0, s1 = 0;
  for (int b = 0; b < B; b++) s0 += y[2 * b] * y[2 * b], s1 += y[2 * b + 1] * y[2 * b + 1];
  assert_true(fabs(sqrt(s0 / B) - 0.5) < 0.02 && fabs(sqrt(s1 / B) - 2.0) < 0.06);
  free(y);
  json_t *back = obs_noise_to_json(&nz);
  assert_true(json_is_array(back) && json_array_size(back) == 2);
  json_decref(back);
  obs_noise_free(&nz);
  const char *bad[] = {"0", "-1", "\"1\"", "[1]", "[1, 0]", "[1, null]", "null"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *b = json_loads(bad[i], JSON_DECODE_ANY, NULL);
    if (!obs_noise_from_json(&nz, b, 2, &err)) fail_msg("accepted noise %s", bad[i]);
    assert_true(strlen(err.msg) > 10);
    json_decref(b);
  }
  assert_int_equal(obs_noise_scalar(&nz, NAN, 2, &err), SB_ERANGE);
  assert_int_equal(obs_noise_scalar(&nz, INFINITY, 2, &err), SB_ERANGE);
}

static void test_window_parsing(void **state) {
  (void)state;
  double y[6];
  sb_error err;
  json_t *j = json_loads("[[1, null], null, [3, 4]]", 0, NULL);
  assert_int_equal(obs_window_from_json(j, 3, 2, y, &err), 0);
  assert_true(y[0] == 1 && isnan(y[1]) && isnan(y[2]) && isnan(y[3]) && y[4] == 3 && y[5] == 4);
  assert_int_equal(obs_count_observed(y, 6), 3);
  json_decref(j);
  static const struct { const char *json; const char *needle; } bad[] = {
      {"{}", "array of 3 rows"},
      {"[[1,2],[3,4]]", "has 2 rows"},
      {"[[1,2],[3],[5,6]]", "observations[1] has 1"},
      {"[[1,2],[3,\"a\"],[5,6]]", "observations[1][1]"},
      {"[[1,2],[3,true],[5,6]]", "observations[1][1]"},
      {"[[1,2],5,[5,6]]", "observations[1]"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *b = json_loads(bad[i].json, JSON_DECODE_ANY, NULL);
    assert_non_null(b);
    if (!obs_window_from_json(b, 3, 2, y, &err)) fail_msg("accepted %s", bad[i].json);
    if (!strstr(err.msg, bad[i].needle)) fail_msg("%s: message '%s' lacks '%s'", bad[i].json, err.msg, bad[i].needle);
    json_decref(b);
  }
  /* jansson refuses NaN/Infinity literals and overflowing numbers at parse time */
  assert_null(json_loads("[[NaN, 1]]", 0, NULL));
  assert_null(json_loads("[[1e999, 1]]", 0, NULL));
}

/* Nonlinear operators y = f(A x): parsing, canonical JSON, the inner
 * operator's locations, and refusals (nesting, a missing or non-object "of",
 * unknown fields, errors inside "of" named as such). */
static void test_nonlinear_parse(void **state) {
  (void)state;
  obs_op *op = make("{\"type\":\"arctan\",\"of\":{\"type\":\"subsample\",\"stride\":4,\"offset\":1}}", 1, 1, 16);
  obs_op *lin = make("{\"type\":\"subsample\",\"stride\":4,\"offset\":1}", 1, 1, 16);
  assert_int_equal(op->fn, OBS_FN_ARCTAN);
  assert_false(obs_is_linear(op));
  assert_true(obs_is_linear(lin));
  assert_string_equal(obs_type_name(op), "arctan");
  assert_string_equal(obs_type_name(lin), "subsample");
  assert_int_equal(op->n_obs, 4);
  json_t *j = obs_to_json(op);
  char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  assert_string_equal(text, "{\"of\":{\"offset\":1,\"stride\":4,\"type\":\"subsample\"},\"type\":\"arctan\"}");
  obs_op *back = make(text, 1, 1, 16);
  assert_int_equal(back->fn, OBS_FN_ARCTAN);
  double x[16], y[4], yl[4];
  for (int i = 0; i < 16; i++) x[i] = 0.7 * i - 5;
  obs_apply(back, x, y, 1);
  obs_apply(lin, x, yl, 1);
  for (int i = 0; i < 4; i++) {
    assert_true(y[i] == atan(x[4 * i + 1]) && yl[i] == x[4 * i + 1]);
    double a[2], b[2];
    obs_location(op, i, a);
    obs_location(lin, i, b);
    assert_true(a[0] == b[0] && a[1] == b[1]);
  }
  float xf[16], yf[4];
  for (int i = 0; i < 16; i++) xf[i] = (float)x[i];
  obs_apply_f(op, xf, yf, 1);
  for (int i = 0; i < 4; i++) assert_true(fabs(yf[i] - y[i]) < 1e-6);
  free(text);
  json_decref(j);
  obs_free(back);
  obs_free(op);
  obs_free(lin);
  const char *fn_ops[] = {"{\"type\":\"square\",\"of\":{\"type\":\"identity\"}}",
                          "{\"type\":\"abs\",\"of\":{\"type\":\"stations\",\"indices\":[2,3]}}"};
  const double want[2][2] = {{25, 16}, {3, 2}}; /* x = 5 - i: square at nodes 0, 1; abs at 2, 3 */
  for (int k = 0; k < 2; k++) {
    op = make(fn_ops[k], 1, 1, 16);
    for (int i = 0; i < 16; i++) x[i] = 5 - i;
    double yy[16];
    obs_apply(op, x, yy, 1);
    assert_true(yy[0] == want[k][0] && yy[1] == want[k][1]);
    obs_free(op);
  }
  static const struct { const char *json; const char *needle; } bad[] = {
      {"{\"type\":\"arctan\"}", "operator.of is required for arctan"},
      {"{\"type\":\"square\",\"of\":3}", "operator.of is required"},
      {"{\"type\":\"arctan\",\"of\":{\"type\":\"arctan\",\"of\":{\"type\":\"identity\"}}}", "do not nest"},
      {"{\"type\":\"abs\",\"of\":{\"type\":\"square\",\"of\":{\"type\":\"identity\"}}}", "(abs of square)"},
      {"{\"type\":\"arctan\",\"of\":{\"type\":\"identity\"},\"scale\":2}", "unknown field 'scale'"},
      {"{\"type\":\"arctan\",\"of\":{\"type\":\"subsample\",\"stride\":0}}", "operator.of: operator.stride"},
      {"{\"type\":\"arctan\",\"of\":{}}", "operator.of: operator.type"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    op = (obs_op *)1;
    sb_error err = {0};
    if (obs_from_string(&op, bad[i].json, 1, 1, 16, &err) == 0) fail_msg("accepted %s", bad[i].json);
    assert_null(op);
    if (!strstr(err.msg, bad[i].needle)) fail_msg("%s: message '%s' lacks '%s'", bad[i].json, err.msg, bad[i].needle);
  }
}

/* 4-point central difference (ggml's) of phi along direction k of x */
static double fd4(double (*phi)(const obs_op *, const double *, const double *), const obs_op *op, double *x,
                  const double *r, int k, double h) {
  double x0 = x[k], v[4];
  const double at[4] = {h / 2, -h, -h / 2, h};
  for (int i = 0; i < 4; i++) {
    x[k] = x0 + at[i];
    v[i] = phi(op, x, r);
  }
  x[k] = x0;
  return (8 * v[0] + v[1] - 8 * v[2] - v[3]) / (6 * h);
}

/* phi(x) = <r, f(A x)>: its gradient is J(x)^T r */
static double inner_obs(const obs_op *op, const double *x, const double *r) {
  double y[8], s = 0;
  obs_apply(op, x, y, 1);
  for (int i = 0; i < op->n_obs; i++) s += r[i] * y[i];
  return s;
}

/* J^T r = A^T (f'(A x) * r) against finite differences of <r, f(A x)> for
 * every function, on random states and a dense A with mixed signs (abs away
 * from its kink: |A x| > 1e-3 at every row, checked). Also obs_apply_deriv's
 * f' against finite differences of f, and B = 2 states at once. */
static void test_nonlinear_jacobian_fd(void **state) {
  (void)state;
  const char *fn_names[] = {"arctan", "square", "abs"};
  rng r;
  rng_init(&r, 11, 0);
  for (int f = 0; f < 3; f++)
    for (int trial = 0; trial < 4; trial++) {
      char text[512];
      double A[3][6];
      for (int i = 0; i < 3; i++)
        for (int c = 0; c < 6; c++) A[i][c] = rng_normal(&r);
      int n = snprintf(text, sizeof text, "{\"type\":\"%s\",\"of\":{\"type\":\"dense\",\"matrix\":[", fn_names[f]);
      for (int i = 0; i < 3; i++) {
        n += snprintf(text + n, sizeof text - n, "%s[", i ? "," : "");
        for (int c = 0; c < 6; c++) n += snprintf(text + n, sizeof text - n, "%s%.17g", c ? "," : "", A[i][c]);
        n += snprintf(text + n, sizeof text - n, "]");
      }
      snprintf(text + n, sizeof text - n, "]}}");
      obs_op *op = make(text, 1, 1, 6);
      double x[12], rr[6], g[12] = {0}, y[6], dy[6];
      rng_fill_normal(&r, x, 12);
      rng_fill_normal(&r, rr, 6);
      obs_jacobian_t(op, x, rr, g, 2);
      obs_apply_deriv(op, x, y, dy, 2);
      for (int b = 0; b < 2; b++) {
        for (int i = 0; i < 3; i++) {
          double s = 0;
          for (int c = 0; c < 6; c++) s += A[i][c] * x[b * 6 + c];
          assert_true(fabs(s) > 1e-3);
          double want = f == 0 ? atan(s) : f == 1 ? s * s : fabs(s);
          assert_true(fabs(y[b * 3 + i] - want) < 1e-12 * (1 + fabs(want)));
          double h = 1e-4, fd = 0;
          for (int sgn = -1; sgn <= 1; sgn += 2) {
            double u = s + sgn * h;
            fd += sgn * (f == 0 ? atan(u) : f == 1 ? u * u : fabs(u));
          }
          fd /= 2 * h;
          if (fabs(dy[b * 3 + i] - fd) > 1e-6 * (1 + fabs(fd)))
            fail_msg("%s: f'(%g) = %g, finite differences %g", fn_names[f], s, dy[b * 3 + i], fd);
        }
        for (int k = 0; k < 6; k++) {
          double fd = fd4(inner_obs, op, x + b * 6, rr + b * 3, k, 1e-4);
          if (fabs(g[b * 6 + k] - fd) > 1e-7 * (1 + fabs(fd)))
            fail_msg("%s: (J^T r)[%d] = %.10g, finite differences %.10g", fn_names[f], k, g[b * 6 + k], fd);
        }
      }
      obs_free(op);
    }
  /* linear: J^T r is A^T r whatever x is (x may be NULL) */
  obs_op *op = make("{\"type\":\"subsample\",\"stride\":2}", 1, 1, 6);
  double rr[3] = {1, -2, 3}, g[6] = {0};
  obs_jacobian_t(op, NULL, rr, g, 1);
  assert_true(g[0] == 1 && g[2] == -2 && g[4] == 3 && g[1] == 0);
  obs_free(op);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_2d_pick_and_coarsen),
      cmocka_unit_test(test_random_stations),
      cmocka_unit_test(test_vorticity),
      cmocka_unit_test(test_2d_roundtrip_and_adjoint),
      cmocka_unit_test(test_2d_malformed_rejected),
      cmocka_unit_test(test_identity_and_subsample), cmocka_unit_test(test_stations_and_coarsen),
      cmocka_unit_test(test_kernel_stations),        cmocka_unit_test(test_dense),
      cmocka_unit_test(test_roundtrip_and_adjoint),  cmocka_unit_test(test_malformed_rejected),
      cmocka_unit_test(test_noise),                  cmocka_unit_test(test_window_parsing),
      cmocka_unit_test(test_nonlinear_parse),        cmocka_unit_test(test_nonlinear_jacobian_fd),
  };
  return cmocka_run_group_tests_name("obs", tests, NULL, NULL);
}
