#include "tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tokens_free(char **tokens, int n) {
  for (int i = 0; i < n; i++) free(tokens[i]);
  free(tokens);
}

static int tokens_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

int tokens_parse(const char *buf, size_t len, const char *name, char ***out, int *n, sb_error *err) {
  *out = NULL;
  *n = 0;
  char **v = NULL;
  int count = 0, cap = 0, lineno = 0, rc = SB_OK;
  size_t pos = 0;
  while (pos < len && !rc) {
    const char *line = buf + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t ll = nl ? (size_t)(nl - line) : len - pos;
    pos += ll + (nl != NULL);
    lineno++;
    size_t a = 0, b = ll;
    while (a < b && tokens_blank(line[a])) a++;
    while (b > a && tokens_blank(line[b - 1])) b--;
    if (a == b || line[a] == '#') continue;
    if (b - a > TOKENS_MAX_LEN) {
      rc = sb_fail(err, SB_EINVAL, "%s:%d: the token has %zu bytes, the limit is %d", name, lineno, b - a,
                   TOKENS_MAX_LEN);
      break;
    }
    for (size_t i = a; i < b && !rc; i++)
      if ((unsigned char)line[i] <= ' ' || (unsigned char)line[i] >= 127)
        rc = sb_fail(err, SB_EINVAL, "%s:%d: a token is printable ASCII without blanks (byte 0x%02x at column %zu)",
                     name, lineno, (unsigned char)line[i], i + 1);
    if (rc) break;
    if (count == cap) {
      int nc = cap ? 2 * cap : 8;
      char **nv = realloc(v, (size_t)nc * sizeof *nv);
      if (!nv) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        break;
      }
      v = nv, cap = nc;
    }
    if (!(v[count] = strndup(line + a, b - a))) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
      break;
    }
    count++;
  }
  if (!rc && !count)
    rc = sb_fail(err, SB_EINVAL, "tokens file %s holds no token (one per line; '#' starts a comment)", name);
  if (rc) {
    tokens_free(v, count);
    return rc;
  }
  *out = v;
  *n = count;
  return SB_OK;
}

int tokens_load(const char *path, char ***out, int *n, sb_error *err) {
  *out = NULL;
  *n = 0;
  FILE *f = fopen(path, "r");
  if (!f) return sb_fail(err, SB_EIO, "cannot read tokens file %s: %s", path, strerror(errno));
  /* every line is read whole, however long (getdelim grows the buffer) */
  char *buf = NULL;
  size_t len = 0, cap = 0;
  char *line = NULL;
  size_t lcap = 0;
  ssize_t got;
  int rc = SB_OK;
  while ((got = getline(&line, &lcap, f)) > 0) {
    if (len + (size_t)got + 1 > cap) {
      size_t nc = cap ? cap : 4096;
      while (nc < len + (size_t)got + 1) nc *= 2;
      char *nb = realloc(buf, nc);
      if (!nb) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory reading %s", path);
        break;
      }
      buf = nb, cap = nc;
    }
    memcpy(buf + len, line, (size_t)got);
    len += (size_t)got;
  }
  if (!rc && ferror(f)) rc = sb_fail(err, SB_EIO, "cannot read tokens file %s: %s", path, strerror(errno));
  free(line);
  fclose(f);
  if (!rc) rc = tokens_parse(buf ? buf : "", len, path, out, n, err);
  free(buf);
  return rc;
}
