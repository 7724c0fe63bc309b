#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "catalog/catalog.h"
#include "log.h"
#include "reg_eval.h"
#include "reg_match.h"
#include "util/jsonb.h"

/* ---- entries and snapshots ---- */

static reg_entry *reg_entry_new(estimator *e) {
  reg_entry *en = calloc(1, sizeof *en);
  if (!en) return NULL;
  en->e = e;
  atomic_init(&en->refs, 0);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  en->loaded_at = (double)ts.tv_sec + ts.tv_nsec / 1e9;
  return en;
}

/* Frees an entry no snapshot lists (refs 0). */
static void reg_entry_free(reg_entry *en) {
  if (!en) return;
  est_free(en->e);
  free(en->file);
  free(en);
}

static reg_snap *reg_snap_new(long generation) {
  reg_snap *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->generation = generation;
  atomic_init(&s->refs, 1);
  return s;
}

estimator *reg_find(const reg_snap *s, const char *name) {
  for (int i = 0; i < s->count; i++)
    if (!strcmp(s->items[i]->name, name)) return s->items[i];
  return NULL;
}

const reg_entry *reg_entry_of(const reg_snap *s, const estimator *e) {
  for (int i = 0; i < s->count; i++)
    if (s->items[i] == e) return s->entries[i];
  return NULL;
}

/* Lists en in s (one more reference on it). SB_EINVAL on a duplicate name,
 * SB_ENOMEM; on failure en is not listed (the caller still owns it). */
static int reg_snap_add(reg_snap *s, reg_entry *en, sb_error *err) {
  if (reg_find(s, en->e->name))
    return sb_fail(err, SB_EINVAL, "two estimators are named %s; the second one is skipped", en->e->name);
  if (s->count == s->cap) {
    int cap = s->cap ? 2 * s->cap : 32;
    estimator **ni = realloc(s->items, (size_t)cap * sizeof *ni);
    if (!ni) return sb_fail(err, SB_ENOMEM, "out of memory");
    s->items = ni;
    reg_entry **ne = realloc(s->entries, (size_t)cap * sizeof *ne);
    if (!ne) return sb_fail(err, SB_ENOMEM, "out of memory");
    s->entries = ne;
    s->cap = cap;
  }
  s->items[s->count] = en->e;
  s->entries[s->count++] = en;
  atomic_fetch_add(&en->refs, 1);
  return SB_OK;
}

void reg_drop(reg_snap *s) {
  if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
  for (int i = 0; i < s->count; i++)
    if (atomic_fetch_sub(&s->entries[i]->refs, 1) == 1) reg_entry_free(s->entries[i]);
  free(s->items);
  free(s->entries);
  free(s);
}

reg_snap *reg_hold(registry *r) {
  pthread_mutex_lock(&r->mu);
  reg_snap *s = r->cur;
  if (s) atomic_fetch_add(&s->refs, 1);
  pthread_mutex_unlock(&r->mu);
  return s;
}

int reg_count(registry *r) {
  reg_snap *s = reg_hold(r);
  int n = s ? s->count : 0;
  reg_drop(s);
  return n;
}

/* ---- building a snapshot from the directory ---- */

static void reg_log_fail(const char *spec, const char *preset, const sb_error *err) {
  log_event(LOG_WARN, "estimator_skipped",
            json_pack("{s:s, s:s?, s:s, s:s}", "spec", spec, "preset", preset, "code", sb_strerror(err->code),
                      "reason", err->msg));
}

static int reg_add_baselines(reg_snap *s, sb_error *err) {
  const char *name;
  for (int p = 0; sim_presets[p]; p++)
    for (int k = 0; (name = catalog_baseline_at(k)); k++) {
      estimator *e;
      sb_error e2 = {0};
      if (est_open(&e, name, sim_presets[p], 0, &e2)) {
        reg_log_fail(name, sim_presets[p], &e2);
        continue;
      }
      reg_entry *en = reg_entry_new(e);
      if (!en) {
        est_free(e);
        return sb_fail(err, SB_ENOMEM, "out of memory");
      }
      int rc = reg_snap_add(s, en, &e2);
      if (rc) reg_entry_free(en);
      if (rc == SB_ENOMEM) return sb_fail(err, rc, "%s", e2.msg);
      if (rc) reg_log_fail(name, sim_presets[p], &e2);
    }
  return SB_OK;
}

static int reg_cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted *.safetensors names in dir; NULL with errno set when dir cannot be
 * read, or on no memory (errno ENOMEM). */
