#include "job_queue.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "clock.h"
#include "job_run.h"
#include "job_state.h"
#include "log.h"
#include "metrics.h"
#include "problem.h"

/* A job whose final store write failed past its retries: it is running in
 * the store with no worker, and the tick writes it failed with error (a
 * problem) until it succeeds. Nothing is left running with no one to finish
 * it. (A claim that cannot be written leaves the job queued in the store:
 * claim_failing, and the workers claim again once the store writes.) */
typedef struct job_unsettled {
  char id[40];
  int requeue;
  int attempt;
  char *error;
  struct job_unsettled *next;
} job_unsettled;

typedef struct job_slot {
  job_queue *q;
  uv_thread_t thread;
  char id[40];        /* running id, "" when idle */
  int attempt;        /* its attempt (store_claim), the lease's key */
  sb_cancel cancel;
  int shutdown;       /* cancelled because the daemon stops */
  int exited;         /* the thread has returned (joinable at once) */
  double progress;
} job_slot;

struct job_queue {
  job_queue_opts o;
  uv_mutex_t mu;
  uv_cond_t cv;
  long wake;          /* claims to try before sleeping (at most workers): queued runs may wait in the store */
  long reserved;      /* queue slots held by submissions being stored */
  int claim_failing;  /* the last claim could not be written */
  int stopping;
  job_slot *slots;
  job_unsettled *unsettled;
  long n_unsettled;
  int abandoned;      /* workers left running at stop (job_queue_stop) */
  unsigned ticks;
  double next_beat, next_sweep; /* loop thread: clock_mono_s of the next heartbeat and sweep */
  /* loop thread */
  uv_loop_t loop;
  uv_timer_t timer;
  uv_async_t stop_async;
  uv_thread_t loop_thread;
};

static void job_progress_cb(void *ctx, double f) {
  job_slot *s = ctx;
  uv_mutex_lock(&s->q->mu);
  s->progress = f < 0 ? 0 : f > 1 ? 1 : f;
  uv_mutex_unlock(&s->q->mu);
}

/* Store writes of a job are retried: JOB_STORE_TRIES tries, JOB_STORE_WAIT_MS
 * doubling between them (50 + 100 + 200 + 400 ms: under a second in all,
 * on top of SQLite's own busy timeout for a locked database). */
#define JOB_STORE_TRIES 5
#define JOB_STORE_WAIT_MS 50

static int job_retry_wait(int attempt) {
  if (attempt + 1 >= JOB_STORE_TRIES) return 0;
  uv_sleep((unsigned)(JOB_STORE_WAIT_MS << attempt));
  return 1;
}

static void job_add_unsettled(job_queue *q, const char *id, int attempt, int requeue, const char *error) {
  job_unsettled *u = calloc(1, sizeof *u);
  if (u) {
    snprintf(u->id, sizeof u->id, "%s", id);
    u->requeue = requeue;
    u->attempt = attempt;
    u->error = error ? strdup(error) : NULL;
  }
  uv_mutex_lock(&q->mu);
  if (u) {
    u->next = q->unsettled;
    q->unsettled = u;
    q->n_unsettled++;
  }
  uv_mutex_unlock(&q->mu);
  log_event(LOG_ERROR, "job_unsettled", json_pack("{s:s, s:s}", "id", id, "then", requeue ? "requeue" : "fail"));
}

/* The problem stored when a job's outcome could not be written. */
static char *job_store_problem(const char *what, const sb_error *err) {
  json_t *p = problem_new(PROB_UNAVAILABLE, 503, "%s could not be stored (%s); submit the job again later", what,
                          err->msg);
  char *s = json_dumps(p, JSON_COMPACT);
  json_decref(p);
  return s;
}

/* running -> final state, retried; when the result itself cannot be written
 * (a large sample blob on a full database), the job fails with a small
 * problem saying so; when nothing can be written, the tick finishes it. */
