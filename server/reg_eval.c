#include "reg_eval.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonb.h"

/* sorted names of the entries of dir whose name ends with suffix ("" = any,
 * dot entries skipped); *n set; NULL when dir is unreadable */
static char **reg_eval_list(const char *dir, const char *suffix, size_t *n) {
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return NULL;
  char **v = NULL;
  size_t cap = 0, sl = strlen(suffix);
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (de->d_name[0] == '.' || len <= sl || strcmp(de->d_name + len - sl, suffix)) continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 8;
      char **nv = realloc(v, cap * sizeof *nv);
      if (!nv) break;
      v = nv;
    }
    if (!(v[*n] = strdup(de->d_name))) break;
    (*n)++;
  }
  closedir(d);
  for (size_t i = 1; i < *n; i++) /* insertion sort: a handful of names */
    for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
      char *t = v[j];
      v[j] = v[j - 1], v[j - 1] = t;
    }
  return v;
}

static void reg_eval_free_list(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* the calibration curve of one result file (its "coverage": the observed
 * fraction of truths inside each central credible interval, per nominal
 * level), copied as {method?, levels, observed}; NULL when the file has no
 * such arrays, or when they are not numbers of the same length */
static json_t *reg_eval_coverage(const json_t *cov) {
  json_t *levels = json_object_get(cov, "levels"), *observed = json_object_get(cov, "observed");
  size_t n = json_array_size(levels);
  if (!json_is_array(levels) || !json_is_array(observed) || !n || json_array_size(observed) != n) return NULL;
  for (size_t i = 0; i < n; i++)
    if (!json_is_number(json_array_get(levels, i)) || !json_is_number(json_array_get(observed, i))) return NULL;
  return json_pack("{s:O?, s:O, s:O}", "method", json_object_get(cov, "method"), "levels", levels, "observed",
                   observed);
}

/* one setup directory: the shared test set and every estimator's metrics */
static json_t *reg_eval_setup(const char *dir, const char *setup) {
  size_t n;
  char **files = reg_eval_list(dir, ".json", &n);
  int bad = 0;
  json_t *out = NULL, *results = jb_object(&bad);
  for (size_t i = 0; i < n; i++) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    json_t *j = json_load_file(path, 0, NULL);
    const char *name = json_string_value(json_object_get(j, "estimator"));
    if (!json_is_object(j) || !name) {
      json_decref(j);
      continue;
    }
    if (!out)
      out = json_pack("{s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "setup", setup, "preset",
                      json_object_get(j, "preset"), "N", json_object_get(j, "N"), "operator",
                      json_object_get(j, "operator"), "noise_std", json_object_get(j, "noise_std"), "window",
                      json_object_get(j, "window"), "time_index", json_object_get(j, "time_index"), "cases",
                      json_object_get(j, "cases"), "samples", json_object_get(j, "samples"), "seed",
                      json_object_get(j, "seed"));
    /* cost: one request on one thread as the evaluation ran it, `threads` of
     * them at once (files before "seconds_per_request" existed give null), with
     * the params it was given and the sampler settings in effect (files before
     * the evaluation recorded them have no "settings") */
    json_t *spr = json_object_get(j, "seconds_per_request");
    json_t *settings = json_object_get(json_object_get(j, "diagnostics"), "sampler");
    if (!json_is_object(settings)) settings = NULL; /* a damaged file's other value is left out */
    json_t *r = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O*}", "kind", json_object_get(j, "kind"),
                          "rmse", json_object_get(j, "rmse"), "spread", json_object_get(j, "spread"), "crps",
                          json_object_get(j, "crps"), "coverage_max_abs_error",
                          json_object_get(json_object_get(j, "coverage"), "max_abs_error"), "seconds_per_request",
                          spr ? spr : json_null(), "threads", json_object_get(j, "threads"), "params",
                          json_object_get(j, "params"), "settings", settings);
    json_t *curve = reg_eval_coverage(json_object_get(j, "coverage"));
    if (curve) jb_set(r, "coverage", curve, &bad); /* a curve that is not whole is left out, not an error */
    jb_set(results, name, r, &bad);
    json_decref(j);
  }
  reg_eval_free_list(files, n);
  if (out) jb_set(out, "results", results, &bad);
  else json_decref(results);
  return jb_done(out, bad);
}

json_t *reg_eval_load(const char *models_dir, const char *stem) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/eval/%s", models_dir, stem);
  size_t n;
  char **setups = reg_eval_list(dir, "", &n);
  if (!setups) return NULL;
  int bad = 0;
  json_t *arr = jb_array(&bad);
  for (size_t i = 0; i < n; i++) {
    char sub[4096 + 256];
    snprintf(sub, sizeof sub, "%s/%s", dir, setups[i]);
    json_t *s = reg_eval_setup(sub, setups[i]);
    if (s) jb_push(arr, s, &bad);
  }
  reg_eval_free_list(setups, n);
  if (bad || !json_array_size(arr)) {
    json_decref(arr);
    return NULL;
  }
  char src[300];
  snprintf(src, sizeof src, "eval/%s", stem);
  return json_pack("{s:s, s:o}", "source", src, "setups", arr);
}
