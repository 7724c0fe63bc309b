#include "util/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/fileio.h"
#include "util/jsonb.h"

#define ST_MAX_HEADER (100u * 1024u * 1024u)

size_t st_dtype_size(st_dtype t) {
  switch (t) {
  case ST_F32: case ST_I32: return 4;
  case ST_F64: case ST_I64: return 8;
  case ST_U8: return 1;
  }
  return 0;
}

const char *st_dtype_name(st_dtype t) {
  switch (t) {
  case ST_F32: return "F32";
  case ST_F64: return "F64";
  case ST_I32: return "I32";
  case ST_I64: return "I64";
  case ST_U8: return "U8";
  }
  return "?";
}

static int dtype_from_name(const char *s, st_dtype *t) {
  static const st_dtype all[] = {ST_F32, ST_F64, ST_I32, ST_I64, ST_U8};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (!strcmp(s, st_dtype_name(all[i]))) {
      *t = all[i];
      return 1;
    }
  return 0;
}

void st_init(st_file *f) { memset(f, 0, sizeof *f); }

int st_add(st_file *f, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
           const void *data, sb_error *err) {
  if (!name || !*name || !strcmp(name, "__metadata__"))
    return sb_fail(err, SB_EINVAL, "safetensors: invalid tensor name");
  if (ndim < 0 || ndim > ST_MAX_DIMS) return sb_fail(err, SB_EINVAL, "safetensors: %s: bad ndim %d", name, ndim);
  if (st_get(f, name)) return sb_fail(err, SB_EINVAL, "safetensors: duplicate tensor '%s'", name);
  size_t n = st_dtype_size(dtype);
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return sb_fail(err, SB_EINVAL, "safetensors: %s: negative dimension", name);
    n *= (size_t)shape[i];
  }
  if (f->n_tensors == f->cap_tensors) {
    int cap = f->cap_tensors ? 2 * f->cap_tensors : 16;
    st_tensor *t = realloc(f->tensors, sizeof *t * (size_t)cap);
    if (!t) return sb_fail(err, SB_ENOMEM, "out of memory");
    f->tensors = t;
    f->cap_tensors = cap;
  }
  st_tensor *t = &f->tensors[f->n_tensors];
  memset(t, 0, sizeof *t);
  t->name = strdup(name);
  if (!t->name) return sb_fail(err, SB_ENOMEM, "out of memory");
  t->dtype = dtype;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
  t->nbytes = n;
  t->data = (void *)data;
  f->n_tensors++;
  return SB_OK;
}

int st_set_meta(st_file *f, const char *key, const char *value, sb_error *err) {
  for (int i = 0; i < f->n_meta; i++)
    if (!strcmp(f->meta_keys[i], key)) {
      char *v = strdup(value);
      if (!v) return sb_fail(err, SB_ENOMEM, "out of memory");
      free(f->meta_vals[i]);
      f->meta_vals[i] = v;
      return SB_OK;
    }
  if (f->n_meta == f->cap_meta) {
    int cap = f->cap_meta ? 2 * f->cap_meta : 8;
    char **k = realloc(f->meta_keys, sizeof *k * (size_t)cap);
    if (!k) return sb_fail(err, SB_ENOMEM, "out of memory");
    f->meta_keys = k;
    char **v = realloc(f->meta_vals, sizeof *v * (size_t)cap);
    if (!v) return sb_fail(err, SB_ENOMEM, "out of memory");
    f->meta_vals = v;
    f->cap_meta = cap;
  }
  f->meta_keys[f->n_meta] = strdup(key);
  f->meta_vals[f->n_meta] = strdup(value);
  if (!f->meta_keys[f->n_meta] || !f->meta_vals[f->n_meta]) return sb_fail(err, SB_ENOMEM, "out of memory");
  f->n_meta++;
  return SB_OK;
}

