/* store.h: every run, and the job queue, in a database: one interface, two
 * backends. --db postgresql://... (or postgres://) opens PostgreSQL
 * (store_pg.c, libpq), anything else is a SQLite file (store_sqlite.c). The
 * daemon calls only these functions. Both backends apply versioned schema
 * migrations at open (table schema_version; store_migrations.h).
 *
 * The queue is the runs table: a worker claims the oldest queued run
 * (store_claim: PostgreSQL SELECT ... FOR UPDATE SKIP LOCKED, SQLite one
 * write transaction), holds a lease on it (lease_until, renewed by
 * store_renew), and writes its outcome only while it still owns that attempt
 * (store_finish_attempt). store_sweep re-queues runs whose lease expired (the
 * replica that ran them died). So a job runs at least once and its result is
 * recorded exactly once.
 *
 * SQLite durability: a run is acknowledged to the client only after store_insert's
 * transaction has committed; with WAL and synchronous=FULL the commit fsyncs
 * the WAL, so the run survives kill -9 and power loss. Finishing, cancelling,
 * deleting and recovery commit the same way. Only queued -> running is
 * committed without fsync (it reaches the OS, so it survives kill -9): losing
 * it to a power cut leaves the run queued, and it runs again.
 *
 * Threads: one writer connection and one reader connection, each behind its
 * own mutex; WAL lets readers run while a write is in progress.
 * PostgreSQL: every commit is durable (synchronous_commit on) except the
 * claim (SET LOCAL synchronous_commit = off, the same trade as SQLite's);
 * a small pool of connections, one more LISTENing for wake-ups.
 * Strings in store_run are owned by the struct (store_run_free). */
#ifndef SB_STORE_H
#define SB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "job_state.h"
#include "util/sb_error.h"

enum {
  STORE_ENOTFOUND = -100, /* no such run */
  STORE_ECONFLICT = -101, /* the run's state forbids the operation */
  STORE_EMISMATCH = -102  /* idempotency key reused with another body */
};

typedef struct store store;

typedef struct store_run {
  char id[40];
  long long seq;
  char estimator[128];
  char state[16];  /* queued, running, succeeded, failed, cancelled */
  long time_index;
  int n_samples;
  int64_t created_ms, started_ms, finished_ms; /* 0 = not yet */
  double progress;
  int attempts;    /* claims so far; the current attempt's number while running */
  int cancel_requested;
  int samples_dim;  /* 0 when no samples are stored */
  char *request;    /* canonical request JSON */
  char *result;     /* summary JSON or NULL */
  char *error;      /* problem JSON or NULL */
} store_run;

typedef struct store_new_run {
  const char *estimator;
  long time_index;
  int n_samples;
  const char *request;   /* canonical JSON */
  const char *idem_key;  /* may be NULL */
  const char *body_hash; /* hash of the canonical body (with the key) */
} store_new_run;

/* path: a SQLite file, or a postgresql:// / postgres:// connection URI. */
int store_open(store **out, const char *path, sb_error *err);
/* 1 for a database several daemons share (PostgreSQL), 0 for SQLite. */
int store_shared(const store *s);
void store_close(store *s);
void store_run_free(store_run *r);

/* Inserts a queued run and commits durably. With an idempotency key already
 * used: same hash fills *out with the existing run and sets *replayed = 1;
 * other hash returns STORE_EMISMATCH. */
int store_insert(store *s, const store_new_run *n, store_run *out, int *replayed, sb_error *err);
int store_get(store *s, const char *id, store_run *out, sb_error *err);
/* queued -> running (attempts + 1). *taken = 0 when it was not queued any more. */
int store_mark_running(store *s, const char *id, int64_t now_ms, int *taken, sb_error *err);
/* running -> succeeded/failed/cancelled with the summary, samples (float32,
 * n_samples x dim, may be NULL) and error problem (may be NULL). */
