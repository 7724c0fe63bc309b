/* fuzz_util.c: helpers of fuzz.h. */
#include "fuzz.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <ftw.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FUZZ_SRCDIR
#define FUZZ_SRCDIR "."
#endif

const char *fuzz_src_path(const char *rel, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s", FUZZ_SRCDIR, rel);
  return buf;
}

const char *fuzz_file_set(const uint8_t *data, size_t size) {
  static int fd = -1;
  static char path[64];
  if (fd < 0) {
    fd = memfd_create("sbida-fuzz", 0);
    if (fd < 0) fuzz_fail("memfd_create failed");
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) fuzz_fail("cannot write the memfd");
  return path;
}

static char tmp_dir[256];

static int tmp_rm(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(p);
}

static void tmp_cleanup(void) {
  if (tmp_dir[0]) nftw(tmp_dir, tmp_rm, 8, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_tmp_path(const char *name, char *buf, size_t size) {
  if (!tmp_dir[0]) {
    struct stat st;
    const char *base = getenv("SBIDA_FUZZ_TMP"); /* run.sh: one base per run, cleaned by that run only */
    if (!base || !*base || stat(base, &st) || !S_ISDIR(st.st_mode))
      base = !stat("/dev/shm", &st) && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/sbida-fuzz-XXXXXX", base);
    if (!mkdtemp(tmp_dir)) fuzz_fail("cannot create a scratch directory under %s", base);
    atexit(tmp_cleanup);
  }
  snprintf(buf, size, "%s/%s", tmp_dir, name);
  return buf;
}

int fuzz_known_defects(void) {
  static int v = -1;
  if (v < 0) v = getenv("SBIDA_FUZZ_KNOWN_DEFECTS") && *getenv("SBIDA_FUZZ_KNOWN_DEFECTS") ? 1 : 0;
  return v;
}

void fuzz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FUZZ FINDING: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}
