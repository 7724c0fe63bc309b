/* fuzz_query.c: query strings, paths and page tokens of GET requests to the
 * daemon in-process (fuzz_http_app.h). An input is a request target such as
 * "/v1/assimilations?page_size=2&page_token=p5bd1e99f" (bytes that cannot
 * appear raw in a request line are sent percent-encoded), optionally
 * followed by a newline and an Accept header value. The store holds 26 runs,
 * so page tokens of real pages exist; "@JOB@" names a succeeded job.
 * Invariants as in fuzz_http.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_http_app.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_app_start();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned calls;
  if (++calls % 256 == 0) fuzz_app_housekeeping();
  const uint8_t *nl = memchr(data, '\n', size);
  size_t tl = nl ? (size_t)(nl - data) : size;
  char *req = malloc(3 * size + 256), *p = req;
  if (!req) fuzz_fail("out of memory");
  p += sprintf(p, "GET ");
  if (!tl || data[0] != '/') *p++ = '/';
  for (size_t i = 0; i < tl; i++) {
    uint8_t c = data[i];
    if (c > 32 && c < 127 && c != '#') *p++ = (char)c;
    else p += sprintf(p, "%%%02X", c);
  }
  p += sprintf(p, " HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer fuzz-token\r\n");
  if (nl) {
    p += sprintf(p, "Accept: ");
    for (size_t i = tl + 1; i < size; i++)
      if (data[i] != '\r' && data[i] != '\n' && data[i]) *p++ = (char)data[i];
    p += sprintf(p, "\r\n");
  }
  p += sprintf(p, "Connection: close\r\n\r\n");
  size_t n;
  char *ans = fuzz_app_exchange((const uint8_t *)req, (size_t)(p - req), 250, &n);
  free(req);
  if (getenv("FUZZ_VERBOSE")) /* the answer's status line, to see what a corpus reaches */
    fprintf(stderr, "%.*s\n", ans ? (int)strcspn(ans, "\r\n") : 9, ans ? ans : "(timeout)");
  if (!ans) return 0;
  if (n) fuzz_app_check_answer(ans, n, 0);
  free(ans);
  return 0;
}
