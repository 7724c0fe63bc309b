#include "problem.h"

#include <stdarg.h>
#include <stdio.h>

#include "text.h"

static const struct {
  const char *slug, *title;
  int status;
} problem_table[PROB_COUNT] = {
    [PROB_MALFORMED_JSON] = {"malformed-json", "Request body is not valid JSON", 400},
    [PROB_BAD_REQUEST] = {"bad-request", "Bad request", 400},
    [PROB_VALIDATION] = {"validation", "Request does not fit the schema or the estimator", 422},
    [PROB_UNKNOWN_ESTIMATOR] = {"unknown-estimator", "Unknown estimator", 422},
    [PROB_IDEMPOTENCY] = {"idempotency-key-reused", "Idempotency-Key reused with a different body", 422},
    [PROB_NOT_FOUND] = {"not-found", "Not found", 404},
    [PROB_METHOD] = {"method-not-allowed", "Method not allowed", 405},
    [PROB_NOT_ACCEPTABLE] = {"not-acceptable", "Not acceptable", 406},
    [PROB_CONFLICT] = {"conflict", "Conflict with the job's state", 409},
    [PROB_TOO_LARGE] = {"too-large", "Request body too large", 413},
    [PROB_MEDIA_TYPE] = {"unsupported-media-type", "Unsupported media type", 415},
    [PROB_QUEUE_FULL] = {"queue-full", "Job queue is full", 429},
    [PROB_UNAUTHORIZED] = {"unauthorized", "Missing or invalid bearer token", 401},
    [PROB_INTERNAL] = {"internal", "Internal server error", 500},
    [PROB_UNAVAILABLE] = {"unavailable", "Service unavailable", 503},
    [PROB_NOT_IMPLEMENTED] = {"not-implemented", "Not implemented", 501},
    [PROB_LIMIT] = {"limit-exceeded", "The job would exceed a limit of the daemon", 422},
    [PROB_JOB_FAILED] = {"estimator-failed", "The estimator failed", 500},
    [PROB_JOB_INTERRUPTED] = {"interrupted", "The job was interrupted by daemon restarts", 500},
};

int problem_default_status(problem_kind kind) { return problem_table[kind].status; }

json_t *problem_new(problem_kind kind, int status, const char *fmt, ...) {
  char raw[1024], detail[1024], type[96];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  /* names from the request may hold invalid UTF-8 or be cut inside a
   * character by a %.Ns: JSON needs valid UTF-8, so such bytes are escaped */
  text_escape(raw, detail, sizeof detail);
  snprintf(type, sizeof type, "urn:sbida:problem:%s", problem_table[kind].slug);
  return json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", problem_table[kind].title, "status",
                   status ? status : problem_table[kind].status, "detail", detail);
}
