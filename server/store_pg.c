/* store_pg.c: the store in PostgreSQL (libpq), shared by any number of
 * sbidad replicas: any replica answers for any run, one listing, global
 * idempotency keys (a unique index), and the queue in the runs table.
 *
 * Connections: a pool of PG_POOL connections (each used by one thread at a
 * time) and, once store_watch is called, one more LISTENing on the channels
 * sbida_jobs (a run was queued or re-queued), sbida_cancel (payload: id) and
 * sbida_done (payload: id), read by a thread. A connection that broke is
 * reset and the statement tried once more.
 *
 * Claims: SELECT ... FOR UPDATE SKIP LOCKED, so workers of every replica
 * take distinct runs without waiting for each other; the claim commits with
 * synchronous_commit off (lost only to a crash of the server, which leaves
 * the run queued); everything else commits durably. */
#include "store_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "job_state.h"

#define PG_POOL 4

typedef struct pg {
  struct store base;
  char *url;
  PGconn *conns[PG_POOL];
  int busy[PG_POOL];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned char key[16];
  int write_failing; /* under mu */
  /* listener */
  pthread_t listener;
  int listening, stop;
  store_watch_fns fns;
} pg;

/* Versioned migrations (append, never edit), applied at open under an
 * advisory lock so replicas starting together apply each once. */
static const char *const pg_migrations[] = {
    /* 1: the schema of the SQLite store (store_sqlite.c's migration 1) */
    "CREATE TABLE runs("
    " seq BIGSERIAL PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " estimator TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK(state IN (%s)),"
    " time_index BIGINT NOT NULL,"
    " n_samples INTEGER NOT NULL,"
    " request TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL,"
    " started_ms BIGINT,"
    " finished_ms BIGINT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " result TEXT,"
    " error TEXT,"
    " samples BYTEA,"
    " samples_dim INTEGER NOT NULL DEFAULT 0,"
    " idem_key TEXT UNIQUE,"
    " body_hash TEXT);"
    "CREATE INDEX runs_state ON runs(state, seq);"
    "CREATE INDEX runs_estimator ON runs(estimator, seq);"
    "CREATE TABLE transitions(run_id TEXT NOT NULL, at_ms BIGINT NOT NULL, state TEXT NOT NULL, reason TEXT);"
    "CREATE INDEX transitions_run ON transitions(run_id);"
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value BYTEA NOT NULL);"
    "CREATE TABLE health(k INTEGER PRIMARY KEY, at_ms BIGINT, pad BYTEA);",
    /* 2: the queue's lease */
    "ALTER TABLE runs ADD COLUMN owner TEXT;"
    "ALTER TABLE runs ADD COLUMN lease_until BIGINT;"
    "CREATE INDEX runs_lease ON runs(state, lease_until);",
    /* 3: streams (cycling) and their cycles, one row per time index */
    "CREATE TABLE streams(seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, created_ms BIGINT NOT NULL,"
    " config TEXT NOT NULL);"
    "CREATE TABLE cycles(stream_id TEXT NOT NULL, time_index BIGINT NOT NULL, run_id TEXT NOT NULL,"
    " observations TEXT NOT NULL, PRIMARY KEY(stream_id, time_index));",
};
#define PG_N_MIGRATIONS ((int)(sizeof pg_migrations / sizeof pg_migrations[0]))

#define PG_RUN_COLS                                                                                     \
  "seq, id, estimator, state, time_index, n_samples, created_ms, started_ms, finished_ms, attempts, " \
  "cancel_requested, samples_dim, request, result, error"

/* ---- connections */

static PGconn *pg_acquire(pg *s) {
  pthread_mutex_lock(&s->mu);
  for (;;) {
    for (int i = 0; i < PG_POOL; i++)
      if (!s->busy[i]) {
        s->busy[i] = 1;
        pthread_mutex_unlock(&s->mu);
        return s->conns[i];
      }
    pthread_cond_wait(&s->cv, &s->mu);
  }
}

static void pg_release(pg *s, PGconn *c) {
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < PG_POOL; i++)
    if (s->conns[i] == c) s->busy[i] = 0;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void pg_note_write(pg *s, int rc) {
  pthread_mutex_lock(&s->mu);
  if (rc == SB_EIO) s->write_failing = 1;
  else if (!rc) s->write_failing = 0;
  pthread_mutex_unlock(&s->mu);
}

static int pg_fail(sb_error *err, PGconn *c, PGresult *r, const char *what) {
  const char *msg = r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : PQerrorMessage(c);
  char m[512];
  snprintf(m, sizeof m, "%s", msg);
  size_t n = strlen(m);
  while (n && (m[n - 1] == '\n' || m[n - 1] == ' ')) m[--n] = 0;
  return sb_fail(err, SB_EIO, "database: %s: %s", what, m);
}

/* PQexecParams with text parameters (lens/fmts for binary ones) and text
 * results (rbin: binary). A broken connection is reset and the statement
 * sent once more, outside a transaction only (intx = 0). */
static PGresult *pg_run(PGconn *c, int intx, const char *sql, int n, const char *const *v, const int *lens,
                        const int *fmts, int rbin) {
  PGresult *r = PQexecParams(c, sql, n, NULL, v, lens, fmts, rbin);
  if (PQstatus(c) != CONNECTION_OK && !intx) {
    PQclear(r);
    PQreset(c);
    r = PQexecParams(c, sql, n, NULL, v, lens, fmts, rbin);
  }
  return r;
}