static const char *job_settle(job_queue *q, const char *id, int attempt, job_outcome *out) {
  sb_error err = {0};
  int rc = 0;
  for (int i = 0;; i++) {
    rc = store_finish_attempt(q->o.store, id, attempt, out->state, clock_now_ms(), out->result, out->samples,
                              out->n_samples, out->dim, out->error, &err);
    if (!rc || rc == STORE_ECONFLICT || rc == STORE_ENOTFOUND || !job_retry_wait(i)) break;
  }
  if (!rc || rc == STORE_ECONFLICT || rc == STORE_ENOTFOUND) {
    if (rc) log_event(LOG_WARN, "job_store_conflict", json_pack("{s:s, s:s}", "id", id, "reason", err.msg));
    return out->state;
  }
  log_event(LOG_ERROR, "job_store_error", json_pack("{s:s, s:s}", "id", id, "reason", err.msg));
  char *problem = job_store_problem(job_state_is(out->state, JOB_SUCCEEDED) ? "the result" : "the outcome", &err);
  for (int i = 0;; i++) {
    rc = store_finish_attempt(q->o.store, id, attempt, job_state_name(JOB_FAILED), clock_now_ms(), NULL, NULL, 0, 0,
                              problem, &err);
    if (!rc || rc == STORE_ECONFLICT || rc == STORE_ENOTFOUND || !job_retry_wait(i)) break;
  }
  const char *state = job_state_name(JOB_FAILED);
  if (rc && rc != STORE_ECONFLICT && rc != STORE_ENOTFOUND) job_add_unsettled(q, id, attempt, 0, problem), state = "unsettled";
  free(problem);
  return state;
}

/* Claims the oldest queued run and runs it. Returns 1 when one was run. */
static int job_execute(job_slot *slot) {
  job_queue *q = slot->q;
  sb_error err = {0};
  int claimed = 0, attempt = 0, rc = 0;
  char id[40] = "";
  for (int i = 0;; i++) {
    if (!(rc = store_claim(q->o.store, q->o.owner, clock_now_ms(), (int64_t)(q->o.lease_s * 1000), id, &attempt,
                           &claimed, &err)) ||
        !job_retry_wait(i))
      break;
  }
  uv_mutex_lock(&q->mu);
  if (rc && !q->claim_failing) log_event(LOG_ERROR, "job_store_error", json_pack("{s:s}", "reason", err.msg));
  q->claim_failing = rc != 0; /* the run stays queued in the store; the tick wakes us once it writes */
  if (claimed) {
    memcpy(slot->id, id, sizeof slot->id);
    slot->attempt = attempt;
    sb_cancel_init(&slot->cancel);
    slot->shutdown = 0;
    slot->progress = 0;
  }
  uv_mutex_unlock(&q->mu);
  if (rc || !claimed) return 0;
  store_run run;
  for (int i = 0;; i++) {
    if (!(rc = store_get(q->o.store, id, &run, &err)) || !job_retry_wait(i)) break;
  }
  if (rc) {
    log_event(LOG_ERROR, "job_store_error", json_pack("{s:s, s:s}", "id", id, "reason", err.msg));
    job_outcome out = {.state = job_state_name(JOB_FAILED)};
    out.error = job_store_problem("the request could not be read back, so it", &err);
    job_settle(q, id, attempt, &out);
    job_outcome_free(&out);
    return 1;
  }
  if (run.created_ms > 0) metrics_observe(METRIC_QUEUE_WAIT_SECONDS, (double)(clock_now_ms() - run.created_ms) / 1000);
  if (run.cancel_requested) sb_cancel_request(&slot->cancel); /* cancelled between the claim and here */
  log_event(LOG_INFO, "job_started", json_pack("{s:s, s:s, s:i, s:i}", "id", id, "estimator", run.estimator,
                                               "n_samples", run.n_samples, "attempt", run.attempts));
  double t0 = clock_mono_s();
  job_outcome out;
  job_run(q->o.reg, q->o.store, run.request, q->o.job_threads, &slot->cancel, job_progress_cb, slot, &out);
  double dt = clock_mono_s() - t0;
  metrics_observe(METRIC_JOB_SECONDS, dt);
  uv_mutex_lock(&q->mu);
  int shutdown = slot->shutdown;
  uv_mutex_unlock(&q->mu);
  if (job_state_is(out.state, JOB_CANCELLED) && shutdown) {
    for (int i = 0;; i++) {
      if (!(rc = store_requeue_attempt(q->o.store, id, attempt, "daemon shutting down", &err)) || !job_retry_wait(i))
        break;
    }
    /* if even this fails the run stays 'running', and the next start's
     * recovery (or another daemon's sweep, once the lease expires) re-queues it */
    if (rc) log_event(LOG_ERROR, "job_store_error", json_pack("{s:s, s:s}", "id", id, "reason", err.msg));
    metrics_job_event("requeued");
    log_event(LOG_INFO, "job_requeued", json_pack("{s:s, s:s}", "id", id, "reason", "shutdown"));
  } else {
    const char *state = job_settle(q, id, attempt, &out);
    json_t *f = json_pack("{s:s, s:s, s:f}", "id", id, "state", state, "seconds", dt);
    if (out.error) json_object_set_new(f, "error", json_loads(out.error, 0, NULL));
    if (strcmp(state, "unsettled")) metrics_job_event(state);
    log_event(LOG_INFO, "job_finished", f);
  }
  job_outcome_free(&out);
  store_run_free(&run);
  return 1;
}

