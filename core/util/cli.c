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

int cli_parse(int argc, char **argv, const char *prog, const cli_flag *flags, void (*usage)(FILE *f),
              int max_operands, int *operand) {
  struct option opts[65];
  int n = 0;
  for (; flags[n].name && n < 63; n++)
    opts[n] = (struct option){flags[n].name, flags[n].type == CLI_BOOL ? no_argument : required_argument, NULL, 256 + n};
  opts[n] = (struct option){"help", no_argument, NULL, 'h'};
  opts[n + 1] = (struct option){NULL, 0, NULL, 0};
  sb_error err = {0};
  int c;
  cli_reset();
  while ((c = cli_next(argc, argv, "h", opts, &err)) != -1) {
    if (c == 'h') {
      usage(stdout);
      return -1;
    }
    if (c == '?') {
      fprintf(stderr, "%s: %s (see %s --help)\n", prog, err.msg, prog);
      return 2;
    }
    const cli_flag *f = &flags[c - 256];
    long lv;
    double dv;
    if (f->given) *f->given = 1;
    switch (f->type) {
    case CLI_STR: *(const char **)f->dest = optarg; break;
    case CLI_BOOL: *(int *)f->dest = 1; break;
    case CLI_LONG:
      if (cli_long(optarg, (long)f->lo, (long)f->hi, &lv)) {
        fprintf(stderr, "%s: --%s expects an integer in %.0f..%.0f, got '%s'\n", prog, f->name, f->lo, f->hi, optarg);
        return 2;
      }
      *(long *)f->dest = lv;
      break;
    case CLI_DOUBLE:
      if (cli_double(optarg, &dv) || dv < f->lo || dv > f->hi) {
        fprintf(stderr, "%s: --%s expects a number in %g..%g, got '%s'\n", prog, f->name, f->lo, f->hi, optarg);
        return 2;
      }
      *(double *)f->dest = dv;
      break;
    }
  }
  *operand = optind;
  if (argc - optind > max_operands) {
    fprintf(stderr, "%s: unexpected argument '%s' (see %s --help)\n", prog, argv[optind + max_operands], prog);
    return 2;
  }
  return 0;
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