static int pg_ok(PGresult *r) {
  ExecStatusType st = PQresultStatus(r);
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static int pg_cmd(PGconn *c, int intx, const char *sql, int n, const char *const *v, sb_error *err,
                  const char *what) {
  PGresult *r = pg_run(c, intx, sql, n, v, NULL, NULL, 0);
  int rc = pg_ok(r) ? SB_OK : pg_fail(err, c, r, what);
  PQclear(r);
  return rc;
}

static int pg_begin(PGconn *c, sb_error *err) { return pg_cmd(c, 0, "BEGIN", 0, NULL, err, "begin"); }
static int pg_end(PGconn *c, int rc, sb_error *err) {
  if (rc) {
    PQclear(PQexec(c, "ROLLBACK"));
    return rc;
  }
  return pg_cmd(c, 1, "COMMIT", 0, NULL, err, "commit");
}

static const char *pg_text(PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}
static char *pg_dup(PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}
static long long pg_ll(PGresult *r, int row, int col) { return strtoll(pg_text(r, row, col), NULL, 10); }

static void pg_read_run(PGresult *r, int row, store_run *o) {
  memset(o, 0, sizeof *o);
  o->seq = pg_ll(r, row, 0);
  snprintf(o->id, sizeof o->id, "%s", pg_text(r, row, 1));
  snprintf(o->estimator, sizeof o->estimator, "%s", pg_text(r, row, 2));
  snprintf(o->state, sizeof o->state, "%s", pg_text(r, row, 3));
  o->time_index = (long)pg_ll(r, row, 4);
  o->n_samples = (int)pg_ll(r, row, 5);
  o->created_ms = pg_ll(r, row, 6);
  o->started_ms = pg_ll(r, row, 7);
  o->finished_ms = pg_ll(r, row, 8);
  o->attempts = (int)pg_ll(r, row, 9);
  o->cancel_requested = (int)pg_ll(r, row, 10);
  o->samples_dim = (int)pg_ll(r, row, 11);
  o->request = pg_dup(r, row, 12);
  o->result = pg_dup(r, row, 13);
  o->error = pg_dup(r, row, 14);
  o->progress = job_state_is(o->state, JOB_SUCCEEDED) ? 1.0 : 0.0;
}

static int pg_get_on(PGconn *c, int intx, const char *id, store_run *out, sb_error *err) {
  const char *v[1] = {id};
  PGresult *r = pg_run(c, intx, "SELECT " PG_RUN_COLS " FROM runs WHERE id = $1", 1, v, NULL, NULL, 0);
  int rc;
  if (!pg_ok(r)) rc = pg_fail(err, c, r, "get run");
  else if (PQntuples(r) == 0) rc = sb_fail(err, STORE_ENOTFOUND, "no assimilation with id %.40s", id);
  else pg_read_run(r, 0, out), rc = SB_OK;
  PQclear(r);
  return rc;
}

static int pg_transition(PGconn *c, const char *id, int64_t now, const char *state, const char *reason,
                         sb_error *err) {
  char t[24];
  snprintf(t, sizeof t, "%" PRId64, now);
  const char *v[4] = {id, t, state, reason};
  return pg_cmd(c, 1, "INSERT INTO transitions(run_id, at_ms, state, reason) VALUES($1, $2, $3, $4)", 4, v, err,
                "insert transition");
}

/* ---- open, migrations */

static const store_ops pg_ops;
static void pg_close(store *base);

static int pg_migrate(pg *s, PGconn *c, sb_error *err) {
  int rc = pg_begin(c, err);
  if (rc) return rc;
  /* one replica at a time migrates; the others wait here, then find it done */
  rc = pg_cmd(c, 1, "SELECT pg_advisory_xact_lock(5173016)", 0, NULL, err, "migration lock");
  if (!rc)
    rc = pg_cmd(c, 1, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY, applied_ms BIGINT)", 0,
                NULL, err, "schema_version");
  int v = 0;
  if (!rc) {
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_version");
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "read schema_version");
    else v = (int)pg_ll(r, 0, 0);
    PQclear(r);
  }
  if (!rc && v > PG_N_MIGRATIONS)
    rc = sb_fail(err, SB_EIO, "the database has schema version %d, newer than this sbidad knows (%d): run the "
                 "newer sbidad", v, PG_N_MIGRATIONS);
  for (int m = v + 1; !rc && m <= PG_N_MIGRATIONS; m++) {
    char sql[4096], states[128];
    snprintf(sql, sizeof sql, pg_migrations[m - 1], job_state_list(states, sizeof states, ",", "'"));
    PGresult *r = PQexec(c, sql);
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "schema migration");
    PQclear(r);
    if (!rc) {
      char mv[16], at[24];
      snprintf(mv, sizeof mv, "%d", m);
      snprintf(at, sizeof at, "%lld", (long long)clock_now_ms());
      const char *p[2] = {mv, at};
      rc = pg_cmd(c, 1, "INSERT INTO schema_version(version, applied_ms) VALUES($1, $2)", 2, p, err,
                  "record migration");
    }
    if (rc) sb_wrap(err, "schema migration %d", m);
  }
  if (!rc) {
    unsigned char k[16];
    char hex[40] = "\\x";
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) rc = sb_fail(err, SB_EIO, "getrandom failed");
    for (int i = 0; i < 16; i++) snprintf(hex + 2 + 2 * i, 3, "%02x", k[i]);
    const char *p[1] = {hex};
    if (!rc)
      rc = pg_cmd(c, 1, "INSERT INTO meta(name, value) VALUES('token_key', $1::bytea) ON CONFLICT DO NOTHING", 1, p,
                  err, "token key");
  }
  rc = pg_end(c, rc, err);
  if (rc) return rc;
  PGresult *r = PQexecParams(c, "SELECT value FROM meta WHERE name = 'token_key'", 0, NULL, NULL, NULL, NULL, 1);
  if (!pg_ok(r) || PQntuples(r) != 1 || PQgetlength(r, 0, 0) != (int)sizeof s->key)
    rc = sb_fail(err, SB_EIO, "the database: cannot read its secret key (table meta)");
  else
    memcpy(s->key, PQgetvalue(r, 0, 0), sizeof s->key);
  PQclear(r);
  return rc;
}

static PGconn *pg_connect(const char *url, sb_error *err) {
  PGconn *c = PQconnectdb(url);
  if (!c || PQstatus(c) != CONNECTION_OK) {
    char m[400];
    snprintf(m, sizeof m, "%s", c ? PQerrorMessage(c) : "out of memory");
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' ')) m[--n] = 0;
    sb_fail(err, SB_EIO, "cannot connect to PostgreSQL: %s", m);
    PQfinish(c);
    return NULL;
  }
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  return c;
}

int store_pg_open(store **out, const char *url, sb_error *err) {
  *out = NULL;
  pg *s = calloc(1, sizeof *s);
  if (!s) return sb_fail(err, SB_ENOMEM, "out of memory");
  s->base.ops = &pg_ops;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->url = strdup(url);
  int rc = s->url ? SB_OK : sb_fail(err, SB_ENOMEM, "out of memory");
  for (int i = 0; !rc && i < PG_POOL; i++)
    if (!(s->conns[i] = pg_connect(url, err))) rc = SB_EIO;
  if (!rc) rc = pg_migrate(s, s->conns[0], err);
  if (rc) {
    pg_close(&s->base);
    return rc;
  }
  *out = &s->base;
  return SB_OK;
}

static void pg_unwatch(store *base);

static void pg_close(store *base) {
  pg *s = (pg *)base;
  pg_unwatch(base);
  for (int i = 0; i < PG_POOL; i++)
    if (s->conns[i]) PQfinish(s->conns[i]);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->url);
  free(s);
}