int st_write(const st_file *f, const char *path, sb_error *err) {
  int bad = 0;
  json_t *h = jb_object(&bad);
  size_t off = 0;
  for (int i = 0; i < f->n_tensors; i++) {
    const st_tensor *t = &f->tensors[i];
    json_t *shape = jb_array(&bad);
    for (int d = 0; d < t->ndim; d++) jb_push(shape, json_integer(t->shape[d]), &bad);
    jb_set(h, t->name,
           json_pack("{s:s, s:o, s:[I,I]}", "dtype", st_dtype_name(t->dtype), "shape", shape, "data_offsets",
                     (json_int_t)off, (json_int_t)(off + t->nbytes)),
           &bad);
    off += t->nbytes;
  }
  if (f->n_meta) {
    json_t *m = jb_object(&bad);
    for (int i = 0; i < f->n_meta; i++) jb_set(m, f->meta_keys[i], json_string(f->meta_vals[i]), &bad);
    jb_set(h, "__metadata__", m, &bad);
  }
  h = jb_done(h, bad); /* a header with a tensor or a field missing would make a broken file */
  char *text = h ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(h);
  if (!text) return sb_fail(err, SB_ENOMEM, "safetensors: cannot encode header");
  size_t hl = strlen(text), padded = (hl + 7) / 8 * 8; /* 8-byte aligned data */
  size_t total = 8 + padded + off;
  unsigned char *buf = malloc(total);
  if (!buf) {
    free(text);
    return sb_fail(err, SB_ENOMEM, "safetensors: out of memory");
  }
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  memcpy(buf + 8, text, hl);
  memset(buf + 8 + hl, ' ', padded - hl);
  free(text);
  unsigned char *p = buf + 8 + padded;
  for (int i = 0; i < f->n_tensors; i++) {
    if (f->tensors[i].nbytes) memcpy(p, f->tensors[i].data, f->tensors[i].nbytes);
    p += f->tensors[i].nbytes;
  }
  int rc = sb_write_file(path, buf, total, err);
  free(buf);
  return rc;
}

static int cmp_off(const void *a, const void *b) {
  const size_t *x = a, *y = b;
  return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Takes ownership of buf (freed by st_free, also on failure). */
static int decode_owned(unsigned char *buf, size_t len, st_file *f, sb_error *err) {
  st_init(f);
  f->buffer = buf;
  f->buffer_len = len;
  if (len < 8) return sb_fail(err, SB_EFORMAT, "safetensors: file too short (%zu bytes)", len);
  uint64_t hl = 0;
  for (int i = 0; i < 8; i++) hl |= (uint64_t)buf[i] << (8 * i);
  if (hl > ST_MAX_HEADER || hl > len - 8)
    return sb_fail(err, SB_EFORMAT, "safetensors: header length %llu exceeds the file (%zu bytes)",
                   (unsigned long long)hl, len);
  json_error_t je;
  json_t *h = json_loadb((const char *)buf + 8, (size_t)hl, 0, &je);
  if (!h || !json_is_object(h)) {
    json_decref(h);
    return sb_fail(err, SB_EFORMAT, "safetensors: header is not a JSON object (%s)", h ? "" : je.text);
  }
  size_t data_len = len - 8 - (size_t)hl;
  unsigned char *data = buf + 8 + hl;
  int rc = SB_OK;
  const char *key;
  json_t *val;
  size_t n = json_object_size(h), k = 0;
  size_t *ranges = calloc(2 * (n ? n : 1), sizeof *ranges);
  if (!ranges) {
    json_decref(h);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  json_object_foreach(h, key, val) {
    if (!strcmp(key, "__metadata__")) {
      if (!json_is_object(val)) {
        rc = sb_fail(err, SB_EFORMAT, "safetensors: __metadata__ must be an object of strings");
        break;
      }
      const char *mk;
      json_t *mv;
      json_object_foreach(val, mk, mv) {
        if (!json_is_string(mv)) {
          rc = sb_fail(err, SB_EFORMAT, "safetensors: metadata '%s' is not a string", mk);
          break;
        }
        if ((rc = st_set_meta(f, mk, json_string_value(mv), err))) break;
      }
      if (rc) break;
      continue;
    }
    json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
           *jo = json_object_get(val, "data_offsets");
    st_dtype dt;
    if (!json_is_string(jd) || !dtype_from_name(json_string_value(jd), &dt)) {
      rc = sb_fail(err, SB_EFORMAT, "safetensors: tensor '%s': missing or unsupported dtype", key);
      break;
    }
    if (!json_is_array(js) || json_array_size(js) > ST_MAX_DIMS) {
      rc = sb_fail(err, SB_EFORMAT, "safetensors: tensor '%s': bad shape", key);
      break;
    }
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes = st_dtype_size(dt);
    int ndim = (int)json_array_size(js);
    for (int d = 0; d < ndim && !rc; d++) {
      json_t *e = json_array_get(js, (size_t)d);
      if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > (1LL << 40)) {
        rc = sb_fail(err, SB_EFORMAT, "safetensors: tensor '%s': bad dimension %d", key, d);
        break;
      }
      shape[d] = json_integer_value(e);
      if (shape[d] && nbytes > ((size_t)1 << 50) / (size_t)shape[d]) {
        rc = sb_fail(err, SB_EFORMAT, "safetensors: tensor '%s' too large", key);
        break;
      }
      nbytes *= (size_t)shape[d];
    }
    if (rc) break;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1))) {
      rc = sb_fail(err, SB_EFORMAT, "safetensors: tensor '%s': bad data_offsets", key);
      break;
    }
    json_int_t b = json_integer_value(json_array_get(jo, 0)), e = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || e < b || (size_t)e > data_len) {
      rc = sb_fail(err, SB_EFORMAT, "safetensors: tensor '%s': data range %lld..%lld outside the %zu data bytes (truncated file?)",
                   key, (long long)b, (long long)e, data_len);
      break;
    }
    if ((size_t)(e - b) != nbytes) {
      rc = sb_fail(err, SB_EFORMAT, "safetensors: tensor '%s': shape needs %zu bytes but the range has %lld",
                   key, nbytes, (long long)(e - b));
      break;
    }
    if ((rc = st_add(f, key, dt, ndim, shape, data + b, err))) break;
    ranges[2 * k] = (size_t)b;
    ranges[2 * k + 1] = (size_t)e;
    k++;
  }
  if (!rc && k > 1) {
    qsort(ranges, k, 2 * sizeof *ranges, cmp_off);
    for (size_t i = 1; i < k; i++)
      if (ranges[2 * i] < ranges[2 * i - 1]) {
        rc = sb_fail(err, SB_EFORMAT, "safetensors: tensor data ranges overlap");
        break;
      }
  }
  free(ranges);
  json_decref(h);
  return rc;
}

