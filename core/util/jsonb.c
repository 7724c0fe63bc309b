/* jsonb.c: checked JSON building (see jsonb.h). */
#include "util/jsonb.h"

#include <math.h>

void jb_set(json_t *o, const char *key, json_t *v, int *bad) {
  /* json_object_set_new frees v itself when it fails (o not an object, no memory) */
  if (!o || !v) {
    json_decref(v);
    ++*bad;
    return;
  }
  if (json_object_set_new(o, key, v)) ++*bad;
}

void jb_push(json_t *a, json_t *v, int *bad) {
  if (!a || !v) {
    json_decref(v);
    ++*bad;
    return;
  }
  if (json_array_append_new(a, v)) ++*bad;
}

void jb_set_real(json_t *o, const char *key, double v, int *bad) {
  if (o && !isfinite(v)) return;
  jb_set(o, key, json_real(v), bad);
}

void jb_push_real(json_t *a, double v, int *bad) {
  if (a && !isfinite(v)) return;
  jb_push(a, json_real(v), bad);
}

json_t *jb_object(int *bad) {
  json_t *o = json_object();
  if (!o) ++*bad;
  return o;
}

json_t *jb_array(int *bad) {
  json_t *a = json_array();
  if (!a) ++*bad;
  return a;
}

json_t *jb_done(json_t *o, int bad) {
  if (!bad && o) return o;
  json_decref(o);
  return NULL;
}
