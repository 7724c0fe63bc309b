#include "util/sb_error.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* the last programming error noted by SB_BUG_RETURN (any thread; only read
 * to word a message) */
static _Atomic(const char *) bug_file;
static atomic_int bug_line;

int sb_bug_note(const char *file, int line, int code) {
  atomic_store(&bug_line, line);
  atomic_store(&bug_file, file);
  return code;
}

int sb_bug_at(sb_error *err, int code, const char *file, int line, const char *fmt, ...) {
  const char *noted = atomic_exchange(&bug_file, NULL);
  if (noted) file = noted, line = atomic_load(&bug_line);
  if (!err) return code;
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return sb_fail(err, code, "%s: programming error at %s:%d (code %s)", what, file, line, sb_strerror(code));
}

int sb_fail(sb_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return code;
}

int sb_wrap(sb_error *err, const char *fmt, ...) {
  if (!err) return SB_EINVAL;
  char prefix[256], old[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  snprintf(err->msg, sizeof err->msg, "%.200s: %.300s", prefix, old);
  return err->code;
}

const char *sb_strerror(int code) {
  switch (code) {
  case SB_OK: return "OK";
  case SB_EINVAL: return "EINVAL";
  case SB_EIO: return "EIO";
  case SB_ENOMEM: return "ENOMEM";
  case SB_EFORMAT: return "EFORMAT";
  case SB_ERANGE: return "ERANGE";
  case SB_ENOTSUP: return "ENOTSUP";
  case SB_ECANCEL: return "ECANCEL";
  case SB_ENUMERIC: return "ENUMERIC";
  default: return "EUNKNOWN";
  }
}
