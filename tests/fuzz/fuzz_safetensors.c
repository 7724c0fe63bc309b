/* fuzz_safetensors.c: the safetensors reader (core/util/safetensors.c) on
 * arbitrary bytes. Invariants: every tensor of a decoded file lies inside
 * the buffer, has nbytes = product of shape x dtype size, is found by name
 * and passes st_get_checked with its own dtype and shape; every metadata key
 * is found with its value; writing the file and reading it back gives the
 * same tensors and metadata. */
#include <string.h>

#include "fuzz.h"
#include "util/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  st_file f;
  sb_error err = {0};
  st_init(&f);
  if (st_decode(data, size, &f, &err)) {
    FUZZ_CHECK(err.msg[0], "st_decode failed without a message");
    return 0;
  }
  const unsigned char *lo = f.buffer, *hi = f.buffer + f.buffer_len;
  for (int i = 0; i < f.n_tensors; i++) {
    const st_tensor *t = &f.tensors[i];
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "tensor %d: ndim %d", i, t->ndim);
    size_t n = st_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) {
      FUZZ_CHECK(t->shape[d] >= 0, "tensor %s: negative dimension", t->name);
      n *= (size_t)t->shape[d];
    }
    FUZZ_CHECK(n == t->nbytes, "tensor %s: %zu bytes for a shape of %zu", t->name, t->nbytes, n);
    const unsigned char *p = t->data;
    FUZZ_CHECK(!t->nbytes || (p >= lo && p + t->nbytes <= hi), "tensor %s lies outside the file", t->name);
    /* names are unique: the first one found is this one */
    FUZZ_CHECK(st_get(&f, t->name) == t, "tensor %s: st_get finds another tensor", t->name);
    const st_tensor *out;
    FUZZ_CHECK(!st_get_checked(&f, t->name, t->dtype, t->ndim, t->shape, &out, &err) && out == t,
               "tensor %s fails st_get_checked with its own dtype and shape: %s", t->name, err.msg);
    volatile unsigned char sum = 0; /* touch every byte: ASan sees a bad range */
    for (size_t k = 0; k < t->nbytes; k++) sum ^= p[k];
    (void)sum;
  }
  for (int i = 0; i < f.n_meta; i++) {
    const char *v = st_get_meta(&f, f.meta_keys[i]);
    FUZZ_CHECK(v && !strcmp(v, f.meta_vals[i]), "metadata %s not found with its value", f.meta_keys[i]);
  }
  char path[512];
  fuzz_tmp_path("roundtrip.safetensors", path, sizeof path);
  FUZZ_CHECK(!st_write(&f, path, &err), "cannot write back a file read: %s", err.msg);
  st_file g;
  FUZZ_CHECK(!st_read(path, &g, &err), "cannot read back a file written: %s", err.msg);
  FUZZ_CHECK(g.n_tensors == f.n_tensors && g.n_meta == f.n_meta, "round trip: %d/%d tensors, %d/%d metadata",
             g.n_tensors, f.n_tensors, g.n_meta, f.n_meta);
  for (int i = 0; i < f.n_tensors; i++) {
    const st_tensor *t = &f.tensors[i], *u = st_get(&g, t->name);
    FUZZ_CHECK(u && u->dtype == t->dtype && u->ndim == t->ndim && u->nbytes == t->nbytes, "round trip changed %s",
               t->name);
    for (int d = 0; d < t->ndim; d++) FUZZ_CHECK(u->shape[d] == t->shape[d], "round trip changed %s's shape", t->name);
    FUZZ_CHECK(!t->nbytes || !memcmp(u->data, t->data, t->nbytes), "round trip changed %s's data", t->name);
  }
  for (int i = 0; i < f.n_meta; i++) {
    const char *v = st_get_meta(&g, f.meta_keys[i]);
    FUZZ_CHECK(v && !strcmp(v, f.meta_vals[i]), "round trip changed metadata %s", f.meta_keys[i]);
  }
  st_free(&g);
  st_free(&f);
  return 0;
}