int st_decode(const unsigned char *buf, size_t len, st_file *f, sb_error *err) {
  unsigned char *copy = malloc(len ? len : 1);
  if (!copy) return sb_fail(err, SB_ENOMEM, "out of memory");
  memcpy(copy, buf, len);
  int rc = decode_owned(copy, len, f, err);
  if (rc) st_free(f);
  return rc;
}

int st_read(const char *path, st_file *f, sb_error *err) {
  unsigned char *buf;
  size_t len;
  st_init(f);
  int rc = sb_read_file(path, &buf, &len, (size_t)1 << 34, err);
  if (rc) return rc;
  rc = decode_owned(buf, len, f, err);
  if (rc) {
    st_free(f);
    sb_wrap(err, "%s", path);
  }
  return rc;
}

const st_tensor *st_get(const st_file *f, const char *name) {
  for (int i = 0; i < f->n_tensors; i++)
    if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
  return NULL;
}

int st_get_checked(const st_file *f, const char *name, st_dtype dtype, int ndim,
                   const int64_t *shape, const st_tensor **out, sb_error *err) {
  const st_tensor *t = st_get(f, name);
  *out = NULL;
  if (!t) return sb_fail(err, SB_EFORMAT, "tensor '%s' is missing", name);
  if (t->dtype != dtype)
    return sb_fail(err, SB_EFORMAT, "tensor '%s' has dtype %s, expected %s", name, st_dtype_name(t->dtype),
                   st_dtype_name(dtype));
  int same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
  if (!same) {
    char got[128] = "", want[128] = "";
    int a = 0, b = 0;
    for (int i = 0; i < t->ndim; i++) a += snprintf(got + a, sizeof got - (size_t)a, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    for (int i = 0; i < ndim; i++) b += snprintf(want + b, sizeof want - (size_t)b, i ? ",%lld" : "%lld", (long long)shape[i]);
    return sb_fail(err, SB_EFORMAT, "tensor '%s' has shape [%s], expected [%s]", name, got, want);
  }
  *out = t;
  return SB_OK;
}

const char *st_get_meta(const st_file *f, const char *key) {
  for (int i = 0; i < f->n_meta; i++)
    if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
  return NULL;
}

void st_free(st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
  free(f->tensors);
  for (int i = 0; i < f->n_meta; i++) {
    free(f->meta_keys[i]);
    free(f->meta_vals[i]);
  }
  free(f->meta_keys);
  free(f->meta_vals);
  free(f->buffer);
  memset(f, 0, sizeof *f);
}
