/* fuzz_npy.c: the .npy reader (core/util/npy.c) on arbitrary bytes.
 * Invariants: a decoded array has count = product of its shape; float32 and
 * float64 arrays encode and decode back to the same bytes; npy_to_f64 works
 * on every decoded dtype. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "util/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  npy_array a;
  sb_error err = {0};
  if (npy_decode(data, size, &a, &err)) {
    FUZZ_CHECK(err.msg[0], "npy_decode failed without a message");
    return 0;
  }
  size_t count = 1;
  FUZZ_CHECK(a.ndim >= 0 && a.ndim <= NPY_MAX_DIMS, "ndim %d", a.ndim);
  for (int i = 0; i < a.ndim; i++) count *= a.shape[i];
  FUZZ_CHECK(count == a.count, "count %zu, shape product %zu", a.count, count);
  size_t es = npy_dtype_size(a.dtype);
  FUZZ_CHECK(es > 0, "unknown dtype %d", (int)a.dtype);
  if (a.dtype == NPY_F32 || a.dtype == NPY_F64) {
    unsigned char *buf;
    size_t len;
    FUZZ_CHECK(!npy_encode(a.dtype, a.ndim, a.shape, a.data, &buf, &len, &err), "re-encode failed: %s", err.msg);
    npy_array b;
    FUZZ_CHECK(!npy_decode(buf, len, &b, &err), "decode of our own encoding failed: %s", err.msg);
    FUZZ_CHECK(b.dtype == a.dtype && b.ndim == a.ndim && b.count == a.count, "round trip changed the header");
    for (int i = 0; i < a.ndim; i++) FUZZ_CHECK(a.shape[i] == b.shape[i], "round trip changed shape[%d]", i);
    FUZZ_CHECK(!a.count || !memcmp(a.data, b.data, a.count * es), "round trip changed the data");
    npy_free(&b);
    free(buf);
  }
  if (!npy_to_f64(&a, &err)) FUZZ_CHECK(a.dtype == NPY_F64, "npy_to_f64 left dtype %d", (int)a.dtype);
  npy_free(&a);
  return 0;
}