/* On the loop thread about once a second: settles what job_execute could
 * not (see job_unsettled). */
static void job_settle_tick(job_queue *q) {
  uv_mutex_lock(&q->mu);
  job_unsettled *list = q->unsettled;
  q->unsettled = NULL;
  q->n_unsettled = 0;
  uv_mutex_unlock(&q->mu);
  if (!list) return;
  sb_error err = {0};
  int writable = store_check_writable(q->o.store, &err) == SB_OK;
  job_unsettled *keep = NULL;
  long kept = 0;
  while (list) {
    job_unsettled *u = list;
    list = u->next;
    int done = 0;
    if (writable) {
      int rc = store_finish_attempt(q->o.store, u->id, u->attempt, job_state_name(JOB_FAILED), clock_now_ms(), NULL,
                                    NULL, 0, 0, u->error, &err);
      done = !rc || rc == STORE_ECONFLICT || rc == STORE_ENOTFOUND;
      if (done) {
        log_event(LOG_INFO, "job_settled", json_pack("{s:s, s:s}", "id", u->id, "state", "failed"));
        metrics_job_event(job_state_name(JOB_FAILED));
        if (q->o.on_done) q->o.on_done(q->o.on_done_ctx, u->id);
      }
    }
    if (done) {
      free(u->error);
      free(u);
    } else {
      u->next = keep;
      keep = u;
      kept++;
    }
  }
  if (!keep) return;
  uv_mutex_lock(&q->mu);
  job_unsettled **tail = &keep;
  while (*tail) tail = &(*tail)->next;
  *tail = q->unsettled;
  q->unsettled = keep;
  q->n_unsettled += kept;
  uv_mutex_unlock(&q->mu);
}

long job_queue_unsettled(job_queue *q) {
  uv_mutex_lock(&q->mu);
  long n = q->n_unsettled + q->claim_failing;
  uv_mutex_unlock(&q->mu);
  return n;
}

/* Safety poll: an idle worker claims at least this often even when no
 * wake-up came (a NOTIFY lost with a dropped listener connection). */
#define JOB_POLL_S 5.0

static void job_worker(void *arg) {
  job_slot *slot = arg;
  job_queue *q = slot->q;
  for (;;) {
    uv_mutex_lock(&q->mu);
    if (!q->wake && !q->stopping) uv_cond_timedwait(&q->cv, &q->mu, (uint64_t)(JOB_POLL_S * 1e9));
    if (q->stopping) {
      slot->exited = 1;
      uv_mutex_unlock(&q->mu);
      return;
    }
    if (q->wake > 0) q->wake--;
    uv_mutex_unlock(&q->mu);
    if (!job_execute(slot)) continue;
    char id[40];
    uv_mutex_lock(&q->mu);
    memcpy(id, slot->id, sizeof id);
    slot->id[0] = 0;
    if (q->wake < q->o.workers) q->wake++; /* more may be queued: the next claim finds out */
    uv_mutex_unlock(&q->mu);
    if (q->o.on_done) q->o.on_done(q->o.on_done_ctx, id);
  }
}

/* On the loop thread: renews the leases of the jobs running here (and
 * stops those cancelled through another daemon, or whose lease was lost),
 * and re-queues runs whose lease expired (their daemon died). */
static void job_lease_tick(job_queue *q) {
  double now = clock_mono_s();
  sb_error err = {0};
  if (now >= q->next_beat) {
    q->next_beat = now + q->o.heartbeat_s;
    char ids[64][40];
    int attempts[64], state[64], n = 0;
    uv_mutex_lock(&q->mu);
    for (int i = 0; i < q->o.workers && n < 64; i++)
      if (q->slots[i].id[0]) memcpy(ids[n], q->slots[i].id, 40), attempts[n++] = q->slots[i].attempt;
    uv_mutex_unlock(&q->mu);
    if (n && store_renew(q->o.store, n, (const char(*)[40])ids, attempts, clock_now_ms(),
                         (int64_t)(q->o.lease_s * 1000), state, &err))
      log_event(LOG_WARN, "lease_renew_failed", json_pack("{s:s}", "reason", err.msg));
    else
      for (int k = 0; k < n; k++)
        if (state[k]) {
          if (state[k] < 0)
            log_event(LOG_WARN, "lease_lost", json_pack("{s:s, s:i}", "id", ids[k], "attempt", attempts[k]));
          job_queue_cancel(q, ids[k]);
        }
  }
  if (now >= q->next_sweep) {
    q->next_sweep = now + q->o.heartbeat_s;
    int requeued = 0, failed = 0;
    if (store_sweep(q->o.store, q->o.max_attempts, clock_now_ms(), &requeued, &failed, &err))
      log_event(LOG_WARN, "lease_sweep_failed", json_pack("{s:s}", "reason", err.msg));
    else if (requeued || failed)
      log_event(LOG_INFO, "lease_expired", json_pack("{s:i, s:i}", "requeued", requeued, "failed", failed));
    if (requeued) job_queue_wake(q);
  }
  uv_mutex_lock(&q->mu);
  int failing = q->claim_failing;
  uv_mutex_unlock(&q->mu);
  if (failing && store_check_writable(q->o.store, &err) == SB_OK) job_queue_wake(q);
}

