#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "log.h"
#include "reg_eval.h"
#include "reg_match.h"

int reg_add(registry *r, estimator *e, sb_error *err) {
  if (reg_find(r, e->name)) {
    int rc = sb_fail(err, SB_EINVAL, "two estimators are named %s; the second one is skipped", e->name);
    est_free(e);
    return rc;
  }
  if (r->count == r->cap) {
    int cap = r->cap ? 2 * r->cap : 16;
    estimator **n = realloc(r->items, (size_t)cap * sizeof *n);
    if (!n) {
      est_free(e);
      return sb_fail(err, SB_ENOMEM, "out of memory");
    }
    r->items = n;
    r->cap = cap;
  }
  r->items[r->count++] = e;
  return SB_OK;
}

estimator *reg_find(const registry *r, const char *name) {
  for (int i = 0; i < r->count; i++)
    if (!strcmp(r->items[i]->name, name)) return r->items[i];
  return NULL;
}

static void reg_log_fail(const char *spec, const char *preset, const sb_error *err) {
  log_event(LOG_WARN, "estimator_skipped",
            json_pack("{s:s, s:s?, s:s, s:s}", "spec", spec, "preset", preset, "code", sb_strerror(err->code),
                      "reason", err->msg));
}

static int reg_cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int reg_load(registry *r, const char *models_dir, sb_error *err) {
  const char *name;
  for (int p = 0; sim_presets[p]; p++)
    for (int k = 0; (name = catalog_baseline_at(k)); k++) {
      estimator *e;
      sb_error e2 = {0};
      if (est_open(&e, name, sim_presets[p], 0, &e2)) {
        reg_log_fail(name, sim_presets[p], &e2);
        continue;
      }
      int rc = reg_add(r, e, &e2);
      if (rc == SB_ENOMEM) return sb_fail(err, rc, "%s", e2.msg);
      if (rc) reg_log_fail(name, sim_presets[p], &e2);
    }
  DIR *d = opendir(models_dir);
  if (!d) {
    log_event(LOG_WARN, "models_dir_unreadable",
              json_pack("{s:s, s:s}", "dir", models_dir, "reason", strerror(errno)));
    return SB_OK;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len <= 12 || strcmp(de->d_name + len - 12, ".safetensors")) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn) break;
      names = nn;
    }
    if (!(names[n] = strdup(de->d_name))) break;
    n++;
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, reg_cmp_names);
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", models_dir, names[i]);
    estimator *e;
    sb_error e2 = {0};
    if (est_open(&e, path, NULL, 0, &e2)) {
      r->failed++;
      reg_log_fail(path, NULL, &e2);
    } else if (reg_add(r, e, &e2)) {
      r->failed++;
      reg_log_fail(path, NULL, &e2);
    } else {
      json_t *ev = e->info ? reg_eval_load(models_dir, e->name) : NULL;
      if (ev) json_object_set_new(e->info, "evaluation", ev);
      log_event(LOG_INFO, "model_loaded", json_pack("{s:s, s:s, s:s}", "file", path, "name", e->name, "kind", e->kind));
    }
    free(names[i]);
  }
  free(names);
  reg_share_evaluations(r);
  return SB_OK;
}

json_t *reg_describe(const estimator *e) {
  const sim *s = e->sim;
  int wmin = e->window > 0 ? e->window : 1;
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:[i,i,i], s:i, s:b, s:b, s:b}", "name", e->name, "kind", e->kind,
                        "preset", s->preset, "system", s->system, "state_shape", s->channels, s->height, s->width,
                        "state_dim", s->dim, "stationary", s->stationary, "has_density", e->has_density,
                        "has_window", e->has_window);
  if (!o) return NULL;
  json_object_set_new(o, "window", e->window > 0 ? json_integer(e->window) : json_string("any"));
  json_object_set_new(o, "operator", e->fixed_op ? obs_to_json(e->fixed_op) : json_string("any"));
  json_object_set_new(o, "noise_std", e->fixed_noise ? obs_noise_to_json(e->fixed_noise) : json_string("any"));
  json_object_set_new(o, "time_index", json_pack("{s:i, s:I}", "min", wmin - 1, "max", (json_int_t)s->t_max));
  /* a private copy: handler threads never share reference counts */
  json_t *info = e->info ? json_deep_copy(e->info) : json_object();
  json_t *tr = json_object_get(info, "training"), *ev = json_object_get(info, "evaluation");
  json_object_set(o, "training", tr ? tr : json_null());
  json_object_set(o, "evaluation", ev ? ev : json_null());
  json_object_set_new(o, "info", info);
  return o;
}

void reg_free(registry *r) {
  for (int i = 0; i < r->count; i++) est_free(r->items[i]);
  free(r->items);
  memset(r, 0, sizeof *r);
}
