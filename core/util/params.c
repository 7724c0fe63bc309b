/* params.c: named parameters from JSON objects (see params.h). */
#include "util/params.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const params_spec *params_find(const params_spec *spec, const char *name) {
  for (const params_spec *p = spec; p && p->name; p++)
    if (!strcmp(p->name, name)) return p;
  return NULL;
}

const char *params_names(const params_spec *spec, char *buf, size_t size) {
  size_t n = 0;
  buf[0] = 0;
  for (const params_spec *p = spec; p && p->name && n < size; p++)
    n += (size_t)snprintf(buf + n, size - n, "%s%s", p == spec ? "" : ", ", p->name);
  if (!buf[0]) snprintf(buf, size, "none");
  return buf;
}

/* "params." -> "params", "config " -> "config" (the object's name) */
static int object_name_len(const char *what) {
  int n = (int)strlen(what);
  while (n > 0 && (what[n - 1] == '.' || what[n - 1] == ' ')) n--;
  return n;
}

static int check_one(const json_t *v, const params_spec *p, const char *what, sb_error *err) {
  if (p->type == PARAM_ANY) return SB_OK;
  if (p->type == PARAM_STR)
    return json_is_string(v) ? SB_OK : sb_fail(err, SB_EINVAL, "%s%s must be a string", what, p->name);
  int is_int = p->type == PARAM_INT;
  double x = json_is_number(v) ? json_number_value(v) : NAN;
  int ok = (is_int ? json_is_integer(v) : json_is_number(v)) && isfinite(x) && x <= p->hi &&
           (p->lo_open ? x > p->lo : x >= p->lo);
  if (ok) return SB_OK;
  if (p->lo_open && isinf(p->hi))
    return sb_fail(err, SB_EINVAL, "%s%s must be a positive %s", what, p->name, is_int ? "integer" : "number");
  if (is_int) return sb_fail(err, SB_EINVAL, "%s%s must be an integer in %.0f..%.0f", what, p->name, p->lo, p->hi);
  return sb_fail(err, SB_EINVAL, "%s%s must be a number in %g..%g", what, p->name, p->lo, p->hi);
}

int params_check(const json_t *obj, const params_spec *spec, const char *what, sb_error *err) {
  if (!obj || json_is_null(obj)) return SB_OK;
  int n = object_name_len(what);
  if (!json_is_object(obj)) return sb_fail(err, SB_EINVAL, "%.*s must be a JSON object", n, what);
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    const params_spec *p = params_find(spec, key);
    if (!p) {
      char names[512];
      return sb_fail(err, SB_EINVAL, "%.*s: unknown field '%s' (valid: %s)", n, what, key,
                     params_names(spec, names, sizeof names));
    }
    int rc = check_one(v, p, what, err);
    if (rc) return rc;
  }
  return SB_OK;
}

double params_num(const json_t *obj, const char *name, double dflt) {
  json_t *v = obj ? json_object_get(obj, name) : NULL;
  return json_is_number(v) ? json_number_value(v) : dflt;
}

long params_int(const json_t *obj, const char *name, long dflt) {
  json_t *v = obj ? json_object_get(obj, name) : NULL;
  return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

const char *params_str(const json_t *obj, const char *name, const char *dflt) {
  json_t *v = obj ? json_object_get(obj, name) : NULL;
  return json_is_string(v) ? json_string_value(v) : dflt;
}
