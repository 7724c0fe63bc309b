/* fuzz_http.c: raw bytes as one HTTP connection to the daemon in-process
 * (libmicrohttpd, routing, auth, body limits, every handler; see
 * fuzz_http_app.h). Invariants: whatever is sent, the daemon answers with a
 * status line or closes the connection within the time limit, and its error
 * answers are problem+json with the matching status. Requests that wait on
 * purpose (?wait=) or stay incomplete are cut at the limit, not findings. */
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
  size_t n;
  char *ans = fuzz_app_exchange(data, size, 250, &n);
  if (getenv("FUZZ_VERBOSE")) /* the answer's status line, to see what a corpus reaches */
    fprintf(stderr, "%.*s\n", ans ? (int)strcspn(ans, "\r\n") : 9, ans ? ans : "(timeout)");
  if (!ans) return 0;
  size_t lead = 0; /* empty lines before a request line are skipped by the server (RFC 9112 2.2) */
  while (lead < size && (data[lead] == '\r' || data[lead] == '\n')) lead++;
  if (n) fuzz_app_check_answer(ans, n, size - lead >= 5 && !memcmp(data + lead, "HEAD ", 5));
  free(ans);
  return 0;
}