/* ---- runs */

static int pg_insert(store *base, const store_new_run *n, store_run *out, int *replayed, sb_error *err) {
  pg *s = (pg *)base;
  memset(out, 0, sizeof *out);
  *replayed = 0;
  PGconn *c = pg_acquire(s);
  int rc = pg_begin(c, err);
  char id[40] = "";
  if (!rc) rc = store_new_id(id, err);
  int64_t now = clock_now_ms();
  if (!rc) {
    char ti[24], ns[16], cr[24];
    snprintf(ti, sizeof ti, "%ld", n->time_index);
    snprintf(ns, sizeof ns, "%d", n->n_samples);
    snprintf(cr, sizeof cr, "%" PRId64, now);
    const char *v[8] = {id, n->estimator, ti, ns, n->request, cr, n->idem_key, n->body_hash};
    /* a key another submission holds (committed, or committing: the insert
     * waits for it) makes no row; that run is then the answer */
    PGresult *r = PQexecParams(c,
                               "INSERT INTO runs(id, estimator, state, time_index, n_samples, request, created_ms, "
                               "idem_key, body_hash) VALUES($1, $2, " JOB_SQL(QUEUED) ", $3, $4, $5, $6, $7, $8) "
                               "ON CONFLICT (idem_key) DO NOTHING RETURNING id",
                               8, NULL, v, NULL, NULL, 0);
    int inserted = 0;
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "insert run");
    else inserted = PQntuples(r) == 1;
    PQclear(r);
    if (!rc && !inserted) {
      const char *k[1] = {n->idem_key};
      r = PQexecParams(c, "SELECT id, body_hash FROM runs WHERE idem_key = $1", 1, NULL, k, NULL, NULL, 0);
      if (!pg_ok(r) || PQntuples(r) != 1) {
        rc = pg_fail(err, c, r, "idempotency lookup");
      } else {
        int same = n->body_hash && !strcmp(pg_text(r, 0, 1), n->body_hash);
        snprintf(id, sizeof id, "%s", pg_text(r, 0, 0));
        if (!same)
          rc = sb_fail(err, STORE_EMISMATCH, "Idempotency-Key was already used with a different body; send the "
                       "same body or use a new key");
        else
          *replayed = 1;
      }
      PQclear(r);
    } else if (!rc) {
      rc = pg_transition(c, id, now, job_state_name(JOB_QUEUED), NULL, err);
      if (!rc) rc = pg_cmd(c, 1, "NOTIFY sbida_jobs", 0, NULL, err, "notify");
    }
  }
  if (!rc) rc = pg_get_on(c, 1, id, out, err);
  rc = pg_end(c, rc, err);
  pg_release(s, c);
  if (rc) store_run_free(out);
  if (rc == SB_OK || rc == SB_EIO) pg_note_write(s, rc);
  return rc;
}

static int pg_get(store *base, const char *id, store_run *out, sb_error *err) {
  pg *s = (pg *)base;
  memset(out, 0, sizeof *out);
  PGconn *c = pg_acquire(s);
  int rc = pg_get_on(c, 0, id, out, err);
  pg_release(s, c);
  return rc;
}

/* One UPDATE ... RETURNING id in a transaction, a transition when it changed
 * the run, optional NOTIFY; *changed = rows changed. */
static int pg_update(pg *s, int lazy, const char *sql, int n, const char *const *v, const int *lens,
                     const int *fmts, const char *id, int64_t now, const char *state, const char *reason,
                     const char *notify, int *changed, sb_error *err) {
  PGconn *c = pg_acquire(s);
  int rc = pg_begin(c, err);
  if (!rc && lazy) rc = pg_cmd(c, 1, "SET LOCAL synchronous_commit = off", 0, NULL, err, "set");
  *changed = 0;
  if (!rc) {
    PGresult *r = PQexecParams(c, sql, n, NULL, v, lens, fmts, 0);
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "update run");
    else *changed = PQntuples(r);
    PQclear(r);
  }
  if (!rc && *changed && state) rc = pg_transition(c, id, now, state, reason, err);
  if (!rc && *changed && notify) {
    const char *p[2] = {notify, id};
    rc = pg_cmd(c, 1, "SELECT pg_notify($1, $2)", 2, p, err, "notify");
  }
  rc = pg_end(c, rc, err);
  pg_release(s, c);
  pg_note_write(s, rc);
  return rc;
}

static int pg_mark_running(store *base, const char *id, int64_t now_ms, int *taken, sb_error *err) {
  char t[24];
  snprintf(t, sizeof t, "%" PRId64, now_ms);
  const char *v[2] = {id, t};
  return pg_update((pg *)base, 1,
                   "UPDATE runs SET state = " JOB_SQL(RUNNING) ", started_ms = $2, attempts = attempts + 1 "
                   "WHERE id = $1 AND state = " JOB_SQL(QUEUED) " RETURNING id",
                   2, v, NULL, NULL, id, now_ms, job_state_name(JOB_RUNNING), NULL, NULL, taken, err);
}

/* Only the attempt that owns the run writes its outcome (see store.h). */
static int pg_finish(store *base, const char *id, int attempt, const char *state, int64_t now_ms, const char *result,
                     const float *samples, int n_samples, int dim, const char *error, sb_error *err) {
  char t[24], at[16], d[16];
  snprintf(t, sizeof t, "%" PRId64, now_ms);
  snprintf(at, sizeof at, "%d", attempt);
  snprintf(d, sizeof d, "%d", samples ? dim : 0);
  const char *v[8] = {id, state, t, result, error, (const char *)samples, d, at};
  int lens[8] = {0, 0, 0, 0, 0, samples ? (int)((size_t)n_samples * (size_t)dim * sizeof(float)) : 0, 0, 0};
  int fmts[8] = {0, 0, 0, 0, 0, 1, 0, 0};
  int changed = 0;
  int rc = pg_update((pg *)base, 0,
                     "UPDATE runs SET state = $2, finished_ms = $3, result = $4, error = $5, samples = $6, "
                     "samples_dim = $7, owner = NULL, lease_until = NULL "
                     "WHERE id = $1 AND state = " JOB_SQL(RUNNING) " AND ($8 = 0 OR attempts = $8) RETURNING id",
                     8, v, lens, fmts, id, now_ms, state, NULL, "sbida_done", &changed, err);
  if (!rc && !changed)
    rc = attempt ? sb_fail(err, STORE_ECONFLICT, "run %s was not running as attempt %d", id, attempt)
                 : sb_fail(err, STORE_ECONFLICT, "run %s was not running", id);
  return rc;
}

