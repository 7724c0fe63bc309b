#include "log.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "util/sb_error.h"

static int log_level = LOG_INFO;
static const char *const log_names[] = {"debug", "info", "warn", "error"};

int log_set_level(const char *name) {
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, log_names[i])) {
      log_level = i;
      return SB_OK;
    }
  return SB_EINVAL;
}

int log_enabled(int level) { return level >= log_level; }

void log_event(int level, const char *event, json_t *fields) {
  if (level < log_level || level < 0 || level > 3) {
    json_decref(fields);
    return;
  }
  char ts[40];
  clock_format_rfc3339(clock_now_ms(), ts, sizeof ts);
  json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", log_names[level], "event", event);
  if (!o) {
    json_decref(fields);
    return;
  }
  if (fields) json_object_update_missing(o, fields);
  json_decref(fields);
  char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!line) return;
  flockfile(stderr);
  fputs(line, stderr);
  fputc('\n', stderr);
  funlockfile(stderr);
  fflush(stderr);
  free(line);
}
