/* tokens.h: the bearer tokens file (--tokens-file): one token per line,
 * leading and trailing blanks ignored, empty lines and lines starting with
 * '#' skipped. A token is read whole, whatever its length up to
 * TOKENS_MAX_LEN bytes (a JWT fits); a longer line is an error, never cut
 * into several tokens. Tokens are printable ASCII without blanks (what an
 * Authorization header can carry). */
#ifndef SB_TOKENS_H
#define SB_TOKENS_H

#include <stddef.h>

#include "util/sb_error.h"

#define TOKENS_MAX_LEN 4096

/* Parses the file's contents buf[0..len) (need not be NUL-terminated).
 * On success *out is a malloc'd array of *n malloc'd strings (free with
 * tokens_free); on failure it returns SB_EINVAL (a line too long, a
 * control or non-ASCII byte in a token, no token at all) or SB_ENOMEM with
 * a message naming the line, and *out is NULL. name is the file's name for
 * messages. */
int tokens_parse(const char *buf, size_t len, const char *name, char ***out, int *n, sb_error *err);
/* Reads the file at path and parses it (tokens_parse). */
int tokens_load(const char *path, char ***out, int *n, sb_error *err);
void tokens_free(char **tokens, int n);

#endif
