/* cli.c: getopt_long with sbida's messages and checked numbers (see cli.h). */
#include "util/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void cli_reset(void) {
  optind = 0; /* GNU: 0 re-initializes the scan */
  opterr = 0;
}

int cli_next(int argc, char **argv, const char *shortopts, const struct option *longopts, sb_error *err) {
  char opts[64];
  snprintf(opts, sizeof opts, ":%s", shortopts ? shortopts : "");
  opterr = 0;
  int c = getopt_long(argc, argv, opts, longopts, NULL);
  const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
  if (c == ':') {
    sb_fail(err, SB_EINVAL, "%s needs a value", arg);
    return '?';
  }
  if (c == '?') {
    sb_fail(err, SB_EINVAL, "unknown flag '%s'", arg);
    return '?';
  }
  return c;
}

int cli_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int cli_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v)) return -1;
  *out = v;
  return 0;
}
