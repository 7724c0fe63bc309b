/* job_queue.h: the worker threads (libuv threads, mutex and condition
 * variable) over the queue in the store, plus a libuv loop thread for timers
 * (deadlines of waiting requests, retention cleanup, leases).
 *
 * The queue is the store's runs table, shared by every daemon on the
 * database. An idle worker waits for a wake-up (job_queue_push on this
 * daemon, job_queue_wake from another one's NOTIFY, or a 5 s safety poll),
 * claims the oldest queued run (store_claim), runs it and stores the outcome
 * under its attempt, then calls on_done(id). The loop thread renews the
 * leases of the running jobs every heartbeat_s and sweeps expired ones.
 * Admission: job_queue_reserve before the store insert (429 when max_queue
 * runs are queued in the store), then job_queue_push(reserved = 1) or
 * job_queue_release. */
#ifndef SB_JOB_QUEUE_H
#define SB_JOB_QUEUE_H

#include "registry.h"
#include "util/sb_error.h"
#include "store.h"

typedef struct job_queue job_queue;

typedef struct job_queue_opts {
  store *store;
  registry *reg;      /* each job holds its snapshot (job_spec.h) */
  int workers;
  int job_threads;  /* est_options.threads of every job */
  long max_queue;
  void (*on_done)(void *ctx, const char *id);
  void *on_done_ctx;
  void (*tick)(void *ctx);  /* called on the loop thread every tick_ms */
  void *tick_ctx;
  int tick_ms;
  /* the lease (0: defaults) */
  const char *owner;   /* this daemon's id in the store's owner column */
  double lease_s;      /* a claimed run is this daemon's for lease_s after each heartbeat (JOB_LEASE_S) */
  double heartbeat_s;  /* renewal and sweep period (lease_s / 3) */
  int max_attempts;    /* claims before a swept run fails (3) */
} job_queue_opts;

#define JOB_LEASE_S 30.0

int job_queue_start(job_queue **out, const job_queue_opts *o, sb_error *err);
/* SB_ERANGE when max_queue jobs are already queued or reserved. */
int job_queue_reserve(job_queue *q);
void job_queue_release(job_queue *q);
/* A run was stored queued (reserved: it held a slot from job_queue_reserve):
 * wakes a worker. */
void job_queue_push(job_queue *q, const char *id, int reserved);
/* Runs may be waiting in the store (another daemon's NOTIFY): wakes every
 * idle worker. */
void job_queue_wake(job_queue *q);
/* Asks the worker running id to stop; 1 when it was running here. */
int job_queue_cancel(job_queue *q, const char *id);
/* Progress (0..1) of a running id; returns 0 when it is not running here. */
int job_queue_progress(job_queue *q, const char *id, double *fraction);
void job_queue_stats(job_queue *q, long *depth, long *running);
int job_queue_saturated(job_queue *q);
/* Seconds a worker gets to stop after its job was cancelled at shutdown;
 * every estimator polls its cancel token at least once per chunk of work
 * far shorter than this (see docs/daemon.md). */
#define JOB_CANCEL_WAIT_S 3.0
/* Stops taking jobs, gives running ones grace_s seconds, then cancels them
 * (they go back to queued in the store) and waits at most
 * JOB_CANCEL_WAIT_S more: shutdown is bounded by grace_s + 3 s. Returns
 * the number of workers still running then: 0 when every thread was
 * joined; otherwise they were left running, the queue must not be freed
 * (job_queue_free does nothing) and the caller exits the process. */
int job_queue_stop(job_queue *q, double grace_s);
/* Ids of the running jobs and their attempts (may be NULL), at most max;
 * returns how many. */
int job_queue_running_ids(job_queue *q, char (*ids)[40], int *attempts, int max);
/* Jobs whose store write failed past its retries and that the loop thread
 * settles once the store can write again (see job_queue.c). */
long job_queue_unsettled(job_queue *q);
void job_queue_free(job_queue *q);

#endif
