/* fuzz_http_app.h: the daemon in-process for the HTTP fuzzers: the real
 * config defaults, store (SQLite in a scratch directory), registry
 * (baselines and the tiny models of tests/data/golden), job queue, tokens
 * ("fuzz-token") and http_start, as main.c wires them, but with no worker
 * threads: jobs are stored and queued, never run, so an input's cost stays
 * its own. Connections are socketpairs handed to libmicrohttpd with
 * MHD_add_connection, so no port, no TIME_WAIT.
 *
 * In a request, "@JOB@" is replaced by the id of a succeeded job (with
 * samples) and "@QUEUED@" by the id of a queued one. */
#ifndef SB_FUZZ_HTTP_APP_H
#define SB_FUZZ_HTTP_APP_H

#include <stddef.h>
#include <stdint.h>

void fuzz_app_start(void);
/* Sends req on a new connection, then half-closes it, and reads the answer
 * until the server closes or timeout_ms pass. Returns the answer (malloc'd,
 * NUL-terminated, *len bytes) or NULL when nothing came back in time. */
char *fuzz_app_exchange(const uint8_t *req, size_t len, int timeout_ms, size_t *ans_len);
/* Checks the first answer: a status line; an error answer of ours
 * (Cache-Control: no-store) is problem+json whose status matches. */
void fuzz_app_check_answer(const char *ans, size_t len, int head);
/* Keeps the store small: cancels queued jobs, deletes old ones. */
void fuzz_app_housekeeping(void);

#endif