void job_queue_wake(job_queue *q) {
  uv_mutex_lock(&q->mu);
  q->wake = q->o.workers; /* pending claims start after this call: one per worker is enough */
  uv_cond_broadcast(&q->cv);
  uv_mutex_unlock(&q->mu);
}

static void job_timer_cb(uv_timer_t *t) {
  job_queue *q = t->data;
  if (++q->ticks % (unsigned)(1000 / (q->o.tick_ms > 0 ? q->o.tick_ms : 1000) + 1) == 0) {
    job_settle_tick(q);
  }
  job_lease_tick(q);
  if (q->o.tick) q->o.tick(q->o.tick_ctx);
}

static void job_stop_cb(uv_async_t *a) {
  job_queue *q = a->data;
  uv_timer_stop(&q->timer);
  uv_close((uv_handle_t *)&q->timer, NULL);
  uv_close((uv_handle_t *)&q->stop_async, NULL);
}

static void job_loop_thread(void *arg) {
  job_queue *q = arg;
  uv_run(&q->loop, UV_RUN_DEFAULT);
}

int job_queue_start(job_queue **out, const job_queue_opts *o, sb_error *err) {
  *out = NULL;
  job_queue *q = calloc(1, sizeof *q);
  if (!q) return sb_fail(err, SB_ENOMEM, "out of memory");
  q->o = *o;
  q->slots = calloc((size_t)o->workers, sizeof *q->slots);
  if (!q->slots) {
    free(q);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  uv_mutex_init(&q->mu);
  uv_cond_init(&q->cv);
  int rc = uv_loop_init(&q->loop);
  if (rc) {
    free(q->slots);
    free(q);
    return sb_fail(err, SB_EIO, "uv_loop_init: %s", uv_strerror(rc));
  }
  uv_timer_init(&q->loop, &q->timer);
  q->timer.data = q;
  uv_async_init(&q->loop, &q->stop_async, job_stop_cb);
  q->stop_async.data = q;
  if (q->o.tick_ms <= 0) q->o.tick_ms = 100;
  if (!q->o.owner) q->o.owner = "sbidad";
  if (q->o.lease_s <= 0) q->o.lease_s = JOB_LEASE_S;
  if (q->o.heartbeat_s <= 0) q->o.heartbeat_s = q->o.lease_s / 3;
  if (q->o.max_attempts <= 0) q->o.max_attempts = 3;
  q->wake = o->workers; /* queued runs may be waiting in the store */
  uv_timer_start(&q->timer, job_timer_cb, (uint64_t)q->o.tick_ms, (uint64_t)q->o.tick_ms);
  uv_thread_create(&q->loop_thread, job_loop_thread, q);
  for (int i = 0; i < o->workers; i++) {
    q->slots[i].q = q;
    uv_thread_create(&q->slots[i].thread, job_worker, &q->slots[i]);
  }
  *out = q;
  return SB_OK;
}

/* The depth is the store's: queued runs of every daemon on the database. */
static long long job_queued_in_store(job_queue *q) {
  long long n = 0;
  sb_error err = {0};
  if (store_count_queued(q->o.store, &n, &err)) n = 0; /* the insert will report a failing store */
  return n;
}

int job_queue_reserve(job_queue *q) {
  long long queued = job_queued_in_store(q);
  uv_mutex_lock(&q->mu);
  int ok = !q->stopping && queued + q->reserved < q->o.max_queue;
  if (ok) q->reserved++;
  uv_mutex_unlock(&q->mu);
  return ok ? SB_OK : SB_ERANGE;
}

void job_queue_release(job_queue *q) {
  uv_mutex_lock(&q->mu);
  q->reserved--;
  uv_mutex_unlock(&q->mu);
}

void job_queue_push(job_queue *q, const char *id, int reserved) {
  (void)id; /* the run is in the store; a worker claims it (the oldest first) */
  uv_mutex_lock(&q->mu);
  if (reserved) q->reserved--;
  if (q->wake < q->o.workers) q->wake++; /* a pending wake is a claim that starts after this commit */
  uv_cond_signal(&q->cv);
  uv_mutex_unlock(&q->mu);
}

int job_queue_cancel(job_queue *q, const char *id) {
  int found = 0;
  uv_mutex_lock(&q->mu);
  for (int i = 0; i < q->o.workers; i++)
    if (!strcmp(q->slots[i].id, id)) {
      sb_cancel_request(&q->slots[i].cancel);
      found = 1;
    }
  uv_mutex_unlock(&q->mu);
  return found;
}

int job_queue_progress(job_queue *q, const char *id, double *fraction) {
  int found = 0;
  uv_mutex_lock(&q->mu);
  for (int i = 0; i < q->o.workers && !found; i++)
    if (!strcmp(q->slots[i].id, id)) {
      *fraction = q->slots[i].progress;
      found = 1;
    }
  uv_mutex_unlock(&q->mu);
  return found;
}

void job_queue_stats(job_queue *q, long *depth, long *running) {
  *depth = (long)job_queued_in_store(q);
  uv_mutex_lock(&q->mu);
  long r = 0;
  for (int i = 0; i < q->o.workers; i++) r += q->slots[i].id[0] != 0;
  *running = r;
  uv_mutex_unlock(&q->mu);
}

int job_queue_saturated(job_queue *q) {
  long long queued = job_queued_in_store(q);
  uv_mutex_lock(&q->mu);
  int s = queued + q->reserved >= q->o.max_queue;
  uv_mutex_unlock(&q->mu);
  return s;
}

int job_queue_stop(job_queue *q, double grace_s) {
  if (!q) return 0;
  uv_mutex_lock(&q->mu);
  q->stopping = 1;
  uv_cond_broadcast(&q->cv);
  uv_mutex_unlock(&q->mu);
  double deadline = clock_mono_s() + grace_s, cancel_deadline = 0;
  int stuck = 0;
  for (;;) {
    uv_mutex_lock(&q->mu);
    int alive = 0;
    for (int i = 0; i < q->o.workers; i++) alive += !q->slots[i].exited;
    uv_mutex_unlock(&q->mu);
    if (!alive) break;
    double now = clock_mono_s();
    if (!cancel_deadline && now >= deadline) {
      uv_mutex_lock(&q->mu);
      for (int i = 0; i < q->o.workers; i++)
        if (q->slots[i].id[0]) q->slots[i].shutdown = 1, sb_cancel_request(&q->slots[i].cancel);
      uv_mutex_unlock(&q->mu);
      cancel_deadline = now + JOB_CANCEL_WAIT_S;
    }
    if (cancel_deadline && now >= cancel_deadline) {
      stuck = alive;
      break;
    }
    uv_sleep(20);
  }
  for (int i = 0; i < q->o.workers; i++) {
    uv_mutex_lock(&q->mu);
    int exited = q->slots[i].exited;
    uv_mutex_unlock(&q->mu);
    if (exited) uv_thread_join(&q->slots[i].thread);
  }
  q->abandoned = stuck;
  if (!stuck) {
    uv_async_send(&q->stop_async);
    uv_thread_join(&q->loop_thread);
    uv_loop_close(&q->loop);
  }
  return stuck;
}

int job_queue_running_ids(job_queue *q, char (*ids)[40], int *attempts, int max) {
  int n = 0;
  uv_mutex_lock(&q->mu);
  for (int i = 0; i < q->o.workers && n < max; i++)
    if (q->slots[i].id[0]) {
      if (attempts) attempts[n] = q->slots[i].attempt;
      memcpy(ids[n++], q->slots[i].id, 40);
    }
  uv_mutex_unlock(&q->mu);
  return n;
}

void job_queue_free(job_queue *q) {
  if (!q || q->abandoned) return; /* threads still use it: the process is about to exit */
  while (q->unsettled) {
    job_unsettled *u = q->unsettled;
    q->unsettled = u->next;
    free(u->error);
    free(u);
  }
  uv_mutex_destroy(&q->mu);
  uv_cond_destroy(&q->cv);
  free(q->slots);
  free(q);
}
