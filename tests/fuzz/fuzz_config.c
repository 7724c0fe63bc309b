/* fuzz_config.c: the daemon's --config file (server/config.c), read through
 * config_load as sbidad does with `sbidad --config FILE` (no SBIDA_*
 * variables set). Invariants: a refused file has a message; an accepted one
 * gives settings inside the ranges config_load promises, and numbers the
 * daemon can convert (retention days to int64 milliseconds). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "server/config.h"

extern char **environ;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  /* flags > environment > file: the file must be what decides */
  for (int again = 1; again;) {
    again = 0;
    for (char **e = environ; *e; e++)
      if (!strncmp(*e, "SBIDA_", 6)) {
        char name[256];
        size_t n = strcspn(*e, "=");
        if (n >= sizeof name) continue;
        memcpy(name, *e, n);
        name[n] = 0;
        unsetenv(name);
        again = 1;
        break;
      }
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file_set(data, size);
  char a0[] = "sbidad", a1[] = "--config", a2[64];
  snprintf(a2, sizeof a2, "%s", path);
  char *argv[] = {a0, a1, a2, NULL};
  config c;
  sb_error err = {0};
  int rc = config_load(&c, 3, argv, &err);
  FUZZ_CHECK(rc <= 0, "config_load returned %d without --help", rc);
  if (rc) {
    FUZZ_CHECK(err.msg[0], "config_load failed without a message");
    return 0;
  }
  FUZZ_CHECK(c.port >= 0 && c.port <= 65535, "port %d", c.port);
  FUZZ_CHECK(c.workers >= 1 && c.workers <= 256 && c.http_threads >= 1 && c.http_threads <= 256 &&
                 c.job_threads >= 1 && c.job_threads <= 256, "thread counts out of range");
  FUZZ_CHECK(c.max_queue >= 1 && c.max_samples >= 1 && c.max_samples <= 1000000 && c.max_body_bytes >= 1024 &&
                 c.max_attempts >= 1, "limits out of range");
  FUZZ_CHECK(c.retention_days >= 0 && c.shutdown_grace >= 0 && c.retention_max_runs >= 0, "negative durations");
  /* main converts days to int64 milliseconds: beyond that is undefined behaviour (issue 18, defect 11) */
  FUZZ_CHECK(c.retention_days * 86400000.0 < 9.2e18 || fuzz_known_defects(),
             "retention-days %g overflows int64 milliseconds", c.retention_days);
  FUZZ_CHECK(memchr(c.listen, 0, sizeof c.listen) && memchr(c.host, 0, sizeof c.host) &&
                 memchr(c.db, 0, sizeof c.db) && memchr(c.models, 0, sizeof c.models) &&
                 memchr(c.log_level, 0, sizeof c.log_level) && memchr(c.tokens_file, 0, sizeof c.tokens_file),
             "a string setting is not terminated");
  return 0;
}
