#include "store_impl.h"

#include "job_state.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "clock.h"


typedef struct sq {
  struct store base;
  sqlite3 *w, *r;          /* writer and reader connections */
  pthread_mutex_t wmu, rmu;
  unsigned char key[16];   /* per-database secret (page tokens), from the meta table */
  int write_failing;       /* the last write transaction failed in SQLite (under wmu) */
  int lock_fd;             /* flock on PATH.lock while open, -1 for :memory: */
} sq;

/* One daemon per database: an exclusive flock on PATH.lock, held for the
 * store's life and released by the kernel when the process dies (kill -9
 * included), so a second sbidad on the same file refuses to start instead of
 * re-running the first one's jobs as if they had been interrupted. */
static int store_lock(sq *s, const char *path, sb_error *err) {
  s->lock_fd = -1;
  if (!strcmp(path, ":memory:") || !strncmp(path, "file:", 5)) return SB_OK;
  char lp[4096];
  if ((size_t)snprintf(lp, sizeof lp, "%s.lock", path) >= sizeof lp)
    return sb_fail(err, SB_EINVAL, "database path too long");
  int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return sb_fail(err, SB_EIO, "cannot open lock file %s: %s", lp, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB)) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK)
      return sb_fail(err, SB_EIO,
                     "database %s is in use by another running sbidad (lock %s held); "
                     "stop it or give this daemon its own --db",
                     path, lp);
    return sb_fail(err, SB_EIO, "cannot lock %s: %s", lp, strerror(e));
  }
  s->lock_fd = fd;
  return SB_OK;
}

/* Versioned schema migrations, applied in order at open inside one write
 * transaction; table schema_version records each. Append, never edit: a
 * database records the versions it has. Migration 1 is the schema sbida had
 * before versions existed (IF NOT EXISTS, so such a database takes it as is). */
static const char *const store_schema =
    "CREATE TABLE IF NOT EXISTS runs("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " estimator TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK(state IN (%s))," /* job_state.h's list */
    " time_index INTEGER NOT NULL,"
    " n_samples INTEGER NOT NULL,"
    " request TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " started_ms INTEGER,"
    " finished_ms INTEGER,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " result TEXT,"
    " error TEXT,"
    " samples BLOB,"
    " samples_dim INTEGER NOT NULL DEFAULT 0,"
    " idem_key TEXT UNIQUE,"
    " body_hash TEXT);"
    "CREATE INDEX IF NOT EXISTS runs_state ON runs(state, seq);"
    "CREATE INDEX IF NOT EXISTS runs_estimator ON runs(estimator, seq);"
    "CREATE TABLE IF NOT EXISTS transitions("
    " run_id TEXT NOT NULL,"
    " at_ms INTEGER NOT NULL,"
    " state TEXT NOT NULL,"
    " reason TEXT);"
    "CREATE INDEX IF NOT EXISTS transitions_run ON transitions(run_id);"
    /* meta: the database's secret key (page tokens); health: what the readiness probe writes */
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS health(k INTEGER PRIMARY KEY, at_ms INTEGER, pad BLOB);"
    "INSERT OR IGNORE INTO meta(name, value) VALUES('token_key', randomblob(16));";

static const char *const sq_migrations[] = {
    NULL, /* 1: store_schema, formatted with the state list */
    /* 2: the queue's lease: which daemon runs a job, until when */
    "ALTER TABLE runs ADD COLUMN owner TEXT;"
    "ALTER TABLE runs ADD COLUMN lease_until INTEGER;"
    "CREATE INDEX IF NOT EXISTS runs_lease ON runs(state, lease_until);",
    /* 3: streams (cycling) and their cycles, one row per time index */
    "CREATE TABLE IF NOT EXISTS streams(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    " created_ms INTEGER NOT NULL, config TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cycles(stream_id TEXT NOT NULL, time_index INTEGER NOT NULL,"
    " run_id TEXT NOT NULL, observations TEXT NOT NULL, PRIMARY KEY(stream_id, time_index));",
};
#define SQ_N_MIGRATIONS ((int)(sizeof sq_migrations / sizeof sq_migrations[0]))

static int store_sqlfail(sb_error *err, sqlite3 *db, const char *what) {
  return sb_fail(err, SB_EIO, "database: %s: %s", what, sqlite3_errmsg(db));
}

static int store_exec(sqlite3 *db, const char *sql, sb_error *err) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    sb_fail(err, SB_EIO, "database: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return SB_EIO;
  }
  return SB_OK;
}

static int store_conn(sqlite3 **db, const char *path, sb_error *err) {
  if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
      SQLITE_OK) {
    int rc = sb_fail(err, SB_EIO, "cannot open database %s: %s", path, *db ? sqlite3_errmsg(*db) : "out of memory");
    sqlite3_close(*db);
    *db = NULL;
    return rc;
  }
  sqlite3_busy_timeout(*db, 10000);
  return store_exec(*db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", err);
}

static int sq_version_on(sqlite3 *db, int *version, sb_error *err) {
  sqlite3_stmt *st;
  *version = 0;
  if (sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st, NULL) != SQLITE_OK)
    return store_sqlfail(err, db, "read schema_version");
  if (sqlite3_step(st) == SQLITE_ROW) *version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return SB_OK;
}

/* Applies the migrations the database lacks, all in one transaction. */
static int sq_migrate(sq *s, const char *path, sb_error *err) {
  int rc = store_exec(s->w, "BEGIN IMMEDIATE;"
                      "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY, applied_ms INTEGER);", err);
  if (rc) return rc;
  int v = 0;
  rc = sq_version_on(s->w, &v, err);
  if (!rc && v > SQ_N_MIGRATIONS)
    rc = sb_fail(err, SB_EIO, "database %s has schema version %d, newer than this sbidad knows (%d): run the newer "
                 "sbidad", path, v, SQ_N_MIGRATIONS);
  for (int m = v + 1; !rc && m <= SQ_N_MIGRATIONS; m++) {
    char sql[4096];
    if (m == 1) {
      char states[128];
      snprintf(sql, sizeof sql, store_schema, job_state_list(states, sizeof states, ",", "'"));
    } else {
      snprintf(sql, sizeof sql, "%s", sq_migrations[m - 1]);
    }
    rc = store_exec(s->w, sql, err);
    if (!rc) {
      snprintf(sql, sizeof sql, "INSERT INTO schema_version(version, applied_ms) VALUES(%d, %lld)", m,
               (long long)clock_now_ms());
      rc = store_exec(s->w, sql, err);
    }
    if (rc) sb_wrap(err, "schema migration %d", m);
  }
  if (rc) {
    sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
    return rc;
  }
  return store_exec(s->w, "COMMIT", err);
}

