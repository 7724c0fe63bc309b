/* cli.h: the command lines of sbida and sbidad, all through getopt_long
 * (--name value and --name=value), with sbida's own messages, and the
 * checked number parsing every flag uses. */
#ifndef SB_CLI_H
#define SB_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "util/sb_error.h"

/* A command's flags as a table: --name VALUE stored into dest, checked.
 * A command line is then one call: cli_parse. */
typedef enum { CLI_STR = 1, CLI_LONG, CLI_DOUBLE, CLI_BOOL } cli_type;
typedef struct cli_flag {
  const char *name;  /* long name without "--" */
  cli_type type;
  void *dest;        /* const char **, long *, double *, int * (CLI_BOOL: set to 1) */
  double lo, hi;     /* CLI_LONG, CLI_DOUBLE: inclusive range */
  int *given;        /* optional: set to 1 when the flag appears */
} cli_flag;

/* Parses argv (argv[0] is the command) against flags (ending with {NULL})
 * through getopt_long; --help and -h print usage to stdout. Returns 0 with
 * *operand = index of the first operand (at most max_operands of them);
 * -1 after --help (the command exits with 0); 2 after printing "<prog>:
 * <what is wrong> (see <prog> --help)" to stderr: an unknown flag, a missing
 * value, a number out of range, an unexpected argument. A command starts
 * `int first, rc = cli_parse(...); if (rc) return rc < 0 ? 0 : rc;`. */
int cli_parse(int argc, char **argv, const char *prog, const cli_flag *flags, void (*usage)(FILE *f),
              int max_operands, int *operand);

/* Starts a new parse of an argument vector (getopt keeps global state). */
void cli_reset(void);
/* The next option's val, or -1 when the options are done (optind is the
 * first operand). On an unknown flag or a missing value it returns '?' and
 * err says which ("unknown flag '--x'", "--x needs a value"). shortopts is
 * getopt's ("h" for -h); a leading ':' is added. */
int cli_next(int argc, char **argv, const char *shortopts, const struct option *longopts, sb_error *err);
/* 0 when s is a whole integer in lo..hi (stored in *out), else -1. */
int cli_long(const char *s, long lo, long hi, long *out);
/* 0 when s is a whole finite number (stored in *out), else -1. */
int cli_double(const char *s, double *out);

#endif
