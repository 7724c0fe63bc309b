/* registry.h: the estimators the daemon serves: the baselines of every
 * preset and the model files of the models directory.
 *
 * Readers (HTTP threads, job workers) never see a registry change under
 * them: they take a reference to the current snapshot (reg_hold), an
 * immutable list of estimators, and drop it when done (reg_drop). A reload
 * (SIGHUP, POST /v1/estimators:reload) builds a new snapshot from the
 * directory, sharing the entries of unchanged files, and swaps it in under a
 * lock (RCU-like). Entries are reference counted by the snapshots that list
 * them, so a running job (which holds the snapshot it started with from its
 * parse to its end, see job_spec.h) finishes on the model it started with; a
 * retired or replaced model is freed when the last snapshot listing it goes. */
#ifndef SB_REGISTRY_H
#define SB_REGISTRY_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "est/est.h"

/* One served estimator and, for a model file, what identifies its version. */
typedef struct reg_entry {
  estimator *e;           /* owned */
  atomic_int refs;        /* snapshots listing this entry */
  char *file;             /* file name in the models directory; NULL for a baseline */
  dev_t dev;              /* the file's identity when loaded: a change of any of */
  ino_t ino;              /* these makes a reload read it again (and replace it */
  off_t size;             /* when its digest differs) */
  struct timespec mtime;
  char digest[32];        /* "fnv1a64:" + 16 hex digits of the file's bytes */
  double loaded_at;       /* Unix seconds */
  int published;          /* in a snapshot readers have seen (written and read under reload_mu) */
} reg_entry;

/* An immutable list of estimators; items[i] is entries[i]->e. */
typedef struct reg_snap {
  estimator **items;
  reg_entry **entries;
  int count, cap;
  int failed;             /* model files that could not be loaded (this load) */
  long generation;        /* 1 for the start, +1 per reload */
  atomic_int refs;        /* the registry's own plus one per holder */
} reg_snap;

typedef struct registry {
  pthread_mutex_t mu;        /* guards cur while a reference is taken or it is swapped */
  pthread_mutex_t reload_mu; /* one load or reload at a time */
  reg_snap *cur;
  char *dir;                 /* the models directory */
  int init;
} registry;

/* Opens the baselines (etkf, letkf, pf) of every preset, then every
 * *.safetensors in models_dir (missing dir: none). Failures are logged and
 * skipped; returns 0 unless memory runs out. r is zeroed or freed first. */
int reg_load(registry *r, const char *models_dir, sb_error *err);
/* Rescans the models directory: new files are loaded, removed ones retired,
 * changed ones (device, inode, size or mtime differ, and then the content
 * digest) replaced; a file that fails to load is reported and skipped (a
 * changed file that fails keeps its previous version served). Baselines are
 * opened again (their evaluations come from the models'). Returns what
 * changed {"generation", "added", "replaced", "removed", "failed",
 * "unchanged", "estimators"} (new reference), or NULL with err set when the
 * directory cannot be read or memory runs out (nothing changes then). */
json_t *reg_reload(registry *r, sb_error *err);
/* The current snapshot with a reference the caller drops (never NULL after
 * a successful reg_load). */
reg_snap *reg_hold(registry *r);
void reg_drop(reg_snap *s);
/* Number of served estimators now. */
int reg_count(registry *r);

estimator *reg_find(const reg_snap *s, const char *name);
/* The entry of estimator e in s, or NULL. */
const reg_entry *reg_entry_of(const reg_snap *s, const estimator *e);
/* Describes entry i of s for GET /v1/estimators/{name} (new reference;
 * NULL when memory runs out). */
json_t *reg_describe(const reg_snap *s, int i);
/* {"file", "digest", "loaded_at"} of a model file's entry, NULL for a
 * baseline (new reference). */
json_t *reg_entry_source(const reg_entry *en);
void reg_free(registry *r);

#endif
