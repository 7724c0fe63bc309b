/* .npy and safetensors: round trips, files numpy wrote (tests/data/numpy,
 * regenerate with tests/data/make_numpy_fixtures.py), and damaged files.
 * With SBIDA_TEST_OUT=DIR set, the round-trip files are left in DIR for
 * tests/py/test_interop.py to open with numpy. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/fileio.h"
#include "util/npy.h"
#include "util/safetensors.h"
#include "testutil.h"

static char *path_in(const char *name) {
  static char buf[8][512];
  static int k;
  const char *dir = getenv("SBIDA_TEST_OUT") ? getenv("SBIDA_TEST_OUT") : tu_tmpdir();
  char *p = buf[k++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

static void test_npy_roundtrip(void **state) {
  (void)state;
  sb_error err;
  float f[24];
  double d[7];
  for (int i = 0; i < 24; i++) f[i] = (float)i * 0.5f - 3.0f;
  for (int i = 0; i < 7; i++) d[i] = sin(i) * 1e10;
  size_t s3[3] = {2, 3, 4}, s1[1] = {7};
  assert_int_equal(npy_write(path_in("c_f32_2x3x4.npy"), NPY_F32, 3, s3, f, &err), 0);
  assert_int_equal(npy_write(path_in("c_f64_7.npy"), NPY_F64, 1, s1, d, &err), 0);
  npy_array a;
  assert_int_equal(npy_read(path_in("c_f32_2x3x4.npy"), &a, &err), 0);
  assert_int_equal(a.dtype, NPY_F32);
  assert_int_equal(a.ndim, 3);
  assert_true(a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 4 && a.count == 24);
  assert_memory_equal(a.data, f, sizeof f);
  npy_free(&a);
  assert_int_equal(npy_read(path_in("c_f64_7.npy"), &a, &err), 0);
  assert_true(a.dtype == NPY_F64 && a.ndim == 1 && a.shape[0] == 7);
  assert_memory_equal(a.data, d, sizeof d);
  npy_free(&a);
  /* header is 64-byte aligned as numpy writes it */
  unsigned char *buf;
  size_t len;
  assert_int_equal(npy_encode(NPY_F64, 0, NULL, d, &buf, &len, &err), 0);
  assert_int_equal((len - 8) % 64, 0);
  assert_int_equal(npy_decode(buf, len, &a, &err), 0);
  assert_true(a.ndim == 0 && a.count == 1 && ((double *)a.data)[0] == d[0]);
  npy_free(&a);
  free(buf);
}

static void test_npy_from_numpy(void **state) {
  (void)state;
  sb_error err;
  npy_array a;
  assert_int_equal(npy_read("tests/data/numpy/f32_2x3.npy", &a, &err), 0);
  assert_true(a.dtype == NPY_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3);
  for (int i = 0; i < 6; i++) assert_true(((float *)a.data)[i] == i / 4.0f);
  npy_free(&a);
  assert_int_equal(npy_read("tests/data/numpy/f64_5.npy", &a, &err), 0);
  double want[5] = {0.1, -2.5, 1e-300, 3.0e300, 3.141592653589793};
  assert_memory_equal(a.data, want, sizeof want);
  npy_free(&a);
  assert_int_equal(npy_read("tests/data/numpy/f64_scalar.npy", &a, &err), 0);
  assert_true(a.ndim == 0 && ((double *)a.data)[0] == 7.25);
  npy_free(&a);
  assert_int_equal(npy_read("tests/data/numpy/i64_2x2x2.npy", &a, &err), 0);
  assert_true(a.dtype == NPY_I64 && a.ndim == 3);
  assert_int_equal(npy_to_f64(&a, &err), 0);
  assert_true(((double *)a.data)[0] == -4 && ((double *)a.data)[7] == 3);
  npy_free(&a);
  assert_int_equal(npy_read("tests/data/numpy/f32_v2.npy", &a, &err), 0);
  assert_true(a.count == 2 && ((float *)a.data)[1] == -1.5f);
  npy_free(&a);
  assert_int_equal(npy_read("tests/data/numpy/f32_fortran.npy", &a, &err), SB_ENOTSUP);
  assert_non_null(strstr(err.msg, "Fortran"));
  assert_int_equal(npy_read("tests/data/numpy/f64_bigendian.npy", &a, &err), SB_ENOTSUP);
  assert_non_null(strstr(err.msg, "dtype"));
}

static void test_npy_damaged(void **state) {
  (void)state;
  sb_error err;
  npy_array a;
  unsigned char *buf;
  size_t len;
  assert_int_equal(sb_read_file("tests/data/numpy/f32_2x3.npy", &buf, &len, 1 << 20, &err), 0);
  for (size_t cut = 0; cut < len; cut += 7) /* every truncation fails cleanly */
    assert_int_not_equal(npy_decode(buf, cut, &a, &err), 0);
  buf[0] = 'X';
  assert_int_equal(npy_decode(buf, len, &a, &err), SB_EFORMAT);
  free(buf);
  const char *hdr = "\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'shape': (2,)}   \n";
  assert_int_equal(npy_decode((const unsigned char *)hdr, strlen(hdr), &a, &err), SB_EFORMAT);
  assert_int_equal(npy_read("/nonexistent/x.npy", &a, &err), SB_EIO);
}

