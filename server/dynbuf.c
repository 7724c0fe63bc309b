#include "dynbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/sb_error.h"

void dynbuf_init(dynbuf *b, size_t cap) {
  memset(b, 0, sizeof *b);
  b->cap = cap;
}

int dynbuf_add(dynbuf *b, const void *p, size_t n) {
  if (n > b->cap - b->len) return SB_ERANGE;
  if (b->len + n + 1 > b->alloc) {
    size_t a = b->alloc ? b->alloc : 256;
    while (a < b->len + n + 1) a *= 2;
    if (a > b->cap + 1) a = b->cap + 1;
    char *nb = realloc(b->buf, a);
    if (!nb) return SB_ENOMEM;
    b->buf = nb;
    b->alloc = a;
  }
  memcpy(b->buf + b->len, p, n);
  b->len += n;
  b->buf[b->len] = 0;
  return SB_OK;
}

int dynbuf_printf(dynbuf *b, const char *fmt, ...) {
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return SB_EINVAL;
  if ((size_t)n < sizeof small) return dynbuf_add(b, small, (size_t)n);
  char *big = malloc((size_t)n + 1);
  if (!big) return SB_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  int rc = dynbuf_add(b, big, (size_t)n);
  free(big);
  return rc;
}

void dynbuf_free(dynbuf *b) {
  free(b->buf);
  b->buf = NULL;
  b->len = b->alloc = 0;
}

char *dynbuf_take(dynbuf *b, size_t *len) {
  char *p = b->buf;
  if (len) *len = b->len;
  b->buf = NULL;
  b->len = b->alloc = 0;
  return p;
}