static int pg_requeue(store *base, const char *id, int attempt, const char *reason, sb_error *err) {
  char at[16];
  snprintf(at, sizeof at, "%d", attempt);
  const char *v[2] = {id, at};
  int changed;
  return pg_update((pg *)base, 0,
                   "UPDATE runs SET state = " JOB_SQL(QUEUED) ", started_ms = NULL, owner = NULL, lease_until = NULL "
                   "WHERE id = $1 AND state = " JOB_SQL(RUNNING) " AND ($2 = 0 OR attempts = $2) RETURNING id",
                   2, v, NULL, NULL, id, clock_now_ms(), job_state_name(JOB_QUEUED), reason, "sbida_jobs", &changed,
                   err);
}

static int pg_cancel(store *base, const char *id, int64_t now_ms, int *was_running, sb_error *err) {
  pg *s = (pg *)base;
  *was_running = 0;
  PGconn *c = pg_acquire(s);
  int rc = pg_begin(c, err);
  char state[16] = "";
  if (!rc) {
    const char *v[1] = {id};
    PGresult *r = PQexecParams(c, "SELECT state FROM runs WHERE id = $1 FOR UPDATE", 1, NULL, v, NULL, NULL, 0);
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "cancel");
    else if (!PQntuples(r)) rc = sb_fail(err, STORE_ENOTFOUND, "no assimilation with id %.40s", id);
    else snprintf(state, sizeof state, "%s", pg_text(r, 0, 0));
    PQclear(r);
  }
  if (!rc) {
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, now_ms);
    const char *v[2] = {id, t};
    if (job_state_is(state, JOB_QUEUED)) {
      rc = pg_cmd(c, 1, "UPDATE runs SET state = " JOB_SQL(CANCELLED) ", finished_ms = $2 WHERE id = $1", 2, v, err, "cancel");
      if (!rc) rc = pg_transition(c, id, now_ms, job_state_name(JOB_CANCELLED), "cancelled by the client while queued",
                                  err);
      if (!rc) rc = pg_cmd(c, 1, "SELECT pg_notify('sbida_done', $1)", 1, v, err, "notify");
    } else if (job_state_is(state, JOB_RUNNING)) {
      *was_running = 1;
      /* the replica running it hears this at once; its heartbeat reads
       * cancel_requested too (a missed notification) */
      rc = pg_cmd(c, 1, "UPDATE runs SET cancel_requested = 1 WHERE id = $1", 1, v, err, "cancel");
      if (!rc) rc = pg_cmd(c, 1, "SELECT pg_notify('sbida_cancel', $1)", 1, v, err, "notify");
    } else {
      rc = sb_fail(err, STORE_ECONFLICT, "assimilation %s already finished (%s); only queued or running ones can "
                   "be cancelled", id, state);
    }
  }
  rc = pg_end(c, rc, err);
  pg_release(s, c);
  if (rc == SB_OK || rc == SB_EIO) pg_note_write(s, rc);
  return rc;
}

static int pg_delete(store *base, const char *id, sb_error *err) {
  pg *s = (pg *)base;
  PGconn *c = pg_acquire(s);
  int rc = pg_begin(c, err);
  const char *v[1] = {id};
  if (!rc) {
    PGresult *r = PQexecParams(c, "SELECT state FROM runs WHERE id = $1 FOR UPDATE", 1, NULL, v, NULL, NULL, 0);
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "delete");
    else if (!PQntuples(r)) rc = sb_fail(err, STORE_ENOTFOUND, "no assimilation with id %.40s", id);
    else if (!job_state_finished(pg_text(r, 0, 0)))
      rc = sb_fail(err, STORE_ECONFLICT, "assimilation %s is %s; cancel it and wait until it is cancelled before "
                   "deleting it", id, pg_text(r, 0, 0));
    PQclear(r);
  }
  if (!rc) rc = pg_cmd(c, 1, "DELETE FROM runs WHERE id = $1", 1, v, err, "delete");
  if (!rc) rc = pg_cmd(c, 1, "DELETE FROM transitions WHERE run_id = $1", 1, v, err, "delete");
  rc = pg_end(c, rc, err);
  pg_release(s, c);
  if (rc == SB_OK || rc == SB_EIO) pg_note_write(s, rc);
  return rc;
}

static int pg_samples(store *base, const char *id, float **data, int *n_samples, int *dim, sb_error *err) {
  pg *s = (pg *)base;
  *data = NULL;
  *n_samples = *dim = 0;
  PGconn *c = pg_acquire(s);
  const char *v[1] = {id};
  PGresult *r = pg_run(c, 0, "SELECT samples, samples_dim FROM runs WHERE id = $1", 1, v, NULL, NULL, 1);
  int rc;
  if (!pg_ok(r)) {
    rc = pg_fail(err, c, r, "read samples");
  } else if (!PQntuples(r)) {
    rc = sb_fail(err, STORE_ENOTFOUND, "no assimilation with id %.40s", id);
  } else {
    uint32_t dn = 0;
    if (PQgetlength(r, 0, 1) == 4) memcpy(&dn, PQgetvalue(r, 0, 1), 4);
    int d = (int)__builtin_bswap32(dn);
    size_t len = PQgetisnull(r, 0, 0) ? 0 : (size_t)PQgetlength(r, 0, 0);
    size_t row = (size_t)(d > 0 ? d : 1) * sizeof(float);
    if (!len || d <= 0 || len % row) {
      rc = sb_fail(err, STORE_ECONFLICT, "assimilation %s has no samples (it has not succeeded)", id);
    } else if (!(*data = malloc(len))) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory for %zu bytes of samples", len);
    } else {
      memcpy(*data, PQgetvalue(r, 0, 0), len);
      *n_samples = (int)(len / row);
      *dim = d;
      rc = SB_OK;
    }
  }
  PQclear(r);
  pg_release(s, c);
  return rc;
}

static int pg_list(store *base, const char *state, const char *estimator, long long before_seq, int limit,
                   store_run **out, int *count, sb_error *err) {
  pg *s = (pg *)base;
  *out = NULL;
  *count = 0;
  char b[24], l[16];
  snprintf(b, sizeof b, "%lld", before_seq);
  snprintf(l, sizeof l, "%d", limit);
  const char *v[4] = {state, estimator, b, l};
  PGconn *c = pg_acquire(s);
  PGresult *r = pg_run(c, 0,
                       "SELECT " PG_RUN_COLS " FROM runs WHERE ($1::text IS NULL OR state = $1) AND "
                       "($2::text IS NULL OR estimator = $2) AND ($3::bigint = 0 OR seq < $3) ORDER BY seq DESC "
                       "LIMIT $4",
                       4, v, NULL, NULL, 0);
  int rc = SB_OK;
  if (!pg_ok(r)) {
    rc = pg_fail(err, c, r, "list runs");
  } else {
    int n = PQntuples(r);
    store_run *runs = calloc((size_t)(n > 0 ? n : 1), sizeof *runs);
    if (!runs) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
    } else {
      for (int i = 0; i < n; i++) pg_read_run(r, i, &runs[i]);
      *out = runs;
      *count = n;
    }
  }
  PQclear(r);
  pg_release(s, c);
  return rc;
}