static void test_safetensors_roundtrip(void **state) {
  (void)state;
  sb_error err;
  st_file f;
  st_init(&f);
  float w[6] = {1, 2, 3, 4, 5, 6};
  double b[2] = {-1e-7, 1e7};
  int64_t sw[2] = {2, 3}, sb[1] = {2};
  assert_int_equal(st_add(&f, "layer.weight", ST_F32, 2, sw, w, &err), 0);
  assert_int_equal(st_add(&f, "layer.bias", ST_F64, 1, sb, b, &err), 0);
  assert_int_equal(st_add(&f, "layer.bias", ST_F64, 1, sb, b, &err), SB_EINVAL);
  assert_int_equal(st_set_meta(&f, "preset", "l96-sakov", &err), 0);
  assert_int_equal(st_set_meta(&f, "config", "{\"width\": 64}", &err), 0);
  assert_int_equal(st_write(&f, path_in("c_model.safetensors"), &err), 0);
  st_free(&f);

  st_file g;
  assert_int_equal(st_read(path_in("c_model.safetensors"), &g, &err), 0);
  assert_int_equal(g.n_tensors, 2);
  const st_tensor *t;
  assert_int_equal(st_get_checked(&g, "layer.weight", ST_F32, 2, sw, &t, &err), 0);
  assert_memory_equal(t->data, w, sizeof w);
  assert_int_equal(st_get_checked(&g, "layer.bias", ST_F64, 1, sb, &t, &err), 0);
  assert_memory_equal(t->data, b, sizeof b);
  assert_string_equal(st_get_meta(&g, "preset"), "l96-sakov");
  assert_string_equal(st_get_meta(&g, "config"), "{\"width\": 64}");
  assert_null(st_get_meta(&g, "absent"));
  int64_t wrong[2] = {3, 2};
  assert_int_equal(st_get_checked(&g, "layer.weight", ST_F32, 2, wrong, &t, &err), SB_EFORMAT);
  assert_non_null(strstr(err.msg, "shape [2,3], expected [3,2]"));
  assert_int_equal(st_get_checked(&g, "layer.weight", ST_F64, 2, sw, &t, &err), SB_EFORMAT);
  assert_int_equal(st_get_checked(&g, "nope", ST_F32, 2, sw, &t, &err), SB_EFORMAT);
  assert_non_null(strstr(err.msg, "missing"));
  st_free(&g);
}

static int decode_text(const char *header, size_t data_len, sb_error *err) {
  size_t hl = strlen(header);
  unsigned char *buf = calloc(8 + hl + data_len + 1, 1);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, header, hl);
  st_file f;
  int rc = st_decode(buf, 8 + hl + data_len, &f, err);
  if (rc == 0) st_free(&f);
  free(buf);
  return rc;
}

static void test_safetensors_damaged(void **state) {
  (void)state;
  sb_error err;
  static const struct { const char *h; size_t data; const char *needle; } bad[] = {
      {"not json", 0, "JSON"},
      {"[1,2]", 0, "JSON object"},
      {"{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, "dtype"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "needs 8 bytes"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "truncated"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "dimension"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "overlap"},
      {"{\"__metadata__\":{\"k\":1}}", 0, "not a string"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (decode_text(bad[i].h, bad[i].data, &err) == 0) fail_msg("accepted %s", bad[i].h);
    if (!strstr(err.msg, bad[i].needle)) fail_msg("%s: '%s' lacks '%s'", bad[i].h, err.msg, bad[i].needle);
  }
  /* header length pointing past the end, and every truncation of a good file */
  unsigned char *buf;
  size_t len;
  assert_int_equal(sb_read_file(path_in("c_model.safetensors"), &buf, &len, 1 << 20, &err), 0);
  st_file f;
  for (size_t cut = 0; cut < len; cut++) assert_int_not_equal(st_decode(buf, cut, &f, &err), 0);
  buf[7] = 0x7f;
  assert_int_equal(st_decode(buf, len, &f, &err), SB_EFORMAT);
  assert_non_null(strstr(err.msg, "header length"));
  free(buf);
  assert_int_equal(st_read("/nonexistent.safetensors", &f, &err), SB_EIO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_npy_roundtrip),         cmocka_unit_test(test_npy_from_numpy),
      cmocka_unit_test(test_npy_damaged),           cmocka_unit_test(test_safetensors_roundtrip),
      cmocka_unit_test(test_safetensors_damaged),
  };
  return cmocka_run_group_tests_name("files", tests, NULL, NULL);
}