static char **reg_list_models(const char *dir, size_t *n) {
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return NULL;
  char **names = calloc(1, sizeof *names);
  size_t cap = 1;
  struct dirent *de;
  while (names && (de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len <= 12 || strcmp(de->d_name + len - 12, ".safetensors")) continue;
    if (*n == cap) {
      char **nn = realloc(names, 2 * cap * sizeof *nn);
      if (!nn) break;
      names = nn, cap *= 2;
    }
    if (!(names[*n] = strdup(de->d_name))) break;
    (*n)++;
  }
  int ok = names && !de;
  closedir(d);
  if (!ok) {
    for (size_t i = 0; names && i < *n; i++) free(names[i]);
    free(names);
    errno = ENOMEM;
    return NULL;
  }
  if (*n) qsort(names, *n, sizeof *names, reg_cmp_names);
  return names;
}

/* FNV-1a 64 of the file's bytes as "fnv1a64:%016llx"; SB_EIO when unreadable. */
static int reg_digest(const char *path, char out[32], sb_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return sb_fail(err, SB_EIO, "cannot read %s: %s", path, strerror(errno));
  unsigned long long h = 1469598103934665603ULL;
  unsigned char buf[65536];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, f)) > 0)
    for (size_t i = 0; i < k; i++) h = (h ^ buf[i]) * 1099511628211ULL;
  int bad = ferror(f);
  fclose(f);
  if (bad) return sb_fail(err, SB_EIO, "error reading %s", path);
  snprintf(out, 32, "fnv1a64:%016llx", h);
  return SB_OK;
}

