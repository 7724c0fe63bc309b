#include "util/npy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fileio.h"

size_t npy_dtype_size(npy_dtype t) {
  switch (t) {
  case NPY_F32: case NPY_I32: return 4;
  case NPY_F64: case NPY_I64: return 8;
  case NPY_U8: return 1;
  }
  return 0;
}

static const char *descr_of(npy_dtype t) {
  switch (t) {
  case NPY_F32: return "<f4";
  case NPY_F64: return "<f8";
  case NPY_I32: return "<i4";
  case NPY_I64: return "<i8";
  case NPY_U8: return "|u1";
  }
  return "?";
}

static int checked_count(int ndim, const size_t *shape, size_t elsize, size_t *count, sb_error *err) {
  size_t c = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] != 0 && c > SIZE_MAX / shape[i] / (elsize ? elsize : 1))
      return sb_fail(err, SB_ERANGE, "array too large");
    c *= shape[i];
  }
  *count = c;
  return SB_OK;
}

int npy_encode(npy_dtype dtype, int ndim, const size_t *shape, const void *data,
               unsigned char **buf, size_t *len, sb_error *err) {
  if (ndim < 0 || ndim > NPY_MAX_DIMS) return sb_fail(err, SB_EINVAL, "npy: ndim %d not in 0..%d", ndim, NPY_MAX_DIMS);
  size_t es = npy_dtype_size(dtype), count = 0;
  if (!es) return sb_fail(err, SB_EINVAL, "npy: unknown dtype");
  int rc = checked_count(ndim, shape, es, &count, err);
  if (rc) return rc;
  char dict[512], shp[256] = "";
  int m = 0;
  for (int i = 0; i < ndim; i++)
    m += snprintf(shp + m, sizeof shp - (size_t)m, i ? ", %zu" : "%zu", shape[i]);
  int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s%s), }",
                   descr_of(dtype), shp, ndim == 1 ? "," : "");
  /* magic(6) + version(2) + hlen(2) + dict + pad + '\n' divisible by 64 */
  size_t total_header = 10 + (size_t)n + 1;
  size_t pad = (64 - total_header % 64) % 64;
  size_t hlen = (size_t)n + pad + 1;
  size_t nbytes = count * es;
  unsigned char *b = malloc(10 + hlen + nbytes);
  if (!b) return sb_fail(err, SB_ENOMEM, "npy: out of memory for %zu bytes", nbytes);
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  b[8] = (unsigned char)(hlen & 0xff);
  b[9] = (unsigned char)(hlen >> 8);
  memcpy(b + 10, dict, (size_t)n);
  memset(b + 10 + n, ' ', pad);
  b[10 + n + pad] = '\n';
  if (nbytes) memcpy(b + 10 + hlen, data, nbytes);
  *buf = b;
  *len = 10 + hlen + nbytes;
  return SB_OK;
}

int npy_write(const char *path, npy_dtype dtype, int ndim, const size_t *shape, const void *data,
              sb_error *err) {
  unsigned char *buf;
  size_t len;
  int rc = npy_encode(dtype, ndim, shape, data, &buf, &len, err);
  if (rc) return rc;
  rc = sb_write_file(path, buf, len, err);
  free(buf);
  return rc;
}

/* Finds 'key': in the header dict and returns a pointer after the colon. */
static const char *dict_value(const char *h, const char *key) {
  char pat[32];
  snprintf(pat, sizeof pat, "'%s'", key);
  const char *p = strstr(h, pat);
  if (!p) return NULL;
  p += strlen(pat);
  while (*p == ' ') p++;
  if (*p != ':') return NULL;
  p++;
  while (*p == ' ') p++;
  return p;
}

