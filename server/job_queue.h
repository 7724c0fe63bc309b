/* job_queue.h: the bounded job queue and its worker threads (libuv threads,
 * mutex and condition variable), plus a libuv loop thread for timers
 * (deadlines of waiting requests, retention cleanup).
 *
 * The queue holds ids only; the store is the truth. A worker takes an id,
 * moves the run queued -> running in the store (a run cancelled meanwhile is
 * skipped), runs it and stores the outcome, then calls on_done(id).
 * Admission: job_queue_reserve before the store insert (429 when full), then
 * job_queue_push(reserved = 1) or job_queue_release. */
#ifndef SB_JOB_QUEUE_H
#define SB_JOB_QUEUE_H

#include "registry.h"
#include "util/sb_error.h"
#include "store.h"

typedef struct job_queue job_queue;

typedef struct job_queue_opts {
  store *store;
  const registry *reg;
  int workers;
  int job_threads;  /* est_options.threads of every job */
  long max_queue;
  void (*on_done)(void *ctx, const char *id);
  void *on_done_ctx;
  void (*tick)(void *ctx);  /* called on the loop thread every tick_ms */
  void *tick_ctx;
  int tick_ms;
} job_queue_opts;

int job_queue_start(job_queue **out, const job_queue_opts *o, sb_error *err);
/* SB_ERANGE when max_queue jobs are already queued or reserved. */
int job_queue_reserve(job_queue *q);
void job_queue_release(job_queue *q);
/* Appends a run id (reserved: it holds a slot from job_queue_reserve). */
void job_queue_push(job_queue *q, const char *id, int reserved);
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
/* Ids of the running jobs (at most max); returns how many. */
int job_queue_running_ids(job_queue *q, char (*ids)[40], int max);
/* Jobs whose store write failed past its retries and that the loop thread
 * settles once the store can write again (see job_queue.c). */
long job_queue_unsettled(job_queue *q);
void job_queue_free(job_queue *q);

#endif