static int reg_same_identity(const reg_entry *en, const struct stat *st) {
  return en->dev == st->st_dev && en->ino == st->st_ino && en->size == st->st_size &&
         en->mtime.tv_sec == st->st_mtim.tv_sec && en->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static void reg_set_identity(reg_entry *en, const struct stat *st) {
  en->dev = st->st_dev, en->ino = st->st_ino, en->size = st->st_size, en->mtime = st->st_mtim;
}

/* Opens one model file into a new entry (its evaluation attached). */
static int reg_open_model(const char *dir, const char *file, const struct stat *st, const char *digest,
                          reg_entry **out, sb_error *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  estimator *e;
  int rc = est_open(&e, path, NULL, 0, err);
  if (rc) return rc;
  reg_entry *en = reg_entry_new(e);
  if (!en || !(en->file = strdup(file))) {
    if (en) reg_entry_free(en);
    else est_free(e);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  reg_set_identity(en, st);
  snprintf(en->digest, sizeof en->digest, "%s", digest);
  json_t *ev = e->info ? reg_eval_load(dir, e->name) : NULL;
  int bad = 0;
  if (ev) jb_set(e->info, "evaluation", ev, &bad); /* a failure leaves it without one, as without files */
  *out = en;
  return SB_OK;
}

static const reg_entry *reg_prev_file(const reg_snap *prev, const char *file) {
  for (int i = 0; prev && i < prev->count; i++)
    if (prev->entries[i]->file && !strcmp(prev->entries[i]->file, file)) return prev->entries[i];
  return NULL;
}

/* The report of a reload; every array may stay empty. */
typedef struct reg_report {
  json_t *added, *replaced, *removed, *failed, *unchanged;
  int bad; /* an entry could not be recorded (no memory): the reload is not published */
} reg_report;

/* Records item in arr (item stolen); without arr (the start's load) it is dropped. */
static void reg_note(reg_report *rep, json_t *arr, json_t *item) {
  if (arr) jb_push(arr, item, &rep->bad);
  else json_decref(item);
}

/* Loads (or, with prev, reloads) the model file `file` into s. Never fails
 * as a whole except on no memory: a broken file is logged, reported and
 * skipped; a changed file that is broken keeps its previous entry. */
static int reg_add_model(reg_snap *s, const char *dir, const char *file, const reg_snap *prev, reg_report *rep,
                         sb_error *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  reg_entry *old = (reg_entry *)reg_prev_file(prev, file), *en = NULL;
  struct stat st;
  char digest[32] = "";
  sb_error e2 = {0};
  int rc = stat(path, &st) ? sb_fail(&e2, SB_EIO, "cannot stat %s: %s", path, strerror(errno)) : SB_OK;
  if (!rc && old && reg_same_identity(old, &st)) {
    en = old; /* unchanged: shared with the previous snapshot */
  } else if (!rc && !(rc = reg_digest(path, digest, &e2)) && old && !strcmp(old->digest, digest)) {
    reg_set_identity(old, &st); /* touched or copied over with the same bytes */
    en = old;
  } else if (!rc) {
    rc = reg_open_model(dir, file, &st, digest, &en, &e2);
  }
  if (rc == SB_ENOMEM) return sb_fail(err, rc, "%s", e2.msg);
  int broken = rc != 0;
  if (broken) {
    s->failed++;
    reg_log_fail(path, NULL, &e2);
    reg_note(rep, rep->failed, json_pack("{s:s, s:s, s:s, s:s*}", "file", file, "code", sb_strerror(e2.code), "reason",
                                    e2.msg, "kept", old ? old->e->name : NULL));
    if (!old) return SB_OK;
    en = old; /* the previous version stays served */
  }
  int fresh = en != old;
  if ((rc = reg_snap_add(s, en, &e2))) {
    if (rc == SB_ENOMEM) {
      if (fresh) reg_entry_free(en);
      return sb_fail(err, rc, "%s", e2.msg);
    }
    s->failed++;
    reg_log_fail(path, NULL, &e2);
    reg_note(rep, rep->failed, json_pack("{s:s, s:s, s:s}", "file", file, "code", sb_strerror(e2.code), "reason", e2.msg));
    if (fresh) reg_entry_free(en);
    return SB_OK;
  }
  if (!fresh) {
    if (!broken) reg_note(rep, rep->unchanged, json_string(en->e->name));
    return SB_OK;
  }
  log_event(LOG_INFO, "model_loaded", json_pack("{s:s, s:s, s:s, s:s}", "file", path, "name", en->e->name, "kind",
                                                en->e->kind, "digest", en->digest));
  if (old)
    reg_note(rep, rep->replaced, json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", en->e->name, "file", file, "digest",
                                      en->digest, "previous_name", old->e->name, "previous_digest", old->digest));
  else
    reg_note(rep, rep->added, json_pack("{s:s, s:s, s:s, s:s}", "name", en->e->name, "file", file, "kind", en->e->kind,
                                   "digest", en->digest));
  return SB_OK;
}

/* A new snapshot: fresh baselines, then the model files of dir (sharing the
 * unchanged entries of prev). NULL with err set when dir is unreadable
 * (require_dir) or memory runs out. */
static reg_snap *reg_build(const char *dir, const reg_snap *prev, int require_dir, reg_report *rep, sb_error *err) {
  size_t n = 0;
  char **names = reg_list_models(dir, &n);
  if (!names && (errno == ENOMEM || require_dir)) {
    sb_fail(err, errno == ENOMEM ? SB_ENOMEM : SB_EIO, "the models directory %s cannot be read (%s); nothing "
            "changed", dir, strerror(errno));
    return NULL;
  }
  if (!names)
    log_event(LOG_WARN, "models_dir_unreadable", json_pack("{s:s, s:s}", "dir", dir, "reason", strerror(errno)));
  reg_snap *s = reg_snap_new(prev ? prev->generation + 1 : 1);
  int rc = s ? reg_add_baselines(s, err) : sb_fail(err, SB_ENOMEM, "out of memory");
  for (size_t i = 0; i < n && !rc; i++) rc = reg_add_model(s, dir, names[i], prev, rep, err);
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  if (rc) {
    reg_drop(s);
    return NULL;
  }
  reg_share_evaluations(s);
  return s;
}

/* Publishes s as the current snapshot and drops the previous one. */
static void reg_publish(registry *r, reg_snap *s) {
  pthread_mutex_lock(&r->mu);
  reg_snap *old = r->cur;
  r->cur = s;
  pthread_mutex_unlock(&r->mu);
  for (int i = 0; i < s->count; i++) s->entries[i]->published = 1;
  reg_drop(old);
}

int reg_load(registry *r, const char *models_dir, sb_error *err) {
  memset(r, 0, sizeof *r);
  if (!(r->dir = strdup(models_dir))) return sb_fail(err, SB_ENOMEM, "out of memory");
  pthread_mutex_init(&r->mu, NULL);
  pthread_mutex_init(&r->reload_mu, NULL);
  r->init = 1;
  reg_report rep = {0};
  reg_snap *s = reg_build(r->dir, NULL, 0, &rep, err);
  if (!s) return err->code ? err->code : SB_ENOMEM;
  reg_publish(r, s);
  return SB_OK;
}

json_t *reg_reload(registry *r, sb_error *err) {
  reg_report rep = {json_array(), json_array(), json_array(), json_array(), json_array(), 0};
  json_t *out = NULL;
  if (!rep.added || !rep.replaced || !rep.removed || !rep.failed || !rep.unchanged) {
    sb_fail(err, SB_ENOMEM, "out of memory");
    goto done;
  }
  pthread_mutex_lock(&r->reload_mu);
  reg_snap *prev = reg_hold(r);
  reg_snap *s = reg_build(r->dir, prev, 1, &rep, err);
  if (s) {
    /* retired: model entries of prev that s no longer lists */
    for (int i = 0; i < prev->count; i++) {
      reg_entry *en = prev->entries[i];
      int kept = 0;
      for (int j = 0; j < s->count && !kept; j++) kept = s->entries[j] == en;
      if (!en->file || kept) continue;
      int replaced = 0;
      for (int j = 0; j < s->count && !replaced; j++)
        replaced = s->entries[j]->file && !strcmp(s->entries[j]->file, en->file);
      if (!replaced)
        reg_note(&rep, rep.removed, json_pack("{s:s, s:s, s:s}", "name", en->e->name, "file", en->file, "digest",
                                        en->digest));
    }
    out = json_pack("{s:I, s:O, s:O, s:O, s:O, s:O, s:i}", "generation", (json_int_t)s->generation, "added",
                    rep.added, "replaced", rep.replaced, "removed", rep.removed, "failed", rep.failed, "unchanged",
                    rep.unchanged, "estimators", s->count);
    if (!out || rep.bad) {
      json_decref(out);
      out = NULL;
      sb_fail(err, SB_ENOMEM, "out of memory while reloading; nothing changed");
      reg_drop(s);
    } else {
      reg_publish(r, s);
    }
  }
  reg_drop(prev);
  pthread_mutex_unlock(&r->reload_mu);
done:
  json_decref(rep.added), json_decref(rep.replaced), json_decref(rep.removed), json_decref(rep.failed);
  json_decref(rep.unchanged);
  return out;
}

json_t *reg_entry_source(const reg_entry *en) {
  if (!en || !en->file) return NULL;
  return json_pack("{s:s, s:s, s:f}", "file", en->file, "digest", en->digest, "loaded_at", en->loaded_at);
}

json_t *reg_describe(const reg_snap *rs, int i) {
  const estimator *e = rs->items[i];
  const sim *s = e->sim;
  int bad = 0; /* any failed allocation: NULL, never a description missing a field */
  int wlo, whi;
  est_window_range(e, &wlo, &whi);
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:[i,i,i], s:i, s:b, s:b, s:b}", "name", e->name, "kind", e->kind,
                        "preset", s->preset, "system", s->system, "state_shape", s->channels, s->height, s->width,
                        "state_dim", s->dim, "stationary", s->stationary, "has_density", e->has_density,
                        "has_window", e->has_window);
  if (!o) return NULL;
  jb_set(o, "window", e->window > 0 ? json_integer(e->window) : json_string("any"), &bad);
  /* what a request may ask for: state_dim (a request field) and the number of observation rows */
  int dmin = e->dim_max > 0 ? e->dim_min : s->dim, dmax = e->dim_max > 0 ? e->dim_max : s->dim;
  jb_set(o, "state_dim_range", json_pack("{s:i, s:i}", "min", dmin, "max", dmax), &bad);
  jb_set(o, "window_range", json_pack("{s:i, s:i}", "min", wlo, "max", whi), &bad);
  jb_set(o, "operator", e->fixed_op ? obs_to_json(e->fixed_op) : json_string("any"), &bad);
  jb_set(o, "noise_std", e->fixed_noise ? obs_noise_to_json(e->fixed_noise) : json_string("any"), &bad);
  jb_set(o, "time_index", json_pack("{s:i, s:I}", "min", wlo - 1, "max", (json_int_t)s->t_max), &bad);
  jb_set(o, "model_file", rs->entries[i]->file ? reg_entry_source(rs->entries[i]) : json_null(), &bad);
  /* a private copy: handler threads never share reference counts */
  json_t *info = e->info ? json_deep_copy(e->info) : json_object();
  json_t *tr = json_object_get(info, "training"), *ev = json_object_get(info, "evaluation");
  jb_set(o, "training", tr ? json_incref(tr) : json_null(), &bad);
  jb_set(o, "evaluation", ev ? json_incref(ev) : json_null(), &bad);
  jb_set(o, "info", info, &bad);
  return jb_done(o, bad);
}

void reg_free(registry *r) {
  if (!r->init) return;
  reg_drop(r->cur);
  pthread_mutex_destroy(&r->mu);
  pthread_mutex_destroy(&r->reload_mu);
  free(r->dir);
  memset(r, 0, sizeof *r);
}