static const store_ops sq_ops;
static void sq_close(store *base);

int store_sqlite_open(store **out, const char *path, sb_error *err) {
  *out = NULL;
  sq *s = calloc(1, sizeof *s);
  if (!s) return sb_fail(err, SB_ENOMEM, "out of memory");
  s->base.ops = &sq_ops;
  pthread_mutex_init(&s->wmu, NULL);
  pthread_mutex_init(&s->rmu, NULL);
  int rc = store_lock(s, path, err);
  if (rc) {
    sq_close(&s->base);
    return rc;
  }
  rc = store_conn(&s->w, path, err);
  if (!rc) rc = sq_migrate(s, path, err);
  if (!rc) rc = store_conn(&s->r, path, err);
  if (rc) {
    sq_close(&s->base);
    return rc;
  }
  char *jm = NULL;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->w, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) jm = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  int wal = jm && !strcmp(jm, "wal");
  free(jm);
  if (!wal) {
    sq_close(&s->base);
    return sb_fail(err, SB_EIO, "database %s cannot use WAL journaling (is it on a network filesystem?)", path);
  }
  int have_key = 0;
  if (sqlite3_prepare_v2(s->w, "SELECT value FROM meta WHERE name = 'token_key'", -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == (int)sizeof s->key) {
      memcpy(s->key, sqlite3_column_blob(st, 0), sizeof s->key);
      have_key = 1;
    }
    sqlite3_finalize(st);
  }
  if (!have_key) {
    sq_close(&s->base);
    return sb_fail(err, SB_EIO, "database %s: cannot read its secret key (table meta)", path);
  }
  *out = &s->base;
  return SB_OK;
}

static void sq_close(store *base) {
  sq *s = (sq *)base;
  if (!s) return;
  if (s->r) sqlite3_close(s->r);
  if (s->w) {
    sqlite3_exec(s->w, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_close(s->w);
  }
  pthread_mutex_destroy(&s->wmu);
  pthread_mutex_destroy(&s->rmu);
  if (s->lock_fd >= 0) close(s->lock_fd);
  free(s);
}

static const char *store_col_text(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? (const char *)t : "";
}

static char *store_dup_col(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? strdup((const char *)t) : NULL;
}

#define STORE_RUN_COLS                                                                                  \
  "seq, id, estimator, state, time_index, n_samples, created_ms, started_ms, finished_ms, attempts, " \
  "cancel_requested, samples_dim, request, result, error"

static void store_read_run(sqlite3_stmt *st, store_run *r) {
  memset(r, 0, sizeof *r);
  r->seq = sqlite3_column_int64(st, 0);
  /* NOT NULL columns, but a damaged or hand-edited database may still hold
   * NULLs: they read as "" (never a NULL for %s) */
  snprintf(r->id, sizeof r->id, "%s", store_col_text(st, 1));
  snprintf(r->estimator, sizeof r->estimator, "%s", store_col_text(st, 2));
  snprintf(r->state, sizeof r->state, "%s", store_col_text(st, 3));
  r->time_index = (long)sqlite3_column_int64(st, 4);
  r->n_samples = sqlite3_column_int(st, 5);
  r->created_ms = sqlite3_column_int64(st, 6);
  r->started_ms = sqlite3_column_int64(st, 7);
  r->finished_ms = sqlite3_column_int64(st, 8);
  r->attempts = sqlite3_column_int(st, 9);
  r->cancel_requested = sqlite3_column_int(st, 10);
  r->samples_dim = sqlite3_column_int(st, 11);
  r->request = store_dup_col(st, 12);
  r->result = store_dup_col(st, 13);
  r->error = store_dup_col(st, 14);
  r->progress = job_state_is(r->state, JOB_SUCCEEDED) ? 1.0 : 0.0;
}

static int store_transition(sqlite3 *db, const char *id, int64_t now_ms, const char *state, const char *reason,
                            sb_error *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "INSERT INTO transitions(run_id, at_ms, state, reason) VALUES(?,?,?,?)", -1, &st,
                         NULL) != SQLITE_OK)
    return store_sqlfail(err, db, "prepare transition");
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, now_ms);
  sqlite3_bind_text(st, 3, state, -1, SQLITE_STATIC);
  if (reason) sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st) == SQLITE_DONE ? SB_OK : store_sqlfail(err, db, "insert transition");
  sqlite3_finalize(st);
  return rc;
}

/* Runs fn inside BEGIN IMMEDIATE .. COMMIT on the writer, under its mutex.
 * The commit is fsynced (synchronous=FULL) unless lazy: then it reaches the
 * OS (it survives kill -9) but not necessarily the disk. */