/* ---- the queue */

/* Expired leases: re-queued or failed, one statement each, in one
 * transaction (FOR UPDATE SKIP LOCKED: two sweeping replicas split them). */
static int pg_sweep(store *base, int max_attempts, int64_t now_ms, int *requeued, int *failed, sb_error *err) {
  pg *s = (pg *)base;
  *requeued = *failed = 0;
  char t[24], m[16];
  snprintf(t, sizeof t, "%" PRId64, now_ms);
  snprintf(m, sizeof m, "%d", max_attempts);
  PGconn *c = pg_acquire(s);
  int rc = pg_begin(c, err);
  PGresult *r = NULL;
  if (!rc) {
    const char *v[1] = {t};
    r = PQexecParams(c,
                     "SELECT id, attempts FROM runs WHERE state = " JOB_SQL(RUNNING) " AND lease_until < $1 "
                     "FOR UPDATE SKIP LOCKED",
                     1, NULL, v, NULL, NULL, 0);
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "sweep");
  }
  for (int i = 0; !rc && i < PQntuples(r); i++) {
    const char *id = pg_text(r, i, 0);
    int attempts = (int)pg_ll(r, i, 1);
    const char *v[3] = {id, t, NULL};
    if (attempts < max_attempts) {
      rc = pg_cmd(c, 1, "UPDATE runs SET state = " JOB_SQL(QUEUED) ", started_ms = NULL, owner = NULL, lease_until = NULL "
                  "WHERE id = $1", 1, v, err, "sweep");
      if (!rc) rc = pg_transition(c, id, now_ms, job_state_name(JOB_QUEUED),
                                  "lease expired (the daemon running it stopped renewing it); re-queued", err);
      (*requeued)++;
    } else {
      char perr[600];
      store_interrupted_problem(perr, sizeof perr, attempts);
      v[2] = perr;
      rc = pg_cmd(c, 1, "UPDATE runs SET state = " JOB_SQL(FAILED) ", finished_ms = $2, error = $3, owner = NULL, "
                  "lease_until = NULL WHERE id = $1", 3, v, err, "sweep");
      if (!rc) rc = pg_transition(c, id, now_ms, job_state_name(JOB_FAILED), "interrupted too often", err);
      if (!rc) rc = pg_cmd(c, 1, "SELECT pg_notify('sbida_done', $1)", 1, v, err, "notify");
      (*failed)++;
    }
  }
  PQclear(r);
  if (!rc && *requeued) rc = pg_cmd(c, 1, "NOTIFY sbida_jobs", 0, NULL, err, "notify");
  rc = pg_end(c, rc, err);
  pg_release(s, c);
  pg_note_write(s, rc);
  if (rc) *requeued = *failed = 0;
  (void)m;
  return rc;
}

/* Other replicas may be running jobs right now: only expired leases. */
static int pg_recover(store *base, int max_attempts, int64_t now_ms, void (*fn)(void *ctx, const char *id), void *ctx,
                      int *requeued, int *failed, sb_error *err) {
  pg *s = (pg *)base;
  int rc = pg_sweep(base, max_attempts, now_ms, requeued, failed, err);
  if (rc || !fn) return rc;
  PGconn *c = pg_acquire(s);
  PGresult *r = pg_run(c, 0, "SELECT id FROM runs WHERE state = " JOB_SQL(QUEUED) " ORDER BY seq", 0, NULL, NULL, NULL, 0);
  if (!pg_ok(r)) rc = pg_fail(err, c, r, "queued scan");
  else
    for (int i = 0; i < PQntuples(r); i++) fn(ctx, pg_text(r, i, 0));
  PQclear(r);
  pg_release(s, c);
  return rc;
}

static int pg_claim(store *base, const char *owner, int64_t now_ms, int64_t lease_ms, char id[40], int *attempt,
                    int *claimed, sb_error *err) {
  pg *s = (pg *)base;
  *claimed = 0;
  *attempt = 0;
  id[0] = 0;
  char t[24], l[24];
  snprintf(t, sizeof t, "%" PRId64, now_ms);
  snprintf(l, sizeof l, "%" PRId64, now_ms + lease_ms);
  const char *v[3] = {t, owner, l};
  PGconn *c = pg_acquire(s);
  int rc = pg_begin(c, err);
  if (!rc) rc = pg_cmd(c, 1, "SET LOCAL synchronous_commit = off", 0, NULL, err, "set");
  if (!rc) {
    /* SKIP LOCKED: a run another replica's worker is claiming is passed
     * over, not waited for, and never claimed twice */
    PGresult *r = PQexecParams(c,
                               "UPDATE runs SET state = " JOB_SQL(RUNNING) ", started_ms = GREATEST($1::bigint, created_ms), attempts = attempts + 1, "
                               "owner = $2, lease_until = $3 WHERE id = (SELECT id FROM runs WHERE state = " JOB_SQL(QUEUED) " "
                               "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, attempts",
                               3, NULL, v, NULL, NULL, 0);
    if (!pg_ok(r)) {
      rc = pg_fail(err, c, r, "claim");
    } else if (PQntuples(r) == 1) {
      snprintf(id, 40, "%s", pg_text(r, 0, 0));
      *attempt = (int)pg_ll(r, 0, 1);
      *claimed = 1;
    }
    PQclear(r);
  }
  if (!rc && *claimed) rc = pg_transition(c, id, now_ms, job_state_name(JOB_RUNNING), NULL, err);
  rc = pg_end(c, rc, err);
  pg_release(s, c);
  pg_note_write(s, rc);
  if (rc) *claimed = 0;
  return rc;
}