int store_finish(store *s, const char *id, const char *state, int64_t now_ms, const char *result,
                 const float *samples, int n_samples, int dim, const char *error, sb_error *err);
/* The same, only while attempt (store_claim's) still owns the run: a worker
 * whose lease expired and whose run was claimed again (or swept) gets
 * STORE_ECONFLICT and writes nothing. attempt 0: any attempt. */
int store_finish_attempt(store *s, const char *id, int attempt, const char *state, int64_t now_ms,
                         const char *result, const float *samples, int n_samples, int dim, const char *error,
                         sb_error *err);
/* running -> queued (shutdown before the job finished); attempt 0: any. */
int store_requeue(store *s, const char *id, const char *reason, sb_error *err);
int store_requeue_attempt(store *s, const char *id, int attempt, const char *reason, sb_error *err);

/* The queue. Claims the oldest queued run for owner (this replica's id):
 * running, attempts + 1, started_ms = now_ms (never before the run's
 * created_ms: a worker's clock read before another replica's insert became
 * visible must not make a job start before it was created), lease_until =
 * now_ms + lease_ms. *claimed = 0 when nothing is queued; else id and *attempt. */
int store_claim(store *s, const char *owner, int64_t now_ms, int64_t lease_ms, char id[40], int *attempt,
                int *claimed, sb_error *err);
/* Heartbeat: extends to now_ms + lease_ms the lease of each (ids[i],
 * attempts[i]) still running. state[i]: 0 renewed, 1 renewed and
 * cancel_requested, -1 lost (swept or finished: the worker should stop). */
int store_renew(store *s, int n, const char (*ids)[40], const int *attempts, int64_t now_ms, int64_t lease_ms,
                int *state, sb_error *err);
/* Runs whose lease expired before now_ms go back to queued (attempts <
 * max_attempts) or to failed with the interrupted problem. */
int store_sweep(store *s, int max_attempts, int64_t now_ms, int *requeued, int *failed, sb_error *err);
/* Wake-ups from other daemons on the same database (PostgreSQL LISTEN/NOTIFY
 * on a connection of its own, read by a thread): on_job when a run was
 * queued, on_cancel(id) when a running one was asked to stop, on_done(id)
 * when one finished. SQLite has one daemon: nothing to listen to (SB_OK). */
typedef struct store_watch_fns {
  void (*on_job)(void *ctx);
  void (*on_cancel)(void *ctx, const char *id);
  void (*on_done)(void *ctx, const char *id);
  void *ctx;
} store_watch_fns;
int store_watch(store *s, const store_watch_fns *fns, sb_error *err);
/* Stops the listener (before the callbacks' context goes away). */
void store_unwatch(store *s);
/* Number of queued runs (the queue depth, all daemons). */
int store_count_queued(store *s, long long *n, sb_error *err);
/* The schema version the database is at (store_migrations.h). */
int store_schema_version(store *s, int *version, sb_error *err);
/* Cancels: queued -> cancelled (*was_running = 0); running -> cancel_requested
 * (*was_running = 1); finished -> STORE_ECONFLICT. */
int store_cancel(store *s, const char *id, int64_t now_ms, int *was_running, sb_error *err);
/* Deletes a finished run; STORE_ECONFLICT when it is queued or running. */
int store_delete(store *s, const char *id, sb_error *err);
/* Copies the samples blob (float32) into a malloc'd *data. */
int store_samples(store *s, const char *id, float **data, int *n_samples, int *dim, sb_error *err);

/* Newest first, seq < before_seq (0 = from the newest), at most limit runs;
 * state and estimator filters may be NULL. *out is a malloc'd array. */
int store_list(store *s, const char *state, const char *estimator, long long before_seq, int limit,
               store_run **out, int *count, sb_error *err);

/* Startup recovery: SQLite (one daemon per file, flock): runs left 'running'
 * by a crash go back to 'queued' or, after max_attempts starts, to 'failed'
 * with a reason. PostgreSQL (other daemons may be running them): only runs
 * whose lease expired (store_sweep). Then calls fn for every queued run,
 * oldest first. Returns counts in *requeued, *failed. */