static int store_write_txn_mode(sq *s, int lazy, int (*fn)(sq *s, void *ctx, sb_error *err), void *ctx,
                                sb_error *err) {
  pthread_mutex_lock(&s->wmu);
  if (lazy) sqlite3_exec(s->w, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
  int rc = store_exec(s->w, "BEGIN IMMEDIATE", err);
  if (!rc) {
    rc = fn(s, ctx, err);
    if (rc) sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
    else rc = store_exec(s->w, "COMMIT", err);
    if (rc && !sqlite3_get_autocommit(s->w)) sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
  }
  if (lazy) sqlite3_exec(s->w, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
  /* SQLite's own failures (full, read-only, I/O) make the store not ready;
   * answers about runs (not found, conflict, mismatch) do not */
  if (rc == SB_EIO || rc == SB_ENOMEM) s->write_failing = 1;
  else if (!rc) s->write_failing = 0;
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

static int store_write_txn(sq *s, int (*fn)(sq *s, void *ctx, sb_error *err), void *ctx, sb_error *err) {
  return store_write_txn_mode(s, 0, fn, ctx, err);
}

static int store_get_on(sqlite3 *db, const char *id, store_run *out, sb_error *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT " STORE_RUN_COLS " FROM runs WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
    return store_sqlfail(err, db, "prepare get");
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  int step = sqlite3_step(st), rc;
  if (step == SQLITE_ROW) {
    store_read_run(st, out);
    rc = SB_OK;
  } else if (step == SQLITE_DONE) {
    rc = sb_fail(err, STORE_ENOTFOUND, "no assimilation with id %.40s", id);
  } else {
    rc = store_sqlfail(err, db, "get run");
  }
  sqlite3_finalize(st);
  return rc;
}

typedef struct {
  const store_new_run *n;
  store_run *out;
  int *replayed;
} store_insert_ctx;

static int store_insert_fn(sq *s, void *vctx, sb_error *err) {
  store_insert_ctx *c = vctx;
  sqlite3 *db = s->w;
  sqlite3_stmt *st;
  *c->replayed = 0;
  if (c->n->idem_key) {
    if (sqlite3_prepare_v2(db, "SELECT id, body_hash FROM runs WHERE idem_key = ?", -1, &st, NULL) != SQLITE_OK)
      return store_sqlfail(err, db, "prepare idempotency lookup");
    sqlite3_bind_text(st, 1, c->n->idem_key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
      char id[40];
      snprintf(id, sizeof id, "%s", store_col_text(st, 0));
      const char *h = (const char *)sqlite3_column_text(st, 1);
      int same = h && c->n->body_hash && !strcmp(h, c->n->body_hash);
      sqlite3_finalize(st);
      /* the other run's id stays private: the key may be guessed, the id is a capability */
      if (!same)
        return sb_fail(err, STORE_EMISMATCH, "Idempotency-Key was already used with a different body; send the "
                       "same body or use a new key");
      *c->replayed = 1;
      return store_get_on(db, id, c->out, err);
    }
    sqlite3_finalize(st);
  }
  char id[40];
  int rc = store_new_id(id, err);
  if (rc) return rc;
  int64_t now = clock_now_ms();
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO runs(id, estimator, state, time_index, n_samples, request, created_ms, "
                         "idem_key, body_hash) VALUES(?,?," JOB_SQL(QUEUED) ",?,?,?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK)
    return store_sqlfail(err, db, "prepare insert");
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, c->n->estimator, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, c->n->time_index);
  sqlite3_bind_int(st, 4, c->n->n_samples);
  sqlite3_bind_text(st, 5, c->n->request, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, now);
  if (c->n->idem_key) sqlite3_bind_text(st, 7, c->n->idem_key, -1, SQLITE_STATIC);
  if (c->n->body_hash) sqlite3_bind_text(st, 8, c->n->body_hash, -1, SQLITE_STATIC);
  rc = sqlite3_step(st) == SQLITE_DONE ? SB_OK : store_sqlfail(err, db, "insert run");
  sqlite3_finalize(st);
  if (!rc) rc = store_transition(db, id, now, job_state_name(JOB_QUEUED), NULL, err);
  if (!rc) rc = store_get_on(db, id, c->out, err);
  return rc;
}

static int sq_insert(store *base, const store_new_run *n, store_run *out, int *replayed, sb_error *err) {
  sq *s = (sq *)base;
  memset(out, 0, sizeof *out);
  store_insert_ctx c = {n, out, replayed};
  int rc = store_write_txn(s, store_insert_fn, &c, err);
  if (rc) store_run_free(out);
  return rc;
}

static int sq_get(store *base, const char *id, store_run *out, sb_error *err) {
  sq *s = (sq *)base;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&s->rmu);
  int rc = store_get_on(s->r, id, out, err);
  pthread_mutex_unlock(&s->rmu);
  return rc;
}

/* Runs one UPDATE with text/int64 arguments on the writer in a transaction,
 * records a transition when it changed a row. */
typedef struct {
  const char *sql;
  const char *id;
  int64_t now;
  const char *state, *reason;
  int changed;
  int attempt; /* :attempt (0: any) */
  /* finish extras */
  const char *result, *error;
  const float *samples;
  int n_samples, dim;
} store_upd_ctx;

static int store_upd_fn(sq *s, void *vctx, sb_error *err) {
  store_upd_ctx *c = vctx;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->w, c->sql, -1, &st, NULL) != SQLITE_OK) return store_sqlfail(err, s->w, "prepare update");
  int np = sqlite3_bind_parameter_count(st);
  for (int i = 1; i <= np; i++) {
    const char *name = sqlite3_bind_parameter_name(st, i);
    if (!name) continue;
    if (!strcmp(name, ":id")) sqlite3_bind_text(st, i, c->id, -1, SQLITE_STATIC);
    else if (!strcmp(name, ":now")) sqlite3_bind_int64(st, i, c->now);
    else if (!strcmp(name, ":state")) sqlite3_bind_text(st, i, c->state, -1, SQLITE_STATIC);
    else if (!strcmp(name, ":attempt")) sqlite3_bind_int(st, i, c->attempt);
    else if (!strcmp(name, ":result") && c->result) sqlite3_bind_text(st, i, c->result, -1, SQLITE_STATIC);
    else if (!strcmp(name, ":error") && c->error) sqlite3_bind_text(st, i, c->error, -1, SQLITE_STATIC);
    else if (!strcmp(name, ":dim")) sqlite3_bind_int(st, i, c->samples ? c->dim : 0);
    else if (!strcmp(name, ":samples") && c->samples)
      sqlite3_bind_blob64(st, i, c->samples, (sqlite3_uint64)c->n_samples * (sqlite3_uint64)c->dim * sizeof(float),
                          SQLITE_STATIC);
  }
  int rc = sqlite3_step(st) == SQLITE_DONE ? SB_OK : store_sqlfail(err, s->w, "update run");
  sqlite3_finalize(st);
  if (rc) return rc;
  c->changed = sqlite3_changes(s->w);
  if (c->changed && c->state) rc = store_transition(s->w, c->id, c->now, c->state, c->reason, err);
  return rc;
}

static int sq_mark_running(store *base, const char *id, int64_t now_ms, int *taken, sb_error *err) {
  sq *s = (sq *)base;
  store_upd_ctx c = {.sql = "UPDATE runs SET state = " JOB_SQL(RUNNING) ", started_ms = :now, attempts = attempts + 1 "
                            "WHERE id = :id AND state = " JOB_SQL(QUEUED),
                     .id = id, .now = now_ms, .state = job_state_name(JOB_RUNNING)};
  /* Lazy: if this mark is lost to a power cut, the run is still 'queued' and
   * simply runs again, which is what recovery does with 'running' anyway. */
  int rc = store_write_txn_mode(s, 1, store_upd_fn, &c, err);
  *taken = !rc && c.changed;
  return rc;
}

/* Only the attempt that owns the run writes its outcome: a worker whose
 * lease expired (its run swept and claimed again) changes nothing. */
