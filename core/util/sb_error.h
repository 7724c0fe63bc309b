/* sb_error.h: error codes and the message buffer every library call fills.
 *
 * Convention (libuv/curl style): functions return 0 (SB_OK) on success or a
 * negative SB_E* code; when they fail and an sb_error* was given, its msg
 * holds a human-readable sentence saying what was wrong and how to fix it.
 * Library code never exits and never prints. */
#ifndef SB_ERROR_H
#define SB_ERROR_H

#include <stddef.h>

enum {
  SB_OK = 0,
  SB_EINVAL = -1,  /* bad argument or malformed input */
  SB_EIO = -2,     /* file or socket I/O failed */
  SB_ENOMEM = -3,  /* allocation failed */
  SB_EFORMAT = -4, /* file content does not match its format */
  SB_ERANGE = -5,  /* value outside the supported range */
  SB_ENOTSUP = -6, /* valid request this build or object cannot do */
  SB_ECANCEL = -7, /* cancelled by the caller */
  SB_ENUMERIC = -8 /* computation produced NaN/Inf, or diverged */
};

typedef struct sb_error {
  int code;
  char msg[512];
} sb_error;

/* Records code and a printf-style message in err (err may be NULL) and
 * returns code, so callers write `return sb_fail(err, SB_EINVAL, "...")`. */
int sb_fail(sb_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with "context: ". Returns err->code. */
int sb_wrap(sb_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Programming errors (a misused API, a broken invariant) are reported with
 * the file and line where they were found:
 *   - code without an sb_error (hot paths) returns SB_BUG_RETURN(SB_EINVAL),
 *     which notes its file and line;
 *   - the caller turns the code into a message with SB_BUG(err, code, "what
 *     failed"): "what failed: programming error at core/nn/nn_model.c:159"
 *     (the last note, from any thread), or at the caller's own line. */
#define SB_BUG_RETURN(code) return sb_bug_note(__FILE__, __LINE__, (code))
#define SB_BUG(err, code, ...) sb_bug_at((err), (code), __FILE__, __LINE__, __VA_ARGS__)
int sb_bug_note(const char *file, int line, int code);
int sb_bug_at(sb_error *err, int code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Short stable name of a code, e.g. "EINVAL". */
const char *sb_strerror(int code);

#endif
