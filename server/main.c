/* main.c: sbidad: flags, environment and config file; tokens; start-up
 * (store, estimators, recovery, workers, HTTP); signals and clean shutdown.
 *
 * Threads: libmicrohttpd's pool (--http-threads) answers requests; --workers
 * libuv threads run jobs; one libuv loop thread runs timers (wait deadlines,
 * retention). The main thread only waits for signals (sigwait): SIGTERM and
 * SIGINT stop the daemon, SIGHUP reloads the models directory (registry.h). */
#include <cblas.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "clock.h"
#include "http_routes.h"
#include "http_server.h"
#include "http_wait.h"
#include "log.h"
#include "kinds/score/score_batch.h"
#include "util/par.h"
#include "metrics.h"
#include "tokens.h"
#include "util/version.h"

static int main_load_tokens(app *a, sb_error *err) {
  if (!a->cfg.tokens_file[0]) return SB_OK;
  return tokens_load(a->cfg.tokens_file, &a->tokens, &a->n_tokens, err);
}

static void main_retention(app *a) {
  long long deleted = 0;
  sb_error err = {0};
  int rc = store_cleanup(a->store, clock_now_ms(), (int64_t)(a->cfg.retention_days * 86400000.0),
                         a->cfg.retention_max_runs, &deleted, &err);
  if (rc) log_event(LOG_WARN, "retention_failed", json_pack("{s:s}", "reason", err.msg));
  else if (deleted) log_event(LOG_INFO, "retention", json_pack("{s:I}", "deleted", (json_int_t)deleted));
}

static void main_tick(void *ctx) {
  static unsigned ticks;
  app *a = ctx;
  http_wait_tick(NULL);
  http_deadline_tick(a);
  if (++ticks % 6000 == 0) main_retention(a); /* every 10 minutes at 100 ms ticks */
}

static void main_recover_push(void *ctx, const char *id) { job_queue_push(((app *)ctx)->jq, id, 0); }

/* Wake-ups from the other daemons on a shared database (store_watch). */
static void main_on_job(void *ctx) { job_queue_wake(((app *)ctx)->jq); }
static void main_on_cancel(void *ctx, const char *id) { job_queue_cancel(((app *)ctx)->jq, id); }
static void main_on_done(void *ctx, const char *id) {
  (void)ctx;
  http_wait_notify(NULL, id);
}

/* This daemon's id in the store's owner column: host, pid and 4 random bytes. */
static void main_owner(char *buf, size_t size) {
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = 0;
  unsigned char r[4] = {0};
  if (getentropy(r, sizeof r)) memset(r, 0, sizeof r);
  snprintf(buf, size, "%s-%ld-%02x%02x%02x%02x", host, (long)getpid(), r[0], r[1], r[2], r[3]);
}

static void main_log_loaded(registry *r) {
  reg_snap *s = reg_hold(r);
  json_t *names = json_array();
  for (int i = 0; i < s->count; i++) json_array_append_new(names, json_string(s->items[i]->name));
  log_event(LOG_INFO, "estimators_loaded", json_pack("{s:o, s:i}", "names", names, "failed", s->failed));
  reg_drop(s);
}

/* SIGHUP: the same rescan as POST /v1/estimators:reload, its report logged. */
static void main_reload(app *a) {
  sb_error err = {0};
  json_t *rep = reg_reload(&a->reg, &err);
  if (!rep) {
    log_event(LOG_WARN, "reload_failed", json_pack("{s:s, s:s}", "trigger", "SIGHUP", "reason", err.msg));
    return;
  }
  json_object_set_new(rep, "trigger", json_string("SIGHUP"));
  log_event(LOG_INFO, "estimators_reloaded", rep);
}

static void main_free(app *a) {
  if (a->store) store_unwatch(a->store);
  job_queue_free(a->jq);
  reg_free(&a->reg);
  store_close(a->store);
  tokens_free(a->tokens, a->n_tokens);
}

/* Dynamic batching of score-model evaluations across the jobs running at once
 * (core/kinds/score/score_batch.h); a pass may use the threads of all workers. */