static int sq_finish(store *base, const char *id, int attempt, const char *state, int64_t now_ms,
                     const char *result, const float *samples, int n_samples, int dim, const char *error,
                     sb_error *err) {
  sq *s = (sq *)base;
  store_upd_ctx c = {.sql = "UPDATE runs SET state = :state, finished_ms = :now, result = :result, error = :error, "
                            "samples = :samples, samples_dim = :dim, owner = NULL, lease_until = NULL "
                            "WHERE id = :id AND state = " JOB_SQL(RUNNING) " AND (:attempt = 0 OR attempts = :attempt)",
                     .id = id, .now = now_ms, .state = state, .result = result, .error = error,
                     .samples = samples, .n_samples = n_samples, .dim = dim, .attempt = attempt};
  int rc = store_write_txn(s, store_upd_fn, &c, err);
  if (!rc && !c.changed)
    rc = attempt ? sb_fail(err, STORE_ECONFLICT, "run %s was not running as attempt %d", id, attempt)
                 : sb_fail(err, STORE_ECONFLICT, "run %s was not running", id);
  return rc;
}

static int sq_requeue(store *base, const char *id, int attempt, const char *reason, sb_error *err) {
  sq *s = (sq *)base;
  store_upd_ctx c = {.sql = "UPDATE runs SET state = " JOB_SQL(QUEUED) ", started_ms = NULL, owner = NULL, lease_until = NULL "
                            "WHERE id = :id AND state = " JOB_SQL(RUNNING) " AND (:attempt = 0 OR attempts = :attempt)",
                     .id = id, .state = job_state_name(JOB_QUEUED), .reason = reason, .attempt = attempt};
  c.now = clock_now_ms();
  return store_write_txn(s, store_upd_fn, &c, err);
}

typedef struct {
  const char *owner;
  int64_t now, lease;
  char id[40];
  int attempt, claimed;
} sq_claim_ctx;

/* The single daemon's claim: one write transaction (BEGIN IMMEDIATE holds
 * SQLite's write lock, so two workers never take the same run). */
static int sq_claim_fn(sq *s, void *vctx, sb_error *err) {
  sq_claim_ctx *c = vctx;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->w,
                         "UPDATE runs SET state = " JOB_SQL(RUNNING) ", started_ms = MAX(?1, created_ms), attempts = attempts + 1, owner = ?2, "
                         "lease_until = ?1 + ?3 WHERE id = (SELECT id FROM runs WHERE state = " JOB_SQL(QUEUED) " ORDER BY seq "
                         "LIMIT 1) RETURNING id, attempts",
                         -1, &st, NULL) != SQLITE_OK)
    return store_sqlfail(err, s->w, "prepare claim");
  sqlite3_bind_int64(st, 1, c->now);
  sqlite3_bind_text(st, 2, c->owner, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, c->lease);
  int step = sqlite3_step(st), rc = SB_OK;
  if (step == SQLITE_ROW) {
    snprintf(c->id, sizeof c->id, "%s", store_col_text(st, 0));
    c->attempt = sqlite3_column_int(st, 1);
    c->claimed = 1;
    step = sqlite3_step(st);
  }
  if (step != SQLITE_DONE) rc = store_sqlfail(err, s->w, "claim");
  sqlite3_finalize(st);
  if (!rc && c->claimed) rc = store_transition(s->w, c->id, c->now, job_state_name(JOB_RUNNING), NULL, err);
  return rc;
}

static int sq_claim(store *base, const char *owner, int64_t now_ms, int64_t lease_ms, char id[40], int *attempt,
                    int *claimed, sb_error *err) {
  sq *s = (sq *)base;
  sq_claim_ctx c = {.owner = owner, .now = now_ms, .lease = lease_ms};
  /* lazy, like mark_running: a claim lost to a power cut leaves the run queued */
  int rc = store_write_txn_mode(s, 1, sq_claim_fn, &c, err);
  *claimed = !rc && c.claimed;
  *attempt = c.attempt;
  memcpy(id, c.id, 40);
  return rc;
}

typedef struct {
  int n;
  const char (*ids)[40];
  const int *attempts;
  int64_t until;
  int *state;
} sq_renew_ctx;

static int sq_renew_fn(sq *s, void *vctx, sb_error *err) {
  sq_renew_ctx *c = vctx;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->w,
                         "UPDATE runs SET lease_until = ?1 WHERE id = ?2 AND attempts = ?3 AND state = " JOB_SQL(RUNNING) " "
                         "RETURNING cancel_requested",
                         -1, &st, NULL) != SQLITE_OK)
    return store_sqlfail(err, s->w, "prepare renew");
  int rc = SB_OK;
  for (int i = 0; i < c->n && !rc; i++) {
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, c->until);
    sqlite3_bind_text(st, 2, c->ids[i], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, c->attempts[i]);
    int step = sqlite3_step(st);
    c->state[i] = -1;
    if (step == SQLITE_ROW) {
      c->state[i] = sqlite3_column_int(st, 0) ? 1 : 0;
      step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE) rc = store_sqlfail(err, s->w, "renew");
  }
  sqlite3_finalize(st);
  return rc;
}

static int sq_renew(store *base, int n, const char (*ids)[40], const int *attempts, int64_t now_ms, int64_t lease_ms,
                    int *state, sb_error *err) {
  if (n <= 0) return SB_OK;
  sq_renew_ctx c = {n, ids, attempts, now_ms + lease_ms, state};
  return store_write_txn_mode((sq *)base, 1, sq_renew_fn, &c, err);
}

typedef struct {
  const char *id;
  int64_t now;
  int was_running;
} store_cancel_ctx;

static int store_cancel_fn(sq *s, void *vctx, sb_error *err) {
  store_cancel_ctx *c = vctx;
  store_run r;
  int rc = store_get_on(s->w, c->id, &r, err);
  if (rc) return rc;
  char state[16];
  memcpy(state, r.state, sizeof state);
  store_run_free(&r);
  store_upd_ctx u = {.id = c->id, .now = c->now};
  if (job_state_is(state, JOB_QUEUED)) {
    u.sql = "UPDATE runs SET state = " JOB_SQL(CANCELLED) ", finished_ms = :now WHERE id = :id AND state = " JOB_SQL(QUEUED);
    u.state = job_state_name(JOB_CANCELLED);
    u.reason = "cancelled by the client while queued";
    c->was_running = 0;
  } else if (job_state_is(state, JOB_RUNNING)) {
    u.sql = "UPDATE runs SET cancel_requested = 1 WHERE id = :id AND state = " JOB_SQL(RUNNING);
    c->was_running = 1;
  } else {
    return sb_fail(err, STORE_ECONFLICT, "assimilation %s already finished (%s); only queued or running ones can "
                   "be cancelled", c->id, state);
  }
  return store_upd_fn(s, &u, err);
}

