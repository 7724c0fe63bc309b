#include "util/sb_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
