#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int text_utf8_char(const unsigned char *s, size_t n) {
  if (!n) return 0;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  int len;
  unsigned min;
  if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
  else return 0;
  if (n < (size_t)len) return 0;
  unsigned cp = c & (0x7F >> len);
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

char *text_escape(const char *s, char *out, size_t size) {
  size_t o = 0, n = s ? strlen(s) : 0, i = 0;
  if (!size) return out;
  while (i < n) {
    const unsigned char *p = (const unsigned char *)s + i;
    int len = text_utf8_char(p, n - i);
    if (len == 1 && (p[0] < 0x20 || p[0] == 0x7F)) len = 0; /* control characters are escaped too */
    if (len > 0) {
      if (o + (size_t)len >= size) break;
      memcpy(out + o, p, (size_t)len);
      o += (size_t)len, i += (size_t)len;
    } else {
      if (o + 4 >= size) break;
      snprintf(out + o, 5, "\\x%02X", p[0]);
      o += 4, i++;
    }
  }
  out[o] = 0;
  return out;
}

json_t *text_json(const char *s, size_t max_bytes) {
  size_t n = s ? strlen(s) : 0;
  size_t size = 4 * n + 1;
  if (max_bytes && size > max_bytes + 1) size = max_bytes + 1;
  if (size > 65537) size = 65537;
  char small[512], *buf = size <= sizeof small ? small : malloc(size);
  if (!buf) return NULL;
  json_t *j = json_string(text_escape(s, buf, size));
  if (buf != small) free(buf);
  return j;
}