static int sq_cancel(store *base, const char *id, int64_t now_ms, int *was_running, sb_error *err) {
  sq *s = (sq *)base;
  store_cancel_ctx c = {id, now_ms, 0};
  int rc = store_write_txn(s, store_cancel_fn, &c, err);
  *was_running = c.was_running;
  return rc;
}

static int store_delete_fn(sq *s, void *vctx, sb_error *err) {
  const char *id = vctx;
  store_run r;
  int rc = store_get_on(s->w, id, &r, err);
  if (rc) return rc;
  int active = !job_state_finished(r.state);
  if (active) {
    rc = sb_fail(err, STORE_ECONFLICT, "assimilation %s is %s; cancel it and wait until it is cancelled before "
                 "deleting it", id, r.state);
    store_run_free(&r);
    return rc;
  }
  store_run_free(&r);
  store_upd_ctx u = {.sql = "DELETE FROM runs WHERE id = :id", .id = id};
  rc = store_upd_fn(s, &u, err);
  if (!rc) {
    store_upd_ctx t = {.sql = "DELETE FROM transitions WHERE run_id = :id", .id = id};
    rc = store_upd_fn(s, &t, err);
  }
  return rc;
}

static int sq_delete(store *base, const char *id, sb_error *err) {
  sq *s = (sq *)base;
  return store_write_txn(s, store_delete_fn, (void *)id, err);
}

static int sq_samples(store *base, const char *id, float **data, int *n_samples, int *dim, sb_error *err) {
  sq *s = (sq *)base;
  *data = NULL;
  *n_samples = *dim = 0;
  pthread_mutex_lock(&s->rmu);
  sqlite3_stmt *st;
  int rc;
  if (sqlite3_prepare_v2(s->r, "SELECT samples, samples_dim FROM runs WHERE id = ?", -1, &st, NULL) !=
      SQLITE_OK) {
    rc = store_sqlfail(err, s->r, "prepare samples");
    pthread_mutex_unlock(&s->rmu);
    return rc;
  }
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    const void *b = sqlite3_column_blob(st, 0);
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    int d = sqlite3_column_int(st, 1);
    size_t row = (size_t)(d > 0 ? d : 1) * sizeof(float);
    int n = (int)(len / row);
    if (!b || d <= 0 || len % row) {
      rc = sb_fail(err, STORE_ECONFLICT, "assimilation %s has no samples (it has not succeeded)", id);
    } else if (!(*data = malloc(len))) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory for %zu bytes of samples", len);
    } else {
      memcpy(*data, b, len);
      *n_samples = n;
      *dim = d;
      rc = SB_OK;
    }
  } else if (step == SQLITE_DONE) {
    rc = sb_fail(err, STORE_ENOTFOUND, "no assimilation with id %.40s", id);
  } else {
    rc = store_sqlfail(err, s->r, "read samples");
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->rmu);
  return rc;
}

static int sq_list(store *base, const char *state, const char *estimator, long long before_seq, int limit,
               store_run **out, int *count, sb_error *err) {
  sq *s = (sq *)base;
  *out = NULL;
  *count = 0;
  store_run *runs = calloc((size_t)(limit > 0 ? limit : 1), sizeof *runs);
  if (!runs) return sb_fail(err, SB_ENOMEM, "out of memory");
  pthread_mutex_lock(&s->rmu);
  sqlite3_stmt *st;
  int rc = SB_OK;
  if (sqlite3_prepare_v2(s->r,
                         "SELECT " STORE_RUN_COLS " FROM runs WHERE (?1 IS NULL OR state = ?1) AND "
                         "(?2 IS NULL OR estimator = ?2) AND (?3 = 0 OR seq < ?3) ORDER BY seq DESC LIMIT ?4",
                         -1, &st, NULL) != SQLITE_OK) {
    rc = store_sqlfail(err, s->r, "prepare list");
  } else {
    if (state) sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
    if (estimator) sqlite3_bind_text(st, 2, estimator, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, before_seq);
    sqlite3_bind_int(st, 4, limit);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW && *count < limit) store_read_run(st, &runs[(*count)++]);
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = store_sqlfail(err, s->r, "list runs");
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&s->rmu);
  if (rc) {
    for (int i = 0; i < *count; i++) store_run_free(&runs[i]);
    free(runs);
    *count = 0;
    return rc;
  }
  *out = runs;
  return SB_OK;
}

typedef struct {
  int max_attempts;
  int64_t now;
  int expired_only; /* 1: only runs whose lease expired (store_sweep) */
  int requeued, failed;
} store_recover_ctx;

/* Running runs (all at a restart of the single daemon, or those whose lease
 * expired) go back to queued, or to failed after max_attempts claims. */
static int store_recover_fn(sq *s, void *vctx, sb_error *err) {
  store_recover_ctx *c = vctx;
  const char *reason = c->expired_only ? "lease expired (the daemon running it stopped renewing it); re-queued"
                                       : "interrupted by a daemon restart; re-queued";
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->w,
                         "SELECT id, attempts FROM runs WHERE state = " JOB_SQL(RUNNING) " AND (?1 = 0 OR lease_until < ?2)",
                         -1, &st, NULL) != SQLITE_OK)
    return store_sqlfail(err, s->w, "prepare recovery");
  sqlite3_bind_int(st, 1, c->expired_only);
  sqlite3_bind_int64(st, 2, c->now);
  int rc = SB_OK;
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    char id[40];
    snprintf(id, sizeof id, "%s", store_col_text(st, 0));
    int attempts = sqlite3_column_int(st, 1);
    store_upd_ctx w = {.id = id, .now = c->now};
    char perr[600];
    if (attempts < c->max_attempts) {
      w.sql = "UPDATE runs SET state = " JOB_SQL(QUEUED) ", started_ms = NULL, owner = NULL, lease_until = NULL WHERE id = :id";
      w.state = job_state_name(JOB_QUEUED);
      w.reason = reason;
      c->requeued++;
    } else {
      store_interrupted_problem(perr, sizeof perr, attempts);
      w.sql = "UPDATE runs SET state = " JOB_SQL(FAILED) ", finished_ms = :now, error = :error, owner = NULL, lease_until = NULL "
              "WHERE id = :id";
      w.state = job_state_name(JOB_FAILED);
      w.error = perr;
      w.reason = "interrupted too often";
      c->failed++;
    }
    rc = store_upd_fn(s, &w, err);
  }
  sqlite3_finalize(st);
  return rc;
}

