#include "util/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int sb_mkdirs(const char *path, sb_error *err) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) return sb_fail(err, SB_EINVAL, "bad directory path");
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    char c = buf[i];
    buf[i] = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return sb_fail(err, SB_EIO, "cannot create directory %s: %s", buf, strerror(errno));
    buf[i] = c;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return sb_fail(err, SB_EIO, "%s is not a directory", path);
  return SB_OK;
}
