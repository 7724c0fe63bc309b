/* jsonb.h: building JSON with jansson without losing a failed allocation.
 *
 * jansson's constructors (json_real, json_string, json_array, ...) return
 * NULL when memory runs out, and json_object_set_new / json_array_append_new
 * then quietly leave the field out: a result would be stored or sent with a
 * field missing. These helpers steal v exactly as those two do and count any
 * failure in *bad, so a builder checks once, at the end:
 *
 *   int bad = 0;
 *   json_t *o = json_object();
 *   jb_set(o, "rmse", json_real(x), &bad);
 *   jb_push(list, json_integer(k), &bad);
 *   return jb_done(o, bad);      // o, or NULL (o freed) when anything failed
 */
#ifndef SB_JSONB_H
#define SB_JSONB_H

#include <jansson.h>

/* o[key] = v (v stolen, freed on failure); o NULL, v NULL or no memory: ++*bad. */
void jb_set(json_t *o, const char *key, json_t *v, int *bad);
/* Appends v to the array a (v stolen); any failure: ++*bad. */
void jb_push(json_t *a, json_t *v, int *bad);
/* o[key] = v as a JSON real. JSON has no NaN or infinity and json_real
 * refuses them, so a non-finite v leaves the field out, as
 * json_object_set_new(o, key, json_real(v)) always did; only a failure to
 * allocate (or o NULL) counts in *bad. */
void jb_set_real(json_t *o, const char *key, double v, int *bad);
/* Appends v as a JSON real; a non-finite v is left out (as
 * json_array_append_new(a, json_real(v)) did), a failure counts in *bad. */
void jb_push_real(json_t *a, double v, int *bad);
/* A new empty object or array; NULL counts in *bad. */
json_t *jb_object(int *bad);
json_t *jb_array(int *bad);
/* o when bad is 0; otherwise frees o and returns NULL. */
json_t *jb_done(json_t *o, int bad);

#endif