static int sq_sweep(store *base, int max_attempts, int64_t now_ms, int *requeued, int *failed, sb_error *err) {
  store_recover_ctx c = {max_attempts, now_ms, 1, 0, 0};
  /* lazy: runs every heartbeat, mostly finding nothing; a sweep lost to a
   * power cut leaves the runs running with an expired lease, swept again */
  int rc = store_write_txn_mode((sq *)base, 1, store_recover_fn, &c, err);
  *requeued = c.requeued;
  *failed = c.failed;
  return rc;
}

static int sq_recover(store *base, int max_attempts, int64_t now_ms, void (*fn)(void *ctx, const char *id), void *ctx,
                  int *requeued, int *failed, sb_error *err) {
  sq *s = (sq *)base;
  store_recover_ctx c = {max_attempts, now_ms, 0, 0, 0};
  int rc = store_write_txn(s, store_recover_fn, &c, err);
  *requeued = c.requeued;
  *failed = c.failed;
  if (rc) return rc;
  pthread_mutex_lock(&s->rmu);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->r, "SELECT id FROM runs WHERE state = " JOB_SQL(QUEUED) " ORDER BY seq", -1, &st, NULL) !=
      SQLITE_OK) {
    rc = store_sqlfail(err, s->r, "prepare queued scan");
  } else {
    while (sqlite3_step(st) == SQLITE_ROW)
      if (sqlite3_column_text(st, 0) && fn) fn(ctx, (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&s->rmu);
  return rc;
}

static int sq_count_queued(store *base, long long *n, sb_error *err) {
  sq *s = (sq *)base;
  *n = 0;
  pthread_mutex_lock(&s->rmu);
  sqlite3_stmt *st;
  int rc = SB_OK;
  if (sqlite3_prepare_v2(s->r, "SELECT count(*) FROM runs WHERE state = " JOB_SQL(QUEUED), -1, &st, NULL) != SQLITE_OK) {
    rc = store_sqlfail(err, s->r, "prepare count");
  } else {
    if (sqlite3_step(st) == SQLITE_ROW) *n = sqlite3_column_int64(st, 0);
    else rc = store_sqlfail(err, s->r, "count queued");
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&s->rmu);
  return rc;
}

static int sq_schema_version(store *base, int *version, sb_error *err) {
  sq *s = (sq *)base;
  pthread_mutex_lock(&s->rmu);
  int rc = sq_version_on(s->r, version, err);
  pthread_mutex_unlock(&s->rmu);
  return rc;
}

/* One daemon per file (flock): nothing else writes, nothing to listen to. */
static int sq_watch(store *base, const store_watch_fns *fns, sb_error *err) {
  (void)base, (void)fns, (void)err;
  return SB_OK;
}
static void sq_unwatch(store *base) { (void)base; }

static int sq_count_states(store *base, long long counts[JOB_N_STATES], sb_error *err) {
  sq *s = (sq *)base;
  memset(counts, 0, JOB_N_STATES * sizeof counts[0]);
  pthread_mutex_lock(&s->rmu);
  sqlite3_stmt *st;
  int rc = SB_OK;
  if (sqlite3_prepare_v2(s->r, "SELECT state, count(*) FROM runs GROUP BY state", -1, &st, NULL) != SQLITE_OK) {
    rc = store_sqlfail(err, s->r, "prepare count");
  } else {
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *state = store_col_text(st, 0);
      int i = job_state_parse(state);
      if (i >= 0) counts[i] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&s->rmu);
  return rc;
}

typedef struct {
  int64_t cutoff;
  long long max_runs, deleted;
} store_cleanup_ctx;

static int store_cleanup_fn(sq *s, void *vctx, sb_error *err) {
  store_cleanup_ctx *c = vctx;
  const char *fin = "state IN " JOB_SQL_FINISHED;
  char sql[512];
  c->deleted = 0;
  if (c->cutoff > 0) {
    snprintf(sql, sizeof sql,
             "DELETE FROM transitions WHERE run_id IN (SELECT id FROM runs WHERE %s AND finished_ms < %lld);"
             "DELETE FROM runs WHERE %s AND finished_ms < %lld;",
             fin, (long long)c->cutoff, fin, (long long)c->cutoff);
    int rc = store_exec(s->w, sql, err);
    if (rc) return rc;
    c->deleted += sqlite3_changes(s->w);
  }
  if (c->max_runs > 0) {
    snprintf(sql, sizeof sql,
             "CREATE TEMP TABLE IF NOT EXISTS doomed(id TEXT); DELETE FROM doomed;"
             "INSERT INTO doomed SELECT id FROM runs WHERE %s ORDER BY seq DESC LIMIT -1 OFFSET %lld;"
             "DELETE FROM transitions WHERE run_id IN (SELECT id FROM doomed);"
             "DELETE FROM runs WHERE id IN (SELECT id FROM doomed);",
             fin, c->max_runs);
    int rc = store_exec(s->w, sql, err);
    if (rc) return rc;
    c->deleted += sqlite3_changes(s->w);
  }
  return SB_OK;
}

static int sq_cleanup(store *base, int64_t now_ms, int64_t max_age_ms, long long max_runs, long long *deleted,
                  sb_error *err) {
  sq *s = (sq *)base;
  store_cleanup_ctx c = {max_age_ms > 0 ? now_ms - max_age_ms : 0, max_runs, 0};
  *deleted = 0;
  if (c.cutoff <= 0 && max_runs <= 0) return SB_OK;
  int rc = store_write_txn(s, store_cleanup_fn, &c, err);
  if (!rc) *deleted = c.deleted;
  return rc;
}

/* What a POST needs: a write that takes new pages (a 64 KiB row, rolled
 * back: a full database or one at --max-db-bytes refuses it, a read-only one
 * too), then a small committed write (a heartbeat row: on a full disk the
 * WAL cannot grow and the commit fails). */
static int store_probe_fn(sq *s, void *ctx, sb_error *err) {
  (void)ctx;
  sqlite3_stmt *st;
  int rc = store_exec(s->w, "SAVEPOINT probe", err);
  if (rc) return rc;
  if (sqlite3_prepare_v2(s->w, "INSERT INTO health(k, at_ms, pad) VALUES(2, 0, zeroblob(65536))", -1, &st, NULL) !=
      SQLITE_OK) {
    rc = store_sqlfail(err, s->w, "prepare probe");
  } else {
    rc = sqlite3_step(st) == SQLITE_DONE ? SB_OK : store_sqlfail(err, s->w, "probe write");
    sqlite3_finalize(st);
  }
  sqlite3_exec(s->w, "ROLLBACK TO probe; RELEASE probe", NULL, NULL, NULL);
  if (rc) return rc;
  if (sqlite3_prepare_v2(s->w, "INSERT OR REPLACE INTO health(k, at_ms) VALUES(1, ?)", -1, &st, NULL) != SQLITE_OK)
    return store_sqlfail(err, s->w, "prepare heartbeat");
  sqlite3_bind_int64(st, 1, clock_now_ms());
  rc = sqlite3_step(st) == SQLITE_DONE ? SB_OK : store_sqlfail(err, s->w, "heartbeat write");
  sqlite3_finalize(st);
  return rc;
}

static int sq_check_writable(store *base, sb_error *err) { sq *s = (sq *)base; return store_write_txn_mode(s, 1, store_probe_fn, NULL, err); }

static int sq_write_failing(store *base) {
  sq *s = (sq *)base;
  pthread_mutex_lock(&s->wmu);
  int f = s->write_failing;
  pthread_mutex_unlock(&s->wmu);
  return f;
}

static const unsigned char *sq_secret(const store *base) { return ((const sq *)base)->key; }

static int sq_set_max_bytes(store *base, long long bytes, sb_error *err) {
  sq *s = (sq *)base;
  if (bytes <= 0) return SB_OK;
  pthread_mutex_lock(&s->wmu);
  sqlite3_stmt *st;
  long long page = 4096;
  if (sqlite3_prepare_v2(s->w, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) page = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  char sql[96];
  snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", bytes / (page > 0 ? page : 4096));
  int rc = store_exec(s->w, sql, err);
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

/* The run that used key: 1 and *out when the body hash matches, 0 when the
 * key is unused, STORE_EMISMATCH when it was used with another body. */
static int sq_find_idem(store *base, const char *key, const char *hash, store_run *out, sb_error *err) {
  sq *s = (sq *)base;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&s->rmu);
  sqlite3_stmt *st;
  int rc;
  if (sqlite3_prepare_v2(s->r, "SELECT id, body_hash FROM runs WHERE idem_key = ?", -1, &st, NULL) != SQLITE_OK) {
    rc = store_sqlfail(err, s->r, "prepare idempotency lookup");
    pthread_mutex_unlock(&s->rmu);
    return rc;
  }
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int step = sqlite3_step(st);
  char id[40] = "";
  if (step == SQLITE_ROW) {
    const char *h = (const char *)sqlite3_column_text(st, 1);
    snprintf(id, sizeof id, "%s", store_col_text(st, 0));
    rc = h && hash && !strcmp(h, hash) ? 1
         : sb_fail(err, STORE_EMISMATCH, "Idempotency-Key was already used with a different body; send the same "
                   "body or use a new key");
  } else {
    rc = step == SQLITE_DONE ? 0 : store_sqlfail(err, s->r, "idempotency lookup");
  }
  sqlite3_finalize(st);
  if (rc == 1) {
    int g = store_get_on(s->r, id, out, err);
    if (g) rc = g;
  }
  pthread_mutex_unlock(&s->rmu);
  return rc;
}

/* ---- streams (store.h): tables streams and cycles (migration 3) */

typedef struct {
  const char *config;
  int64_t now;
  char *id;
} sq_stream_new_ctx;

static int sq_stream_create_fn(sq *s, void *vctx, sb_error *err) {
  sq_stream_new_ctx *c = vctx;
  int rc = store_new_id(c->id, err);
  if (rc) return rc;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->w, "INSERT INTO streams(id, created_ms, config) VALUES(?,?,?)", -1, &st, NULL) !=
      SQLITE_OK)
    return store_sqlfail(err, s->w, "prepare stream insert");
  sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, c->now);
  sqlite3_bind_text(st, 3, c->config, -1, SQLITE_STATIC);
  rc = sqlite3_step(st) == SQLITE_DONE ? SB_OK : store_sqlfail(err, s->w, "insert stream");
  sqlite3_finalize(st);
  return rc;
}

