#include "job_queue.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "clock.h"
#include "job_run.h"
#include "job_state.h"
#include "log.h"
#include "metrics.h"

typedef struct job_node {
  char id[40];
  double enq_mono;
  struct job_node *next;
} job_node;

typedef struct job_slot {
  job_queue *q;
  uv_thread_t thread;
  char id[40];        /* running id, "" when idle */
  sb_cancel cancel;
  int shutdown;       /* cancelled because the daemon stops */
  double progress;
} job_slot;

struct job_queue {
  job_queue_opts o;
  uv_mutex_t mu;
  uv_cond_t cv;
  job_node *head, *tail;
  long depth, reserved;
  int stopping;
  job_slot *slots;
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

static void job_execute(job_slot *slot, const char *id, double enq_mono) {
  job_queue *q = slot->q;
  sb_error err = {0};
  int taken = 0;
  if (store_mark_running(q->o.store, id, clock_now_ms(), &taken, &err)) {
    log_event(LOG_ERROR, "job_store_error", json_pack("{s:s, s:s}", "id", id, "reason", err.msg));
    return;
  }
  if (!taken) return; /* cancelled or deleted while queued */
  metrics_observe(METRIC_QUEUE_WAIT_SECONDS, clock_mono_s() - enq_mono);
  store_run run;
  if (store_get(q->o.store, id, &run, &err)) {
    log_event(LOG_ERROR, "job_store_error", json_pack("{s:s, s:s}", "id", id, "reason", err.msg));
    return;
  }
  log_event(LOG_INFO, "job_started", json_pack("{s:s, s:s, s:i, s:i}", "id", id, "estimator", run.estimator,
                                               "n_samples", run.n_samples, "attempt", run.attempts));
  double t0 = clock_mono_s();
  job_outcome out;
  job_run(q->o.reg, run.request, q->o.job_threads, &slot->cancel, job_progress_cb, slot, &out);
  double dt = clock_mono_s() - t0;
  metrics_observe(METRIC_JOB_SECONDS, dt);
  int rc;
  if (job_state_is(out.state, JOB_CANCELLED) && slot->shutdown) {
    rc = store_requeue(q->o.store, id, "daemon shutting down", &err);
    metrics_job_event("requeued");
    log_event(LOG_INFO, "job_requeued", json_pack("{s:s, s:s}", "id", id, "reason", "shutdown"));
  } else {
    rc = store_finish(q->o.store, id, out.state, clock_now_ms(), out.result, out.samples, out.n_samples, out.dim,
                      out.error, &err);
    metrics_job_event(out.state);
    json_t *f = json_pack("{s:s, s:s, s:f}", "id", id, "state", out.state, "seconds", dt);
    if (out.error) json_object_set_new(f, "error", json_loads(out.error, 0, NULL));
    log_event(LOG_INFO, "job_finished", f);
  }
  if (rc) log_event(LOG_ERROR, "job_store_error", json_pack("{s:s, s:s}", "id", id, "reason", err.msg));
  job_outcome_free(&out);
  store_run_free(&run);
}

static void job_worker(void *arg) {
  job_slot *slot = arg;
  job_queue *q = slot->q;
  for (;;) {
    uv_mutex_lock(&q->mu);
    while (!q->head && !q->stopping) uv_cond_wait(&q->cv, &q->mu);
    if (q->stopping) {
      uv_mutex_unlock(&q->mu);
      return;
    }
    job_node *n = q->head;
    q->head = n->next;
    if (!q->head) q->tail = NULL;
    q->depth--;
    memcpy(slot->id, n->id, sizeof slot->id);
    sb_cancel_init(&slot->cancel);
    slot->shutdown = 0;
    slot->progress = 0;
    uv_mutex_unlock(&q->mu);
    char id[40];
    memcpy(id, n->id, sizeof id);
    job_execute(slot, id, n->enq_mono);
    free(n);
    uv_mutex_lock(&q->mu);
    slot->id[0] = 0;
    uv_mutex_unlock(&q->mu);
    if (q->o.on_done) q->o.on_done(q->o.on_done_ctx, id);
  }
}

static void job_timer_cb(uv_timer_t *t) {
  job_queue *q = t->data;
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
  if (o->tick) uv_timer_start(&q->timer, job_timer_cb, (uint64_t)o->tick_ms, (uint64_t)o->tick_ms);
  uv_thread_create(&q->loop_thread, job_loop_thread, q);
  for (int i = 0; i < o->workers; i++) {
    q->slots[i].q = q;
    uv_thread_create(&q->slots[i].thread, job_worker, &q->slots[i]);
  }
  *out = q;
  return SB_OK;
}

int job_queue_reserve(job_queue *q) {
  uv_mutex_lock(&q->mu);
  int ok = !q->stopping && q->depth + q->reserved < q->o.max_queue;
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
  job_node *n = calloc(1, sizeof *n);
  uv_mutex_lock(&q->mu);
  if (reserved) q->reserved--;
  if (n) {
    snprintf(n->id, sizeof n->id, "%s", id);
    n->enq_mono = clock_mono_s();
    if (q->tail) q->tail->next = n;
    else q->head = n;
    q->tail = n;
    q->depth++;
    uv_cond_signal(&q->cv);
  }
  uv_mutex_unlock(&q->mu);
  if (!n) log_event(LOG_ERROR, "queue_oom", json_pack("{s:s}", "id", id)); /* stays queued in the store */
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
  uv_mutex_lock(&q->mu);
  *depth = q->depth;
  long r = 0;
  for (int i = 0; i < q->o.workers; i++) r += q->slots[i].id[0] != 0;
  *running = r;
  uv_mutex_unlock(&q->mu);
}

int job_queue_saturated(job_queue *q) {
  uv_mutex_lock(&q->mu);
  int s = q->depth + q->reserved >= q->o.max_queue;
  uv_mutex_unlock(&q->mu);
  return s;
}

void job_queue_stop(job_queue *q, double grace_s) {
  if (!q) return;
  uv_mutex_lock(&q->mu);
  q->stopping = 1;
  uv_cond_broadcast(&q->cv);
  uv_mutex_unlock(&q->mu);
  double deadline = clock_mono_s() + grace_s;
  for (;;) {
    long depth, running;
    job_queue_stats(q, &depth, &running);
    if (!running) break;
    if (clock_mono_s() >= deadline) {
      uv_mutex_lock(&q->mu);
      for (int i = 0; i < q->o.workers; i++)
        if (q->slots[i].id[0]) q->slots[i].shutdown = 1, sb_cancel_request(&q->slots[i].cancel);
      uv_mutex_unlock(&q->mu);
      break;
    }
    uv_sleep(20);
  }
  for (int i = 0; i < q->o.workers; i++) uv_thread_join(&q->slots[i].thread);
  uv_async_send(&q->stop_async);
  uv_thread_join(&q->loop_thread);
  uv_loop_close(&q->loop);
}

void job_queue_free(job_queue *q) {
  if (!q) return;
  while (q->head) {
    job_node *n = q->head;
    q->head = n->next;
    free(n);
  }
  uv_mutex_destroy(&q->mu);
  uv_cond_destroy(&q->cv);
  free(q->slots);
  free(q);
}
