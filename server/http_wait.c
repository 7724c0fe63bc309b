#include "http_wait.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

typedef struct http_waiter {
  http_req *q;
  char id[40];
  double deadline;
  struct http_waiter *next;
} http_waiter;

static pthread_mutex_t wait_mu = PTHREAD_MUTEX_INITIALIZER;
static http_waiter *wait_list;
static int wait_closed;

int http_wait_suspend(http_req *q, const char *id, double deadline, int (*is_done)(http_req *q, const char *id)) {
  http_waiter *w = calloc(1, sizeof *w);
  if (!w) return SB_ENOMEM;
  pthread_mutex_lock(&wait_mu);
  if (wait_closed || is_done(q, id)) {
    pthread_mutex_unlock(&wait_mu);
    free(w);
    return SB_EINVAL;
  }
  w->q = q;
  snprintf(w->id, sizeof w->id, "%s", id);
  w->deadline = deadline;
  w->next = wait_list;
  wait_list = w;
  q->suspended = 1;
  MHD_suspend_connection(q->conn);
  pthread_mutex_unlock(&wait_mu);
  return SB_OK;
}

/* Resumes the waiters for which match() holds. */
static void http_wait_resume_if(int (*match)(const http_waiter *w, const void *arg), const void *arg) {
  pthread_mutex_lock(&wait_mu);
  http_waiter **pp = &wait_list;
  while (*pp) {
    http_waiter *w = *pp;
    if (match(w, arg)) {
      *pp = w->next;
      MHD_resume_connection(w->q->conn);
      free(w);
    } else {
      pp = &w->next;
    }
  }
  pthread_mutex_unlock(&wait_mu);
}

static int http_wait_match_id(const http_waiter *w, const void *arg) { return !strcmp(w->id, arg); }
static int http_wait_match_due(const http_waiter *w, const void *arg) { return w->deadline <= *(const double *)arg; }
static int http_wait_match_all(const http_waiter *w, const void *arg) {
  (void)w, (void)arg;
  return 1;
}

void http_wait_notify(void *ctx, const char *id) {
  (void)ctx;
  http_wait_resume_if(http_wait_match_id, id);
}

void http_wait_tick(void *ctx) {
  (void)ctx;
  double now = clock_mono_s();
  http_wait_resume_if(http_wait_match_due, &now);
}

void http_wait_shutdown(void) {
  pthread_mutex_lock(&wait_mu);
  wait_closed = 1;
  pthread_mutex_unlock(&wait_mu);
  http_wait_resume_if(http_wait_match_all, NULL);
}