static int sq_stream_create(store *base, const char *config, int64_t now_ms, char id[40], sb_error *err) {
  sq_stream_new_ctx c = {config, now_ms, id};
  return store_write_txn((sq *)base, sq_stream_create_fn, &c, err);
}

static void sq_read_stream(sqlite3_stmt *st, store_stream *o) {
  memset(o, 0, sizeof *o);
  o->seq = sqlite3_column_int64(st, 0);
  snprintf(o->id, sizeof o->id, "%s", store_col_text(st, 1));
  o->created_ms = sqlite3_column_int64(st, 2);
  o->config = store_dup_col(st, 3);
}

/* Reads up to limit streams (newest first) matching id (NULL: any) and seq < before (0: any). */
static int sq_stream_query(sq *s, const char *id, long long before, int limit, store_stream **out, int *count,
                           sb_error *err) {
  *out = NULL;
  *count = 0;
  store_stream *v = calloc((size_t)(limit > 0 ? limit : 1), sizeof *v);
  if (!v) return sb_fail(err, SB_ENOMEM, "out of memory");
  pthread_mutex_lock(&s->rmu);
  sqlite3_stmt *st;
  int rc = SB_OK;
  if (sqlite3_prepare_v2(s->r,
                         "SELECT seq, id, created_ms, config FROM streams WHERE (?1 IS NULL OR id = ?1) AND "
                         "(?2 = 0 OR seq < ?2) ORDER BY seq DESC LIMIT ?3",
                         -1, &st, NULL) != SQLITE_OK) {
    rc = store_sqlfail(err, s->r, "prepare stream query");
  } else {
    if (id) sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, before);
    sqlite3_bind_int(st, 3, limit);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW && *count < limit) sq_read_stream(st, &v[(*count)++]);
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = store_sqlfail(err, s->r, "read streams");
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&s->rmu);
  if (rc) {
    for (int i = 0; i < *count; i++) store_stream_free(&v[i]);
    free(v);
    *count = 0;
    return rc;
  }
  *out = v;
  return SB_OK;
}

static int sq_stream_get(store *base, const char *id, store_stream *out, sb_error *err) {
  memset(out, 0, sizeof *out);
  store_stream *v;
  int n;
  int rc = sq_stream_query((sq *)base, id, 0, 1, &v, &n, err);
  if (rc) return rc;
  if (n == 0) rc = sb_fail(err, STORE_ENOTFOUND, "no stream with id %.40s", id);
  else *out = v[0];
  free(v);
  return rc;
}

