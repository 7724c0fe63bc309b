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
  SB_ENUMERIC = -8 /* computation produced NaN/Inf */
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

/* Short stable name of a code, e.g. "EINVAL". */
const char *sb_strerror(int code);

#endif
