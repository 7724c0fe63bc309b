/* text.h: text from outside (paths, header values, names in a body) made
 * safe for JSON, which needs valid UTF-8: bytes that do not start or
 * continue a valid UTF-8 character (including a character cut by a %.Ns
 * truncation) and control characters become the visible escape "\xHH".
 * Valid multibyte characters pass unchanged. */
#ifndef SB_TEXT_H
#define SB_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* Length of the valid UTF-8 character at s[0..n) (1..4), 0 when invalid or
 * incomplete. */
int text_utf8_char(const unsigned char *s, size_t n);
/* Copies s into out[0..size) escaping as above; the copy ends on a
 * character boundary (never inside a character or an escape) and is always
 * NUL-terminated. Returns out. */
char *text_escape(const char *s, char *out, size_t size);
/* A JSON string of s escaped as above (at most max_bytes of output, 0 = no
 * limit beyond 64 KiB); never NULL except when out of memory. */
json_t *text_json(const char *s, size_t max_bytes);

#endif
