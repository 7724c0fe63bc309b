#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sb_read_file(const char *path, unsigned char **buf, size_t *len, size_t max_bytes, sb_error *err) {
  *buf = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return sb_fail(err, SB_EIO, "cannot open %s: %s", path, strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0) {
    fclose(f);
    return sb_fail(err, SB_EIO, "cannot seek %s: %s", path, strerror(errno));
  }
  long sz = ftell(f);
  if (sz < 0 || (size_t)sz > max_bytes) {
    fclose(f);
    return sb_fail(err, SB_ERANGE, "%s: size %ld exceeds the limit of %zu bytes", path, sz, max_bytes);
  }
  rewind(f);
  unsigned char *b = malloc((size_t)sz + 1);
  if (!b) {
    fclose(f);
    return sb_fail(err, SB_ENOMEM, "out of memory reading %s", path);
  }
  if (sz && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
    free(b);
    fclose(f);
    return sb_fail(err, SB_EIO, "short read on %s", path);
  }
  fclose(f);
  b[sz] = 0;
  *buf = b;
  *len = (size_t)sz;
  return SB_OK;
}

int sb_write_file(const char *path, const void *buf, size_t len, sb_error *err) {
  size_t n = strlen(path) + 32;
  char *tmp = malloc(n);
  if (!tmp) return sb_fail(err, SB_ENOMEM, "out of memory");
  snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    int e = errno;
    free(tmp);
    return sb_fail(err, SB_EIO, "cannot create %s: %s", path, strerror(e));
  }
  int ok = (len == 0 || fwrite(buf, 1, len, f) == len);
  ok = (fflush(f) == 0) && ok;
  ok = (fsync(fileno(f)) == 0) && ok;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    free(tmp);
    return sb_fail(err, SB_EIO, "cannot write %s: %s", path, strerror(e));
  }
  free(tmp);
  return SB_OK;
}
