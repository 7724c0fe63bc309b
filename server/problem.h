/* problem.h: RFC 9457 problem details (application/problem+json).
 * Every error answer of the daemon is built here so types and titles stay
 * one list. A type is "urn:sbida:problem:<slug>". */
#ifndef SB_PROBLEM_H
#define SB_PROBLEM_H

#include <jansson.h>

typedef enum {
  PROB_MALFORMED_JSON,    /* 400 */
  PROB_BAD_REQUEST,       /* 400: bad query parameter, header */
  PROB_VALIDATION,        /* 422: body does not fit the schema or the estimator */
  PROB_UNKNOWN_ESTIMATOR, /* 422 in a body, 404 as a path */
  PROB_IDEMPOTENCY,       /* 422: key reused with another body */
  PROB_NOT_FOUND,         /* 404 */
  PROB_METHOD,            /* 405 */
  PROB_NOT_ACCEPTABLE,    /* 406 */
  PROB_CONFLICT,          /* 409 */
  PROB_TOO_LARGE,         /* 413 */
  PROB_MEDIA_TYPE,        /* 415 */
  PROB_QUEUE_FULL,        /* 429 */
  PROB_UNAUTHORIZED,      /* 401 */
  PROB_INTERNAL,          /* 500 */
  PROB_UNAVAILABLE,       /* 503 */
  PROB_NOT_IMPLEMENTED,   /* 501 */
  PROB_LIMIT,             /* 422: the job would exceed a daemon limit */
  PROB_JOB_FAILED,        /* stored in a failed job */
  PROB_JOB_INTERRUPTED,   /* stored in a job lost to a crash too often */
  PROB_COUNT
} problem_kind;

/* New problem object {type, title, status, detail}; status 0 uses the kind's
 * default. detail is printf-style. */
json_t *problem_new(problem_kind kind, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int problem_default_status(problem_kind kind);

#endif