int npy_decode(const unsigned char *buf, size_t len, npy_array *arr, sb_error *err) {
  memset(arr, 0, sizeof *arr);
  if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
    return sb_fail(err, SB_EFORMAT, "npy: not a .npy file (bad magic)");
  int major = buf[6];
  size_t hlen, off;
  if (major == 1) {
    hlen = (size_t)buf[8] | ((size_t)buf[9] << 8);
    off = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12) return sb_fail(err, SB_EFORMAT, "npy: truncated header");
    hlen = (size_t)buf[8] | ((size_t)buf[9] << 8) | ((size_t)buf[10] << 16) | ((size_t)buf[11] << 24);
    off = 12;
  } else {
    return sb_fail(err, SB_EFORMAT, "npy: unsupported format version %d", major);
  }
  if (hlen > len - off) return sb_fail(err, SB_EFORMAT, "npy: truncated header");
  char *h = malloc(hlen + 1);
  if (!h) return sb_fail(err, SB_ENOMEM, "npy: out of memory");
  memcpy(h, buf + off, hlen);
  h[hlen] = 0;
  int rc = SB_OK;
  const char *d = dict_value(h, "descr"), *fo = dict_value(h, "fortran_order"), *sh = dict_value(h, "shape");
  if (!d || !fo || !sh) {
    rc = sb_fail(err, SB_EFORMAT, "npy: header lacks descr, fortran_order or shape");
    goto done;
  }
  if (!strncmp(fo, "True", 4)) {
    rc = sb_fail(err, SB_ENOTSUP, "npy: Fortran-order arrays are not supported (save with C order)");
    goto done;
  }
  static const struct { const char *s; npy_dtype t; } types[] = {
      {"'<f4'", NPY_F32}, {"'<f8'", NPY_F64}, {"'<i4'", NPY_I32}, {"'<i8'", NPY_I64},
      {"'|u1'", NPY_U8},  {"'<u1'", NPY_U8},  {"'|b1'", NPY_U8}};
  int found = 0;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (!strncmp(d, types[i].s, strlen(types[i].s))) {
      arr->dtype = types[i].t;
      found = 1;
      break;
    }
  if (!found) {
    rc = sb_fail(err, SB_ENOTSUP, "npy: unsupported dtype %.12s (use little-endian float32/float64/int32/int64/uint8)", d);
    goto done;
  }
  if (*sh != '(') {
    rc = sb_fail(err, SB_EFORMAT, "npy: malformed shape");
    goto done;
  }
  const char *p = sh + 1;
  arr->ndim = 0;
  for (;;) {
    while (*p == ' ' || *p == ',') p++;
    if (*p == ')') break;
    if (!isdigit((unsigned char)*p) || arr->ndim >= NPY_MAX_DIMS) {
      rc = sb_fail(err, SB_EFORMAT, "npy: malformed or too many dimensions in shape");
      goto done;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno) {
      rc = sb_fail(err, SB_EFORMAT, "npy: dimension out of range");
      goto done;
    }
    arr->shape[arr->ndim++] = (size_t)v;
    p = end;
  }
  size_t es = npy_dtype_size(arr->dtype);
  rc = checked_count(arr->ndim, arr->shape, es, &arr->count, err);
  if (rc) goto done;
  size_t nbytes = arr->count * es;
  if (len - off - hlen < nbytes) {
    rc = sb_fail(err, SB_EFORMAT, "npy: data truncated (%zu of %zu bytes)", len - off - hlen, nbytes);
    goto done;
  }
  arr->data = malloc(nbytes ? nbytes : 1);
  if (!arr->data) {
    rc = sb_fail(err, SB_ENOMEM, "npy: out of memory");
    goto done;
  }
  memcpy(arr->data, buf + off + hlen, nbytes);
done:
  free(h);
  return rc;
}

int npy_read(const char *path, npy_array *arr, sb_error *err) {
  unsigned char *buf;
  size_t len;
  int rc = sb_read_file(path, &buf, &len, (size_t)1 << 34, err);
  if (rc) return rc;
  rc = npy_decode(buf, len, arr, err);
  free(buf);
  if (rc) sb_wrap(err, "%s", path);
  return rc;
}

int npy_to_f64(npy_array *arr, sb_error *err) {
  if (arr->dtype == NPY_F64) return SB_OK;
  double *d = malloc(sizeof(double) * (arr->count ? arr->count : 1));
  if (!d) return sb_fail(err, SB_ENOMEM, "npy: out of memory");
  for (size_t i = 0; i < arr->count; i++) {
    switch (arr->dtype) {
    case NPY_F32: d[i] = ((float *)arr->data)[i]; break;
    case NPY_I32: d[i] = ((int32_t *)arr->data)[i]; break;
    case NPY_I64: d[i] = (double)((int64_t *)arr->data)[i]; break;
    case NPY_U8: d[i] = ((uint8_t *)arr->data)[i]; break;
    case NPY_F64: break;
    }
  }
  free(arr->data);
  arr->data = d;
  arr->dtype = NPY_F64;
  return SB_OK;
}

void npy_free(npy_array *arr) {
  if (!arr) return;
  free(arr->data);
  arr->data = NULL;
}
