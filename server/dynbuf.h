/* dynbuf.h: growable byte buffer with a hard cap (curl's dynbuf): anything
 * read from the network goes through one, so a client cannot make the
 * daemon allocate more than the cap. */
#ifndef SB_DYNBUF_H
#define SB_DYNBUF_H

#include <stddef.h>

typedef struct dynbuf {
  char *buf;     /* NUL-terminated when non-NULL */
  size_t len, alloc, cap;
} dynbuf;

void dynbuf_init(dynbuf *b, size_t cap);
/* Appends n bytes: 0, SB_ERANGE when len + n would pass the cap (nothing
 * appended), SB_ENOMEM. */
int dynbuf_add(dynbuf *b, const void *p, size_t n);
int dynbuf_printf(dynbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dynbuf_free(dynbuf *b);
/* Hands the buffer to the caller (free()) and resets b. */
char *dynbuf_take(dynbuf *b, size_t *len);

#endif