static void main_batching(const config *c) {
  long threads = c->batch_threads ? c->batch_threads : c->workers * c->job_threads;
  score_batch_config bc = {(int)c->batch_rows, c->batch_wait_ms / 1e3, (int)(threads < 256 ? threads : 256),
                           (int)c->batch_pack};
  score_batch_configure(&bc);
}

/* Signals are taken by the main thread with sigwait; every thread this daemon
 * starts blocks them. OpenBLAS starts a thread before main, with signals
 * unblocked: a signal that arrived while the main thread was not in sigwait
 * (a second SIGTERM during shutdown, two quick SIGHUPs) went to that thread and
 * its default action killed the daemon. A handler now sends such a signal on
 * to the main thread, where it waits for the next sigwait (pthread_kill is
 * async-signal-safe). A self-pipe read by main did the same, but under
 * ThreadSanitizer a handler's run is deferred while its thread is blocked in
 * read(), and the daemon never saw its signals. */
static pthread_t main_thread;

static void main_forward_signal(int sig) {
  int saved = errno;
  pthread_kill(main_thread, sig);
  errno = saved;
}

static int main_signals_init(const sigset_t *sigs) {
  main_thread = pthread_self();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = main_forward_signal;
  sa.sa_mask = *sigs;
  sa.sa_flags = SA_RESTART;
  const int which[] = {SIGTERM, SIGINT, SIGHUP};
  for (int i = 0; i < 3; i++)
    if (sigaction(which[i], &sa, NULL)) return -1;
  return 0;
}

