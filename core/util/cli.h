/* cli.h: the command lines of sbida and sbidad, all through getopt_long
 * (--name value and --name=value), with sbida's own messages, and the
 * checked number parsing every flag uses. */
#ifndef SB_CLI_H
#define SB_CLI_H

#include <getopt.h>

#include "util/sb_error.h"

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
