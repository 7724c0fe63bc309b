/* log.h: JSON-lines logs on stderr, one object per line:
 *   {"ts":"...Z","level":"info","event":"job_finished","id":"...",...}
 * Thread-safe. Never pass observation payloads as fields. */
#ifndef SB_LOG_H
#define SB_LOG_H

#include <jansson.h>

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Sets the lowest level written; returns 0, or SB_EINVAL for an unknown name. */
int log_set_level(const char *name);
int log_enabled(int level);
/* Writes one line; fields (may be NULL) is an object whose reference is stolen. */
void log_event(int level, const char *event, json_t *fields);

#endif
