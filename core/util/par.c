/* par.c: the persistent pool behind sb_parallel_for (see par.h).
 *
 * A call publishes a batch (on its own stack) in the pool's list and wakes
 * the pool; pool threads join a batch that still has unclaimed tasks and
 * free helper slots, then claim tasks with an atomic counter, exactly as
 * the caller does. A batch leaves the list under the lock, and the caller
 * waits until every helper that joined it has left, so no thread touches a
 * batch after its call returns. The pool grows to the helpers the running
 * batches ask for (at most SB_THREADS_MAX - 1 threads) and never shrinks. */
#include "util/par.h"

#include "util/sb_error.h"

#include <pthread.h>
#include <stddef.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

typedef struct batch {
  void (*fn)(void *ctx, int task, int worker);
  void *ctx;
  int n_tasks;
  int max_helpers;   /* workers besides the caller */
  atomic_int next;   /* next unclaimed task */
  int helpers;       /* helpers that joined (under the pool lock) */
  int active;        /* helpers still working on it (under the pool lock) */
  struct batch *link;
} batch;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t work;  /* a batch was published, or stop */
  pthread_cond_t left;  /* a helper left a batch */
  pthread_t th[SB_THREADS_MAX];
  int n_threads, demand, stop;
  batch *head;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0, NULL};

void sb_cancel_init(sb_cancel *c) { atomic_store(&c->requested, 0); }
void sb_cancel_request(sb_cancel *c) { atomic_store(&c->requested, 1); }
int sb_cancelled(const sb_cancel *c) {
  return c && atomic_load_explicit((atomic_int *)&c->requested, memory_order_relaxed);
}

int sb_threads(int requested, int n_tasks) {
  int T = requested < 1 ? 1 : requested > SB_THREADS_MAX ? SB_THREADS_MAX : requested;
  return n_tasks < T ? (n_tasks < 1 ? 1 : n_tasks) : T;
}

static void drain(batch *b, int worker) {
  int t;
  while ((t = atomic_fetch_add(&b->next, 1)) < b->n_tasks) b->fn(b->ctx, t, worker);
}

static batch *joinable(void) {
  for (batch *b = pool.head; b; b = b->link)
    if (b->helpers < b->max_helpers && atomic_load(&b->next) < b->n_tasks) return b;
  return NULL;
}

static void *pool_thread(void *arg) {
  (void)arg;
  pthread_mutex_lock(&pool.lock);
  while (!pool.stop) {
    batch *b = joinable();
    if (!b) {
      pthread_cond_wait(&pool.work, &pool.lock);
      continue;
    }
    int worker = ++b->helpers;
    b->active++;
    pthread_mutex_unlock(&pool.lock);
    drain(b, worker);
    pthread_mutex_lock(&pool.lock);
    if (--b->active == 0) pthread_cond_broadcast(&pool.left);
  }
  pthread_mutex_unlock(&pool.lock);
  return NULL;
}

/* Under the lock: threads for the current demand (a thread that cannot be
 * started only means fewer helpers; the caller does the rest). */
static void grow(void) {
  int want = pool.demand < SB_THREADS_MAX - 1 ? pool.demand : SB_THREADS_MAX - 1;
  while (pool.n_threads < want && !pthread_create(&pool.th[pool.n_threads], NULL, pool_thread, NULL))
    pool.n_threads++;
}

void sb_parallel_for(int n_tasks, int threads, void (*fn)(void *ctx, int task, int worker), void *ctx) {
  if (n_tasks < 1) return;
  int T = sb_threads(threads, n_tasks);
  if (T == 1) {
    for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
    return;
  }
  batch b = {.fn = fn, .ctx = ctx, .n_tasks = n_tasks, .max_helpers = T - 1};
  atomic_init(&b.next, 0);
  pthread_mutex_lock(&pool.lock);
  pool.stop = 0;
  pool.demand += b.max_helpers;
  grow();
  b.link = pool.head;
  pool.head = &b;
  pthread_cond_broadcast(&pool.work);
  pthread_mutex_unlock(&pool.lock);

  drain(&b, 0);

  pthread_mutex_lock(&pool.lock);
  for (batch **p = &pool.head; *p; p = &(*p)->link)
    if (*p == &b) {
      *p = b.link;
      break;
    }
  while (b.active) pthread_cond_wait(&pool.left, &pool.lock);
  pool.demand -= b.max_helpers;
  pthread_mutex_unlock(&pool.lock);
}

typedef struct ranges {
  int n, chunk;
  const sb_cancel *cancel;
  int (*fn)(void *ctx, int begin, int end, int worker);
  void *ctx;
  atomic_int rc;
} ranges;

static void range_task(void *arg, int task, int worker) {
  ranges *r = arg;
  int none = 0;
  if (atomic_load(&r->rc)) return;
  if (sb_cancelled(r->cancel)) {
    atomic_compare_exchange_strong(&r->rc, &none, SB_ECANCEL);
    return;
  }
  int b = task * r->chunk, e = b + r->chunk < r->n ? b + r->chunk : r->n;
  int rc = r->fn(r->ctx, b, e, worker);
  if (rc) atomic_compare_exchange_strong(&r->rc, &none, rc);
}

int sb_parallel_ranges(int n, int chunk, int threads, const sb_cancel *cancel,
                       int (*fn)(void *ctx, int begin, int end, int worker), void *ctx, const char *what,
                       sb_error *err) {
  if (n < 1 || chunk < 1) return 0;
  ranges r = {.n = n, .chunk = chunk, .cancel = cancel, .fn = fn, .ctx = ctx};
  atomic_init(&r.rc, 0);
  sb_parallel_for((n + chunk - 1) / chunk, threads, range_task, &r);
  int rc = atomic_load(&r.rc);
  if (rc == SB_ECANCEL) return sb_fail(err, rc, "cancelled");
  return rc ? SB_BUG(err, rc, "%s failed", what) : SB_OK;
}

void sb_runtime_init(void) {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
}

void sb_pool_shutdown(void) {
  pthread_mutex_lock(&pool.lock);
  pool.stop = 1;
  pthread_cond_broadcast(&pool.work);
  int n = pool.n_threads;
  pool.n_threads = 0;
  pthread_mutex_unlock(&pool.lock);
  for (int i = 0; i < n; i++) pthread_join(pool.th[i], NULL);
}