static int sq_stream_list(store *base, long long before_seq, int limit, store_stream **out, int *count,
                          sb_error *err) {
  return sq_stream_query((sq *)base, NULL, before_seq, limit, out, count, err);
}

static int sq_stream_delete_fn(sq *s, void *vctx, sb_error *err) {
  const char *id = vctx;
  store_upd_ctx u = {.sql = "DELETE FROM streams WHERE id = :id", .id = id};
  int rc = store_upd_fn(s, &u, err);
  if (!rc && !u.changed) return sb_fail(err, STORE_ENOTFOUND, "no stream with id %.40s", id);
  store_upd_ctx c = {.sql = "DELETE FROM cycles WHERE stream_id = :id", .id = id};
  if (!rc) rc = store_upd_fn(s, &c, err);
  return rc;
}

static int sq_stream_delete(store *base, const char *id, sb_error *err) {
  return store_write_txn((sq *)base, sq_stream_delete_fn, (void *)id, err);
}

static int sq_cycle_list(store *base, const char *stream, long max_time, int succeeded_only, int limit,
                         store_cycle **out, int *count, sb_error *err) {
  sq *s = (sq *)base;
  *out = NULL;
  *count = 0;
  store_cycle *v = calloc((size_t)(limit > 0 ? limit : 1), sizeof *v);
  if (!v) return sb_fail(err, SB_ENOMEM, "out of memory");
  pthread_mutex_lock(&s->rmu);
  sqlite3_stmt *st;
  int rc = SB_OK;
  if (sqlite3_prepare_v2(s->r,
                         "SELECT c.time_index, c.run_id, r.state, c.observations, r.result FROM cycles c LEFT JOIN "
                         "runs r ON r.id = c.run_id WHERE c.stream_id = ?1 AND c.time_index <= ?2 AND (?3 = 0 OR "
                         "r.state = " JOB_SQL(SUCCEEDED) ") ORDER BY c.time_index DESC LIMIT ?4",
                         -1, &st, NULL) != SQLITE_OK) {
    rc = store_sqlfail(err, s->r, "prepare cycle list");
  } else {
    sqlite3_bind_text(st, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, max_time);
    sqlite3_bind_int(st, 3, succeeded_only);
    sqlite3_bind_int(st, 4, limit);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW && *count < limit) {
      store_cycle *c = &v[(*count)++];
      c->time_index = (long)sqlite3_column_int64(st, 0);
      snprintf(c->run_id, sizeof c->run_id, "%s", store_col_text(st, 1));
      snprintf(c->state, sizeof c->state, "%s", store_col_text(st, 2));
      c->observations = store_dup_col(st, 3);
      c->result = store_dup_col(st, 4);
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = store_sqlfail(err, s->r, "list cycles");
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&s->rmu);
  if (rc) {
    for (int i = 0; i < *count; i++) store_cycle_free(&v[i]);
    free(v);
    *count = 0;
    return rc;
  }
  *out = v;
  return SB_OK;
}

typedef struct {
  const char *stream, *observations;
  long time_index, last_time;
  const store_new_run *n;
  store_run *out;
} sq_cycle_ctx;

static int sq_cycle_insert_fn(sq *s, void *vctx, sb_error *err) {
  sq_cycle_ctx *c = vctx;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->w,
                         "SELECT (SELECT count(*) FROM streams WHERE id = ?1), (SELECT coalesce(max(time_index), -1) "
                         "FROM cycles WHERE stream_id = ?1)",
                         -1, &st, NULL) != SQLITE_OK)
    return store_sqlfail(err, s->w, "prepare cycle check");
  sqlite3_bind_text(st, 1, c->stream, -1, SQLITE_STATIC);
  int rc = SB_OK;
  if (sqlite3_step(st) != SQLITE_ROW) rc = store_sqlfail(err, s->w, "cycle check");
  else if (sqlite3_column_int(st, 0) == 0) rc = sb_fail(err, STORE_ENOTFOUND, "no stream with id %.40s", c->stream);
  else if ((long)sqlite3_column_int64(st, 1) != c->last_time)
    rc = sb_fail(err, STORE_ECONFLICT, "another cycle of stream %.40s was submitted at the same time; retry",
                 c->stream);
  sqlite3_finalize(st);
  if (rc) return rc;
  int replayed = 0;
  store_insert_ctx ic = {c->n, c->out, &replayed};
  if ((rc = store_insert_fn(s, &ic, err))) return rc;
  if (sqlite3_prepare_v2(s->w, "INSERT INTO cycles(stream_id, time_index, run_id, observations) VALUES(?,?,?,?)", -1,
                         &st, NULL) != SQLITE_OK)
    return store_sqlfail(err, s->w, "prepare cycle insert");
  sqlite3_bind_text(st, 1, c->stream, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, c->time_index);
  sqlite3_bind_text(st, 3, c->out->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, c->observations, -1, SQLITE_STATIC);
  rc = sqlite3_step(st) == SQLITE_DONE ? SB_OK : store_sqlfail(err, s->w, "insert cycle");
  sqlite3_finalize(st);
  return rc;
}

static int sq_cycle_insert(store *base, const char *stream, long time_index, const char *observations,
                           long last_time, const store_new_run *n, store_run *out, sb_error *err) {
  memset(out, 0, sizeof *out);
  sq_cycle_ctx c = {stream, observations, time_index, last_time, n, out};
  int rc = store_write_txn((sq *)base, sq_cycle_insert_fn, &c, err);
  if (rc) store_run_free(out);
  return rc;
}

static const store_ops sq_ops = {
    .name = "sqlite", .shared = 0, .close = sq_close, .insert = sq_insert, .get = sq_get,
    .mark_running = sq_mark_running, .finish = sq_finish, .requeue = sq_requeue, .cancel = sq_cancel,
    .del = sq_delete, .samples = sq_samples, .list = sq_list, .recover = sq_recover,
    .count_states = sq_count_states, .cleanup = sq_cleanup, .check_writable = sq_check_writable,
    .write_failing = sq_write_failing, .secret = sq_secret, .set_max_bytes = sq_set_max_bytes,
    .find_idem = sq_find_idem, .claim = sq_claim, .renew = sq_renew, .sweep = sq_sweep, .watch = sq_watch,
    .unwatch = sq_unwatch, .count_queued = sq_count_queued, .schema_version = sq_schema_version,
    .stream_create = sq_stream_create, .stream_get = sq_stream_get, .stream_list = sq_stream_list,
    .stream_delete = sq_stream_delete, .cycle_list = sq_cycle_list, .cycle_insert = sq_cycle_insert,
};