int store_recover(store *s, int max_attempts, int64_t now_ms, void (*fn)(void *ctx, const char *id),
                  void *ctx, int *requeued, int *failed, sb_error *err);
/* Counts runs per state, indexed by job_state (job_state.h). */
int store_count_states(store *s, long long counts[JOB_N_STATES], sb_error *err);
/* Deletes finished runs older than max_age_ms (0 = no limit) and the oldest
 * finished ones beyond max_runs (0 = no limit). */
int store_cleanup(store *s, int64_t now_ms, int64_t max_age_ms, long long max_runs, long long *deleted,
                  sb_error *err);
/* 0 when the database can take what a submission writes: a 64 KiB row
 * that needs new pages (rolled back; fails on a full or read-only database
 * or one at store_set_max_bytes) and a committed heartbeat row (fails when
 * the disk is full). A success clears store_write_failing. */
int store_check_writable(store *s, sb_error *err);
/* 1 while the last write transaction failed in the database (full,
 * read-only, I/O error, connection lost) and none has succeeded since. */
int store_write_failing(store *s);
/* The database's random 16-byte secret (created with it, kept in it). */
const unsigned char *store_secret(const store *s);
/* Caps the database file at bytes (0: no cap): writes past it fail as full.
 * SQLite only: PostgreSQL refuses a cap (set quotas in the server). */
int store_set_max_bytes(store *s, long long bytes, sb_error *err);
/* The run submitted with Idempotency-Key key: 1 and *out (free it) when its
 * body hash is hash, 0 when the key is unused, STORE_EMISMATCH when it was
 * used with another body (the message does not name that run). */
int store_find_idem(store *s, const char *key, const char *hash, store_run *out, sb_error *err);

/* ---- streams (cycling): a stream is a stored configuration; each cycle is
 * a row (stream, time_index, run, observation row) written in the same
 * transaction as its run, so a cycle is never acknowledged without its job
 * nor its job without the cycle. */
typedef struct store_stream {
  char id[40];
  long long seq;
  int64_t created_ms;
  char *config;        /* canonical stream configuration JSON, owned */
} store_stream;

typedef struct store_cycle {
  long time_index;
  char run_id[40];
  char state[16];      /* the run's state; "" when the run was deleted */
  char *observations;  /* the row as compact JSON, owned */
  char *result;        /* the run's summary JSON or NULL, owned */
} store_cycle;

void store_stream_free(store_stream *st);
void store_cycle_free(store_cycle *c);
/* Creates a stream with config (canonical JSON); fills id. Durable. */
int store_stream_create(store *s, const char *config, int64_t now_ms, char id[40], sb_error *err);
int store_stream_get(store *s, const char *id, store_stream *out, sb_error *err);
/* Newest first, seq < before_seq (0 = from the newest), at most limit. */
int store_stream_list(store *s, long long before_seq, int limit, store_stream **out, int *count, sb_error *err);
/* Deletes the stream and its cycle rows (their runs stay, as jobs). */
int store_stream_delete(store *s, const char *id, sb_error *err);
/* The stream's cycles with time_index <= max_time, newest first, at most
 * limit; succeeded_only keeps those whose run succeeded. *out malloc'd. */
int store_cycle_list(store *s, const char *stream, long max_time, int succeeded_only, int limit, store_cycle **out,
                     int *count, sb_error *err);
/* Inserts the cycle's run (queued, as store_insert without a key) and its
 * cycle row in one durable transaction, only while the stream exists
 * (STORE_ENOTFOUND) and its newest cycle is still at last_time (-1: none;
 * STORE_ECONFLICT otherwise: a concurrent cycle came first). */
int store_cycle_insert(store *s, const char *stream, long time_index, const char *observations, long last_time,
                       const store_new_run *n, store_run *out, sb_error *err);

#endif
