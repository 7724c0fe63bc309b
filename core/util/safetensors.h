/* safetensors.h: the safetensors file format, written by hand.
 *   8-byte little-endian header length n, n bytes of JSON header
 *   {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
 *    "__metadata__": {"key": "string value", ...}}, then the raw data.
 * Reading validates everything: header size, JSON, dtypes, that shapes match
 * byte ranges, and that ranges lie inside the file and do not overlap. */
#ifndef SB_SAFETENSORS_H
#define SB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util/sb_error.h"

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F64, ST_I32, ST_I64, ST_U8 } st_dtype;

typedef struct st_tensor {
  char *name;
  st_dtype dtype;
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  size_t nbytes;
  void *data; /* reading: points into st_file's buffer (may be unaligned for foreign files: memcpy out); writing: borrowed */
} st_tensor;

typedef struct st_file {
  int n_tensors, cap_tensors;
  st_tensor *tensors;
  int n_meta, cap_meta;
  char **meta_keys, **meta_vals;
  unsigned char *buffer; /* whole file when read */
  size_t buffer_len;
} st_file;

size_t st_dtype_size(st_dtype t);
const char *st_dtype_name(st_dtype t);

/* Writing: st_init, st_add (data borrowed until st_write returns), st_set_meta
 * (copied), st_write, st_free. Tensors are written in insertion order. */
void st_init(st_file *f);
int st_add(st_file *f, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
           const void *data, sb_error *err);
int st_set_meta(st_file *f, const char *key, const char *value, sb_error *err);
int st_write(const st_file *f, const char *path, sb_error *err);

/* Reading: fills f (st_free releases it). */
int st_read(const char *path, st_file *f, sb_error *err);
int st_decode(const unsigned char *buf, size_t len, st_file *f, sb_error *err);
const st_tensor *st_get(const st_file *f, const char *name);
/* Looks up a tensor and checks its dtype and shape; err explains a mismatch. */
int st_get_checked(const st_file *f, const char *name, st_dtype dtype, int ndim,
                   const int64_t *shape, const st_tensor **out, sb_error *err);
const char *st_get_meta(const st_file *f, const char *key);
void st_free(st_file *f);

#endif