static int pg_renew(store *base, int n, const char (*ids)[40], const int *attempts, int64_t now_ms, int64_t lease_ms,
                    int *state, sb_error *err) {
  pg *s = (pg *)base;
  if (n <= 0) return SB_OK;
  char l[24];
  snprintf(l, sizeof l, "%" PRId64, now_ms + lease_ms);
  PGconn *c = pg_acquire(s);
  int rc = SB_OK;
  for (int i = 0; i < n && !rc; i++) {
    char at[16];
    snprintf(at, sizeof at, "%d", attempts[i]);
    const char *v[3] = {l, ids[i], at};
    PGresult *r = pg_run(c, 0,
                         "UPDATE runs SET lease_until = $1 WHERE id = $2 AND attempts = $3 AND state = " JOB_SQL(RUNNING) " "
                         "RETURNING cancel_requested",
                         3, v, NULL, NULL, 0);
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "renew lease");
    else state[i] = PQntuples(r) ? (pg_ll(r, 0, 0) ? 1 : 0) : -1;
    PQclear(r);
  }
  pg_release(s, c);
  pg_note_write(s, rc);
  return rc;
}

static int pg_count_queued(store *base, long long *n, sb_error *err) {
  pg *s = (pg *)base;
  *n = 0;
  PGconn *c = pg_acquire(s);
  PGresult *r = pg_run(c, 0, "SELECT count(*) FROM runs WHERE state = " JOB_SQL(QUEUED), 0, NULL, NULL, NULL, 0);
  int rc = pg_ok(r) ? SB_OK : pg_fail(err, c, r, "count queued");
  if (!rc) *n = pg_ll(r, 0, 0);
  PQclear(r);
  pg_release(s, c);
  return rc;
}

static int pg_count_states(store *base, long long counts[JOB_N_STATES], sb_error *err) {
  pg *s = (pg *)base;
  memset(counts, 0, JOB_N_STATES * sizeof counts[0]);
  PGconn *c = pg_acquire(s);
  PGresult *r = pg_run(c, 0, "SELECT state, count(*) FROM runs GROUP BY state", 0, NULL, NULL, NULL, 0);
  int rc = pg_ok(r) ? SB_OK : pg_fail(err, c, r, "count");
  for (int i = 0; !rc && i < PQntuples(r); i++) {
    int k = job_state_parse(pg_text(r, i, 0));
    if (k >= 0) counts[k] = pg_ll(r, i, 1);
  }
  PQclear(r);
  pg_release(s, c);
  return rc;
}

static int pg_cleanup(store *base, int64_t now_ms, int64_t max_age_ms, long long max_runs, long long *deleted,
                      sb_error *err) {
  pg *s = (pg *)base;
  *deleted = 0;
  int64_t cutoff = max_age_ms > 0 ? now_ms - max_age_ms : 0;
  if (cutoff <= 0 && max_runs <= 0) return SB_OK;
  char cu[24], mr[24];
  snprintf(cu, sizeof cu, "%" PRId64, cutoff);
  snprintf(mr, sizeof mr, "%lld", max_runs);
  const char *v[2] = {cu, mr};
  PGconn *c = pg_acquire(s);
  int rc = pg_begin(c, err);
  if (!rc) {
    PGresult *r = PQexecParams(c,
                               "WITH doomed AS (SELECT id FROM runs WHERE state IN " JOB_SQL_FINISHED " "
                               "AND (($1::bigint > 0 AND finished_ms < $1) OR ($2::bigint > 0 AND seq <= coalesce(("
                               "SELECT seq FROM runs WHERE state IN " JOB_SQL_FINISHED " ORDER BY seq "
                               "DESC OFFSET $2 LIMIT 1), -1)))), "
                               "t AS (DELETE FROM transitions WHERE run_id IN (SELECT id FROM doomed)) "
                               "DELETE FROM runs WHERE id IN (SELECT id FROM doomed) RETURNING id",
                               2, NULL, v, NULL, NULL, 0);
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "cleanup");
    else *deleted = PQntuples(r);
    PQclear(r);
  }
  rc = pg_end(c, rc, err);
  pg_release(s, c);
  pg_note_write(s, rc);
  if (rc) *deleted = 0;
  return rc;
}

/* What a POST needs: a 64 KiB row (rolled back) and a committed heartbeat. */
static int pg_check_writable(store *base, sb_error *err) {
  pg *s = (pg *)base;
  PGconn *c = pg_acquire(s);
  int rc = pg_begin(c, err);
  if (!rc)
    rc = pg_cmd(c, 1, "INSERT INTO health(k, at_ms, pad) VALUES(2, 0, decode(repeat('00', 65536), 'hex')) "
                "ON CONFLICT (k) DO UPDATE SET pad = excluded.pad", 0, NULL, err, "probe write");
  if (rc) PQclear(PQexec(c, "ROLLBACK"));
  else PQclear(PQexec(c, "ROLLBACK"));
  if (!rc) {
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)clock_now_ms());
    const char *v[1] = {t};
    rc = pg_cmd(c, 0, "INSERT INTO health(k, at_ms) VALUES(1, $1) ON CONFLICT (k) DO UPDATE SET at_ms = $1", 1, v,
                err, "heartbeat write");
  }
  pg_release(s, c);
  pg_note_write(s, rc);
  return rc;
}

static int pg_write_failing(store *base) {
  pg *s = (pg *)base;
  pthread_mutex_lock(&s->mu);
  int f = s->write_failing;
  pthread_mutex_unlock(&s->mu);
  return f;
}

static const unsigned char *pg_secret(const store *base) { return ((const pg *)base)->key; }

static int pg_set_max_bytes(store *base, long long bytes, sb_error *err) {
  (void)base;
  if (bytes <= 0) return SB_OK;
  return sb_fail(err, SB_EINVAL, "--max-db-bytes caps a SQLite file; with PostgreSQL set quotas in the server");
}

static int pg_find_idem(store *base, const char *key, const char *hash, store_run *out, sb_error *err) {
  pg *s = (pg *)base;
  memset(out, 0, sizeof *out);
  const char *v[1] = {key};
  PGconn *c = pg_acquire(s);
  PGresult *r = pg_run(c, 0, "SELECT id, body_hash FROM runs WHERE idem_key = $1", 1, v, NULL, NULL, 0);
  int rc;
  char id[40] = "";
  if (!pg_ok(r)) {
    rc = pg_fail(err, c, r, "idempotency lookup");
  } else if (!PQntuples(r)) {
    rc = 0;
  } else {
    snprintf(id, sizeof id, "%s", pg_text(r, 0, 0));
    rc = hash && !strcmp(pg_text(r, 0, 1), hash)
             ? 1
             : sb_fail(err, STORE_EMISMATCH, "Idempotency-Key was already used with a different body; send the same "
                       "body or use a new key");
  }
  PQclear(r);
  if (rc == 1) {
    int g = pg_get_on(c, 0, id, out, err);
    if (g) rc = g;
  }
  pg_release(s, c);
  return rc;
}