int main(int argc, char **argv) {
  sb_runtime_init();
  app a;
  memset(&a, 0, sizeof a);
  sb_error err = {0};
  int rc = config_load(&a.cfg, argc, argv, &err);
  if (rc == 1) return 0;
  if (rc) {
    fprintf(stderr, "sbidad: %s\n", err.msg);
    return 2;
  }
  if (log_set_level(a.cfg.log_level)) {
    fprintf(stderr, "sbidad: --log-level must be debug, info, warn or error\n");
    return 2;
  }
  /* Block the signals before any thread starts (threads inherit the mask);
   * the main thread takes them with sigwait. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  if (main_signals_init(&sigs)) {
    fprintf(stderr, "sbidad: cannot install the signal handlers: %s\n", strerror(errno));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  static const char *route_labels[METRICS_MAX_ROUTES]; /* the metrics label of each route, from its table */
  for (int i = 0; i < http_n_routes && i < METRICS_MAX_ROUTES; i++) route_labels[i] = http_routes[i].label;
  metrics_init(route_labels, http_n_routes);
  /* Parallelism comes from the workers (and --job-threads inside a job), so
   * BLAS stays single-threaded: no oversubscription, and nn_parallel restores
   * this same value after its threaded sections. */
  openblas_set_num_threads(1);
  main_batching(&a.cfg);

  if ((rc = main_load_tokens(&a, &err)) || (rc = store_open(&a.store, a.cfg.db, &err)) ||
      (rc = store_set_max_bytes(a.store, a.cfg.max_db_bytes, &err))) {
    log_event(LOG_ERROR, "startup_failed", json_pack("{s:s}", "reason", err.msg));
    main_free(&a);
    return 1;
  }
  if ((rc = reg_load(&a.reg, a.cfg.models, &err))) {
    log_event(LOG_ERROR, "startup_failed", json_pack("{s:s}", "reason", err.msg));
    main_free(&a);
    return 1;
  }
  main_log_loaded(&a.reg);
  main_retention(&a);

  static char owner[128];
  main_owner(owner, sizeof owner);
  job_queue_opts qo = {a.store, &a.reg, (int)a.cfg.workers, (int)a.cfg.job_threads, a.cfg.max_queue,
                       http_wait_notify, NULL, main_tick, &a, 100, owner, a.cfg.lease_seconds,
                       a.cfg.heartbeat_seconds, (int)a.cfg.max_attempts};
  if ((rc = job_queue_start(&a.jq, &qo, &err))) {
    log_event(LOG_ERROR, "startup_failed", json_pack("{s:s}", "reason", err.msg));
    main_free(&a);
    return 1;
  }
  int requeued = 0, failed = 0;
  rc = store_recover(a.store, (int)a.cfg.max_attempts, clock_now_ms(), main_recover_push, &a, &requeued, &failed,
                     &err);
  if (rc) {
    log_event(LOG_ERROR, "startup_failed", json_pack("{s:s}", "reason", err.msg));
    job_queue_stop(a.jq, 0);
    main_free(&a);
    return 1;
  }
  store_watch_fns wf = {main_on_job, main_on_cancel, main_on_done, &a};
  if ((rc = store_watch(a.store, &wf, &err))) {
    log_event(LOG_ERROR, "startup_failed", json_pack("{s:s}", "reason", err.msg));
    job_queue_stop(a.jq, 0);
    main_free(&a);
    return 1;
  }
  long depth, running;
  job_queue_stats(a.jq, &depth, &running);
  log_event(LOG_INFO, "recovered", json_pack("{s:i, s:i, s:I}", "requeued_running", requeued, "failed_running",
                                             failed, "queued", (json_int_t)depth));
  if ((rc = http_start(&a, &err))) {
    log_event(LOG_ERROR, "startup_failed", json_pack("{s:s}", "reason", err.msg));
    job_queue_stop(a.jq, 0);
    main_free(&a);
    return 1;
  }
  log_event(LOG_INFO, "listening",
            json_pack("{s:s, s:i, s:s, s:i, s:i, s:b, s:s, s:s, s:s}", "host", a.cfg.host, "port", a.cfg.port, "db",
                      store_shared(a.store) ? "postgresql" : a.cfg.db, "workers", (int)a.cfg.workers,
                      "http_threads", (int)a.cfg.http_threads, "auth", a.tokens != NULL, "version", SBIDA_VERSION,
                      "backend", store_shared(a.store) ? "postgresql" : "sqlite", "replica", owner));

  int sig = 0;
  while (sigwait(&sigs, &sig) != 0 || sig == SIGHUP)
    if (sig == SIGHUP) main_reload(&a), sig = 0;
  /* later signals (a second SIGTERM) stay pending on the main thread: shutdown
   * is already bounded by --shutdown-grace + JOB_CANCEL_WAIT_S */
  log_event(LOG_INFO, "shutdown", json_pack("{s:s, s:f}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                                            "grace_seconds", a.cfg.shutdown_grace));
  /* The daemon keeps listening until MHD_stop_daemon: during the grace it
   * answers reads (job results, readiness: not ready) and refuses new work with
   * a 503. It does not call MHD_quiesce_daemon, whose worker-pool branch in
   * libmicrohttpd 0.9.75 races with the workers' own removal of the listening
   * socket from their epoll sets and then aborts (MHD_PANIC, SIGABRT). */
  a.stopping = 1;
  char stuck_ids[256][40];
  int stuck = job_queue_stop(a.jq, a.cfg.shutdown_grace);
  if (stuck) {
    /* Bounded shutdown: workers that did not stop within the grace and the
     * cancel wait are left behind. Their runs go back to queued now (the
     * worker's own later write then finds them not running), and the process
     * exits without freeing what those threads still use. */
    int stuck_attempts[256];
    int n_stuck = job_queue_running_ids(a.jq, stuck_ids, stuck_attempts, 256);
    for (int i = 0; i < n_stuck; i++) {
      sb_error e2 = {0};
      store_requeue_attempt(a.store, stuck_ids[i], stuck_attempts[i],
                            "daemon shutting down (worker did not stop in time)", &e2);
    }
    log_event(LOG_WARN, "workers_abandoned", json_pack("{s:i, s:f}", "workers", stuck, "waited_seconds",
                                                       a.cfg.shutdown_grace + JOB_CANCEL_WAIT_S));
    http_wait_shutdown();
    http_stop(&a);
    log_event(LOG_INFO, "stopped", NULL);
    fflush(NULL);
    _exit(0);
  }
  http_wait_shutdown();
  long left = http_drain(&a, 5.0); /* resumed waiters send their answers */
  if (left) log_event(LOG_WARN, "requests_cut", json_pack("{s:I}", "in_flight", (json_int_t)left));
  http_stop(&a); /* handlers still use the queue and the store until here */
  main_free(&a);
  sb_pool_shutdown();
  log_event(LOG_INFO, "stopped", NULL);
  return 0;
}
