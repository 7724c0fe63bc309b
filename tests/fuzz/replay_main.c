/* replay_main.c: the `make test` driver of a fuzz harness (no libFuzzer).
 * The target is named by the program: test_fuzz_<target>.
 * Without arguments it feeds every file of tests/fuzz/<target>/seeds and
 * tests/fuzz/<target>/regressions to LLVMFuzzerTestOneInput, once each; with
 * arguments it feeds those files or directories instead (to replay one
 * input by hand, e.g. something under open/). A finding aborts the process,
 * which tests/run.sh counts as a failure. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fuzz.h"


/* Defined by harnesses that need set-up; weak so the others link. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0, n;
  uint8_t chunk[65536];
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n > cap) {
      cap = 2 * (len + n);
      uint8_t *b = realloc(buf, cap);
      if (!b) fuzz_fail("out of memory reading %s", path);
      buf = b;
    }
    memcpy(buf + len, chunk, n);
    len += n;
  }
  fclose(f);
  /* libFuzzer hands a buffer of exactly size bytes: copy so ASan sees overreads */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) fuzz_fail("out of memory reading %s", path);
  if (len) memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replays path (a file, or every regular file of a directory, sorted); returns the count. */
static int replay_path(const char *path) {
  struct stat st;
  if (stat(path, &st)) return 0;
  if (!S_ISDIR(st.st_mode)) return replay_file(path);
  DIR *d = opendir(path);
  if (!d) return 0;
  char **names = NULL;
  int n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nn = realloc(names, (size_t)cap * sizeof *nn);
      if (!nn) fuzz_fail("out of memory listing %s", path);
      names = nn;
    }
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_str); /* names is NULL for an empty directory */
  int count = 0;
  for (int i = 0; i < n; i++) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", path, names[i]);
    if (!stat(p, &st) && S_ISREG(st.st_mode)) count += replay_file(p);
    free(names[i]);
  }
  free(names);
  return count;
}

static int g_argc;
static char **g_argv;
static char target[64];

static void test_replay(void **state) {
  (void)state;
  if (g_argc > 1) {
    int n = 0;
    for (int i = 1; i < g_argc; i++) n += replay_path(g_argv[i]);
    assert_true(n > 0);
    return;
  }
  char rel[256], p[4096];
  snprintf(rel, sizeof rel, "tests/fuzz/%s/seeds", target);
  int seeds = replay_path(fuzz_src_path(rel, p, sizeof p));
  snprintf(rel, sizeof rel, "tests/fuzz/%s/regressions", target);
  int regs = replay_path(fuzz_src_path(rel, p, sizeof p));
  printf("fuzz replay %s: %d seeds, %d regression inputs\n", target, seeds, regs);
  assert_true(seeds > 0); /* an empty corpus would replay nothing */
}

int main(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
  const char *base = strrchr(argv[0], '/');
  base = base ? base + 1 : argv[0];
  if (strncmp(base, "test_fuzz_", 10)) fuzz_fail("run me as test_fuzz_<target>, not %s", base);
  snprintf(target, sizeof target, "%s", base + 10);
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_replay)};
  return cmocka_run_group_tests_name(target, tests, NULL, NULL);
}