static int pg_schema_version(store *base, int *version, sb_error *err) {
  pg *s = (pg *)base;
  PGconn *c = pg_acquire(s);
  PGresult *r = pg_run(c, 0, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL, NULL, NULL, 0);
  int rc = pg_ok(r) ? SB_OK : pg_fail(err, c, r, "schema version");
  if (!rc) *version = (int)pg_ll(r, 0, 0);
  PQclear(r);
  pg_release(s, c);
  return rc;
}

/* ---- LISTEN/NOTIFY */

static int pg_listen_on(PGconn *c) {
  PGresult *r = PQexec(c, "LISTEN sbida_jobs; LISTEN sbida_cancel; LISTEN sbida_done");
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  return ok;
}

/* Waits on the connection's socket (1 s at most, to see stop), dispatches
 * notifications; a broken connection is re-made every second, and after a
 * reconnection the workers are woken (notifications sent meanwhile are
 * lost; the workers' 5 s poll would catch them anyway). */
static void *pg_listener(void *arg) {
  pg *s = arg;
  PGconn *c = NULL;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    if (stop) break;
    if (!c || PQstatus(c) != CONNECTION_OK) {
      if (c) PQfinish(c);
      c = PQconnectdb(s->url);
      if (PQstatus(c) != CONNECTION_OK || !pg_listen_on(c)) {
        PQfinish(c);
        c = NULL;
        sleep(1);
        continue;
      }
      if (s->fns.on_job) s->fns.on_job(s->fns.ctx);
    }
    struct pollfd p = {PQsocket(c), POLLIN, 0};
    int n = poll(&p, 1, 1000);
    if (n < 0 && errno != EINTR) {
      PQfinish(c);
      c = NULL;
      continue;
    }
    if (n > 0 && !PQconsumeInput(c)) continue; /* broken: reconnect above */
    PGnotify *nf;
    while ((nf = PQnotifies(c))) {
      if (!strcmp(nf->relname, "sbida_jobs")) {
        if (s->fns.on_job) s->fns.on_job(s->fns.ctx);
      } else if (!strcmp(nf->relname, "sbida_cancel")) {
        if (s->fns.on_cancel) s->fns.on_cancel(s->fns.ctx, nf->extra);
      } else if (!strcmp(nf->relname, "sbida_done")) {
        if (s->fns.on_done) s->fns.on_done(s->fns.ctx, nf->extra);
      }
      PQfreemem(nf);
    }
  }
  if (c) PQfinish(c);
  return NULL;
}

static int pg_watch(store *base, const store_watch_fns *fns, sb_error *err) {
  pg *s = (pg *)base;
  if (s->listening) return SB_OK;
  s->fns = *fns;
  s->stop = 0;
  if (pthread_create(&s->listener, NULL, pg_listener, s)) return sb_fail(err, SB_EIO, "cannot start the listener");
  s->listening = 1;
  return SB_OK;
}

static void pg_unwatch(store *base) {
  pg *s = (pg *)base;
  if (!s->listening) return;
  pthread_mutex_lock(&s->mu);
  s->stop = 1;
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->listener, NULL);
  s->listening = 0;
}

/* ---- streams (store.h): tables streams and cycles (migration 3) */

static int pg_stream_create(store *base, const char *config, int64_t now_ms, char id[40], sb_error *err) {
  pg *s = (pg *)base;
  int rc = store_new_id(id, err);
  if (rc) return rc;
  char cr[24];
  snprintf(cr, sizeof cr, "%" PRId64, now_ms);
  const char *v[3] = {id, cr, config};
  PGconn *c = pg_acquire(s);
  rc = pg_cmd(c, 0, "INSERT INTO streams(id, created_ms, config) VALUES($1, $2, $3)", 3, v, err, "insert stream");
  pg_release(s, c);
  if (rc == SB_OK || rc == SB_EIO) pg_note_write(s, rc);
  return rc;
}

static int pg_stream_query(pg *s, const char *id, long long before, int limit, store_stream **out, int *count,
                           sb_error *err) {
  *out = NULL;
  *count = 0;
  char b[24], l[16];
  snprintf(b, sizeof b, "%lld", before);
  snprintf(l, sizeof l, "%d", limit);
  const char *v[3] = {id, b, l};
  PGconn *c = pg_acquire(s);
  PGresult *r = pg_run(c, 0,
                       "SELECT seq, id, created_ms, config FROM streams WHERE ($1::text IS NULL OR id = $1) AND "
                       "($2::bigint = 0 OR seq < $2) ORDER BY seq DESC LIMIT $3",
                       3, v, NULL, NULL, 0);
  int rc = SB_OK;
  if (!pg_ok(r)) {
    rc = pg_fail(err, c, r, "read streams");
  } else {
    int n = PQntuples(r);
    store_stream *o = calloc((size_t)(n > 0 ? n : 1), sizeof *o);
    if (!o) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
    } else {
      for (int i = 0; i < n; i++) {
        o[i].seq = pg_ll(r, i, 0);
        snprintf(o[i].id, sizeof o[i].id, "%s", pg_text(r, i, 1));
        o[i].created_ms = pg_ll(r, i, 2);
        o[i].config = pg_dup(r, i, 3);
      }
      *out = o;
      *count = n;
    }
  }
  PQclear(r);
  pg_release(s, c);
  return rc;
}

static int pg_stream_get(store *base, const char *id, store_stream *out, sb_error *err) {
  memset(out, 0, sizeof *out);
  store_stream *v;
  int n;
  int rc = pg_stream_query((pg *)base, id, 0, 1, &v, &n, err);
  if (rc) return rc;
  if (n == 0) rc = sb_fail(err, STORE_ENOTFOUND, "no stream with id %.40s", id);
  else *out = v[0];
  free(v);
  return rc;
}

static int pg_stream_list(store *base, long long before_seq, int limit, store_stream **out, int *count,
                          sb_error *err) {
  return pg_stream_query((pg *)base, NULL, before_seq, limit, out, count, err);
}

static int pg_stream_delete(store *base, const char *id, sb_error *err) {
  pg *s = (pg *)base;
  PGconn *c = pg_acquire(s);
  const char *v[1] = {id};
  int rc = pg_begin(c, err);
  if (!rc) {
    PGresult *r = pg_run(c, 1, "DELETE FROM streams WHERE id = $1", 1, v, NULL, NULL, 0);
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "delete stream");
    else if (strcmp(PQcmdTuples(r), "1")) rc = sb_fail(err, STORE_ENOTFOUND, "no stream with id %.40s", id);
    PQclear(r);
  }
  if (!rc) rc = pg_cmd(c, 1, "DELETE FROM cycles WHERE stream_id = $1", 1, v, err, "delete cycles");
  rc = pg_end(c, rc, err);
  pg_release(s, c);
  if (rc == SB_OK || rc == SB_EIO) pg_note_write(s, rc);
  return rc;
}

