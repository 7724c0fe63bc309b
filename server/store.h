/* store.h: every run in SQLite (WAL, synchronous=FULL).
 *
 * Durability: a run is acknowledged to the client only after store_insert's
 * transaction has committed; with WAL and synchronous=FULL the commit fsyncs
 * the WAL, so the run survives kill -9 and power loss. Finishing, cancelling,
 * deleting and recovery commit the same way. Only queued -> running is
 * committed without fsync (it reaches the OS, so it survives kill -9): losing
 * it to a power cut leaves the run queued, and it runs again.
 *
 * Threads: one writer connection and one reader connection, each behind its
 * own mutex; WAL lets readers run while a write is in progress.
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
  int attempts;
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

int store_open(store **out, const char *path, sb_error *err);
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
/* running -> queued (shutdown before the job finished). */
int store_requeue(store *s, const char *id, const char *reason, sb_error *err);
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

/* Startup recovery: runs left 'running' by a crash go back to 'queued' or,
 * after max_attempts starts, to 'failed' with a reason. Then calls fn for
 * every queued run, oldest first. Returns counts in *requeued, *failed. */
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
/* 1 while the last write transaction failed in SQLite (full, read-only,
 * I/O error) and none has succeeded since. */
int store_write_failing(store *s);
/* The database's random 16-byte secret (created with it, kept in it). */
const unsigned char *store_secret(const store *s);
/* Caps the database file at bytes (0: no cap): writes past it fail as full. */
int store_set_max_bytes(store *s, long long bytes, sb_error *err);
/* The run submitted with Idempotency-Key key: 1 and *out (free it) when its
 * body hash is hash, 0 when the key is unused, STORE_EMISMATCH when it was
 * used with another body (the message does not name that run). */
int store_find_idem(store *s, const char *key, const char *hash, store_run *out, sb_error *err);


#endif
