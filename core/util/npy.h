/* npy.h: NumPy .npy format (version 1.0/2.0/3.0 read, 1.0 write), little-endian
 * float32/float64 (and int32/int64/uint8 read), C order only. */
#ifndef SB_NPY_H
#define SB_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "util/sb_error.h"

#define NPY_MAX_DIMS 8

typedef enum { NPY_F32, NPY_F64, NPY_I32, NPY_I64, NPY_U8 } npy_dtype;

typedef struct npy_array {
  npy_dtype dtype;
  int ndim;
  size_t shape[NPY_MAX_DIMS];
  size_t count;  /* product of shape */
  void *data;    /* count elements of dtype, owned */
} npy_array;

size_t npy_dtype_size(npy_dtype t);

/* Encodes an array into a freshly malloc'd buffer (*buf, *len), e.g. for an
 * HTTP response. */
int npy_encode(npy_dtype dtype, int ndim, const size_t *shape, const void *data,
               unsigned char **buf, size_t *len, sb_error *err);
int npy_write(const char *path, npy_dtype dtype, int ndim, const size_t *shape, const void *data,
              sb_error *err);
/* Decodes len bytes; on success the caller owns arr->data (npy_free). */
int npy_decode(const unsigned char *buf, size_t len, npy_array *arr, sb_error *err);
int npy_read(const char *path, npy_array *arr, sb_error *err);
/* Converts in place to float64 (any numeric dtype). */
int npy_to_f64(npy_array *arr, sb_error *err);
void npy_free(npy_array *arr);

#endif