static int pg_cycle_list(store *base, const char *stream, long max_time, int succeeded_only, int limit,
                         store_cycle **out, int *count, sb_error *err) {
  pg *s = (pg *)base;
  *out = NULL;
  *count = 0;
  char mt[24], so[4], l[16];
  snprintf(mt, sizeof mt, "%ld", max_time);
  snprintf(so, sizeof so, "%d", succeeded_only ? 1 : 0);
  snprintf(l, sizeof l, "%d", limit);
  const char *v[4] = {stream, mt, so, l};
  PGconn *c = pg_acquire(s);
  PGresult *r = pg_run(c, 0,
                       "SELECT c.time_index, c.run_id, r.state, c.observations, r.result FROM cycles c LEFT JOIN "
                       "runs r ON r.id = c.run_id WHERE c.stream_id = $1 AND c.time_index <= $2::bigint AND "
                       "($3::int = 0 OR r.state = " JOB_SQL(SUCCEEDED) ") ORDER BY c.time_index DESC LIMIT $4",
                       4, v, NULL, NULL, 0);
  int rc = SB_OK;
  if (!pg_ok(r)) {
    rc = pg_fail(err, c, r, "list cycles");
  } else {
    int n = PQntuples(r);
    store_cycle *o = calloc((size_t)(n > 0 ? n : 1), sizeof *o);
    if (!o) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
    } else {
      for (int i = 0; i < n; i++) {
        o[i].time_index = (long)pg_ll(r, i, 0);
        snprintf(o[i].run_id, sizeof o[i].run_id, "%s", pg_text(r, i, 1));
        snprintf(o[i].state, sizeof o[i].state, "%s", pg_text(r, i, 2));
        o[i].observations = pg_dup(r, i, 3);
        o[i].result = pg_dup(r, i, 4);
      }
      *out = o;
      *count = n;
    }
  }
  PQclear(r);
  pg_release(s, c);
  return rc;
}

/* The stream's row is locked (FOR UPDATE) for the transaction, so two
 * cycles of one stream on two replicas insert one after the other and the
 * second sees the first's row. */
static int pg_cycle_insert(store *base, const char *stream, long time_index, const char *observations,
                           long last_time, const store_new_run *n, store_run *out, sb_error *err) {
  pg *s = (pg *)base;
  memset(out, 0, sizeof *out);
  PGconn *c = pg_acquire(s);
  int rc = pg_begin(c, err);
  const char *sv[1] = {stream};
  if (!rc) {
    /* the lock first; the newest cycle in a statement of its own, whose snapshot
     * (READ COMMITTED) is taken after the lock, so it sees a cycle committed meanwhile */
    PGresult *r = pg_run(c, 1, "SELECT 1 FROM streams WHERE id = $1 FOR UPDATE", 1, sv, NULL, NULL, 0);
    if (!pg_ok(r)) rc = pg_fail(err, c, r, "lock stream");
    else if (PQntuples(r) == 0) rc = sb_fail(err, STORE_ENOTFOUND, "no stream with id %.40s", stream);
    PQclear(r);
    r = NULL;
    if (!rc) {
      r = pg_run(c, 1, "SELECT coalesce(max(time_index), -1) FROM cycles WHERE stream_id = $1", 1, sv, NULL, NULL, 0);
      if (!pg_ok(r)) rc = pg_fail(err, c, r, "cycle check");
    }
    if (!rc && (long)pg_ll(r, 0, 0) != last_time)
      rc = sb_fail(err, STORE_ECONFLICT, "another cycle of stream %.40s was submitted at the same time; retry",
                   stream);
    PQclear(r);
  }
  char id[40] = "";
  if (!rc) rc = store_new_id(id, err);
  int64_t now = clock_now_ms();
  if (!rc) {
    char ti[24], ns[16], cr[24];
    snprintf(ti, sizeof ti, "%ld", n->time_index);
    snprintf(ns, sizeof ns, "%d", n->n_samples);
    snprintf(cr, sizeof cr, "%" PRId64, now);
    const char *v[6] = {id, n->estimator, ti, ns, n->request, cr};
    rc = pg_cmd(c, 1,
                "INSERT INTO runs(id, estimator, state, time_index, n_samples, request, created_ms) "
                "VALUES($1, $2, " JOB_SQL(QUEUED) ", $3, $4, $5, $6)",
                6, v, err, "insert run");
    if (!rc) rc = pg_transition(c, id, now, job_state_name(JOB_QUEUED), NULL, err);
    char ct[24];
    snprintf(ct, sizeof ct, "%ld", time_index);
    const char *cv[4] = {stream, ct, id, observations};
    if (!rc)
      rc = pg_cmd(c, 1, "INSERT INTO cycles(stream_id, time_index, run_id, observations) VALUES($1, $2, $3, $4)", 4,
                  cv, err, "insert cycle");
    if (!rc) rc = pg_cmd(c, 1, "NOTIFY sbida_jobs", 0, NULL, err, "notify");
  }
  if (!rc) rc = pg_get_on(c, 1, id, out, err);
  rc = pg_end(c, rc, err);
  pg_release(s, c);
  if (rc) store_run_free(out);
  if (rc == SB_OK || rc == SB_EIO) pg_note_write(s, rc);
  return rc;
}

static const store_ops pg_ops = {
    .name = "postgresql", .shared = 1, .close = pg_close, .insert = pg_insert, .get = pg_get,
    .mark_running = pg_mark_running, .finish = pg_finish, .requeue = pg_requeue, .cancel = pg_cancel,
    .del = pg_delete, .samples = pg_samples, .list = pg_list, .recover = pg_recover,
    .count_states = pg_count_states, .cleanup = pg_cleanup, .check_writable = pg_check_writable,
    .write_failing = pg_write_failing, .secret = pg_secret, .set_max_bytes = pg_set_max_bytes,
    .find_idem = pg_find_idem, .claim = pg_claim, .renew = pg_renew, .sweep = pg_sweep, .watch = pg_watch,
    .unwatch = pg_unwatch, .count_queued = pg_count_queued, .schema_version = pg_schema_version,
    .stream_create = pg_stream_create, .stream_get = pg_stream_get, .stream_list = pg_stream_list,
    .stream_delete = pg_stream_delete, .cycle_list = pg_cycle_list, .cycle_insert = pg_cycle_insert,
};
