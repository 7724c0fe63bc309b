/* par.h: the one thread runtime of sbida. Every threaded piece (the nn
 * engine, the estimators, the evaluator, the trainer) runs its work through
 * sb_parallel_for on one persistent pool of threads, created on first use
 * and reused; nothing creates a thread per call. sb_threads() is the one
 * place that turns a requested thread count into the number a call uses.
 *
 * Determinism: callers split their work into tasks by INDEX (fixed chunks
 * of samples, cases or batch slices), never by thread, and a task's result
 * depends only on its index. Which worker runs which task varies from run
 * to run; workers only select per-worker scratch. So results are
 * bit-identical for any thread count.
 *
 * Cancellation: an sb_cancel token is an atomic flag, set by one thread
 * (a daemon cancel, a shutdown) and polled by the computation on others. */
#ifndef SB_PAR_H
#define SB_PAR_H

#include <stdatomic.h>

#include "util/sb_error.h"

/* Most threads one call may use (the caller included). */
#define SB_THREADS_MAX 64

typedef struct sb_cancel {
  atomic_int requested;
} sb_cancel;

/* Clears the token (before it is shared with a computation). */
void sb_cancel_init(sb_cancel *c);
/* Asks the computation polling c to stop; safe from any thread. */
void sb_cancel_request(sb_cancel *c);
/* 1 when c (may be NULL: never cancelled) has been requested. */
int sb_cancelled(const sb_cancel *c);

/* Threads a call uses for `requested` (<= 0 means 1) and n_tasks tasks:
 * at least 1, at most SB_THREADS_MAX and never more than the tasks. */
int sb_threads(int requested, int n_tasks);

/* Runs fn(ctx, task, worker) for every task in 0..n_tasks-1 on at most
 * sb_threads(threads, n_tasks) workers and returns when all are done. The
 * caller is worker 0 and takes part, so the work is done even when every
 * pool thread is busy (nested and concurrent calls are safe). worker is in
 * 0..sb_threads(threads, n_tasks)-1 and no two running tasks of one call
 * share it: index per-worker scratch with it, never results. */
void sb_parallel_for(int n_tasks, int threads, void (*fn)(void *ctx, int task, int worker), void *ctx);

/* The usual shape of a parallel-for: items 0..n-1 in fixed chunks of
 * `chunk` (task k is [k*chunk, min(n, (k+1)*chunk))) on
 * sb_threads(threads, number of chunks) workers. fn returns 0 or an error
 * code (a programming error: a misused network or flow call); the first one
 * stops the chunks not yet started and is returned with err saying
 * "<what> failed: programming error at FILE:LINE"; SB_ECANCEL with
 * "cancelled" when cancel (may be NULL) is requested before a chunk starts. */
int sb_parallel_ranges(int n, int chunk, int threads, const sb_cancel *cancel,
                       int (*fn)(void *ctx, int begin, int end, int worker), void *ctx, const char *what,
                       sb_error *err);

/* Process-wide settings the programs (sbida, sbidad) make first: glibc's
 * mmap threshold is fixed at 256 KiB, so the large per-call buffers of the
 * estimators (network workspaces, sample arrays) go back to the system when
 * freed. With glibc's default (a threshold that rises after the first large
 * free) they land in the heap, fragment it, and `sbida eval` grew by about
 * 4 MB per case on some runs. */
void sb_runtime_init(void);

/* Joins the pool's threads (call at exit, when no parallel-for runs; a later
 * call starts them again). */
void sb_pool_shutdown(void);

#endif
