/* score_batch.c: dynamic batching of network evaluations (see score_batch.h).
 * One mutex guards every batcher, the list of batchers and the counters;
 * each batcher has a condition variable its waiting calls sleep on. The
 * merged pass itself runs outside the mutex. */
#include "kinds/score/score_batch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/par.h"

enum { REQ_PENDING = 0, REQ_TAKEN, REQ_DONE };

/* The scratch of one merged pass: per worker a workspace and chunk buffers. */
typedef struct batch_scratch {
  int T;
  nn_workspace ws[SB_THREADS_MAX];
  float *in[SB_THREADS_MAX], *scal[SB_THREADS_MAX], *out[SB_THREADS_MAX];
  struct batch_scratch *next;
} batch_scratch;

struct score_batch {
  const nn_model *net;
  int refs;                     /* calls joined */
  score_batch_req *head, *tail; /* pending requests, oldest first */
  int n_pending, pending_rows;
  pthread_cond_t cv;            /* a request was added or finished */
  batch_scratch *free_scratch;  /* scratch of finished passes, for the next ones */
  struct score_batch *next;
};

static pthread_mutex_t batch_lock = PTHREAD_MUTEX_INITIALIZER;
static score_batch *batchers;
static score_batch_config batch_cfg = {0, 0.002, 1, 0};
static score_batch_stats batch_stats;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void score_batch_configure(const score_batch_config *c) {
  pthread_mutex_lock(&batch_lock);
  batch_cfg = *c;
  if (batch_cfg.max_rows < 0) batch_cfg.max_rows = 0;
  if (!(batch_cfg.wait_s >= 0)) batch_cfg.wait_s = 0;
  if (batch_cfg.threads < 1) batch_cfg.threads = 1;
  pthread_mutex_unlock(&batch_lock);
}

void score_batch_get_config(score_batch_config *c) {
  pthread_mutex_lock(&batch_lock);
  *c = batch_cfg;
  pthread_mutex_unlock(&batch_lock);
}

void score_batch_get_stats(score_batch_stats *s) {
  pthread_mutex_lock(&batch_lock);
  *s = batch_stats;
  pthread_mutex_unlock(&batch_lock);
}

static void scratch_free(batch_scratch *s) {
  while (s) {
    batch_scratch *next = s->next;
    for (int t = 0; t < s->T; t++) {
      nn_workspace_free(&s->ws[t]);
      free(s->in[t]), free(s->scal[t]), free(s->out[t]);
    }
    free(s);
    s = next;
  }
}

static batch_scratch *scratch_new(const nn_model *net, int T) {
  batch_scratch *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->T = T;
  const int ns = nn_n_scalars(net) > 0 ? nn_n_scalars(net) : 1;
  for (int t = 0; t < T; t++) {
    sb_error err = {0};
    s->in[t] = malloc(sizeof(float) * (size_t)SCORE_BATCH_CHUNK * nn_in_size(net));
    s->scal[t] = malloc(sizeof(float) * (size_t)SCORE_BATCH_CHUNK * ns);
    s->out[t] = malloc(sizeof(float) * (size_t)SCORE_BATCH_CHUNK * nn_out_size(net));
    if (!s->in[t] || !s->scal[t] || !s->out[t] || nn_workspace_init(&s->ws[t], net, SCORE_BATCH_CHUNK, 0, &err)) {
      scratch_free(s);
      return NULL;
    }
  }
  return s;
}

score_batch *score_batch_join(const nn_model *net) {
  pthread_mutex_lock(&batch_lock);
  score_batch *b = NULL;
  if (batch_cfg.max_rows > 0) {
    for (b = batchers; b && b->net != net; b = b->next) {}
    if (!b && (b = calloc(1, sizeof *b))) {
      pthread_condattr_t ca; /* deadlines on the monotonic clock: a clock step cannot stretch a wait */
      int bad = pthread_condattr_init(&ca);
      if (!bad) {
        bad = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) || pthread_cond_init(&b->cv, &ca);
        pthread_condattr_destroy(&ca);
      }
      if (bad) {
        free(b);
        b = NULL;
      } else {
        b->net = net;
        b->next = batchers;
        batchers = b;
      }
    }
    if (b) b->refs++;
  }
  pthread_mutex_unlock(&batch_lock);
  return b;
}

void score_batch_leave(score_batch *b) {
  if (!b) return;
  pthread_mutex_lock(&batch_lock);
  if (--b->refs > 0) {
    pthread_cond_broadcast(&b->cv); /* a batch waiting for this call is ready now */
    pthread_mutex_unlock(&batch_lock);
    return;
  }
  score_batch **p = &batchers;
  while (*p != b) p = &(*p)->next;
  *p = b->next;
  pthread_mutex_unlock(&batch_lock);
  /* refs 0: no call can reach b any more (joins find it through the list) */
  scratch_free(b->free_scratch);
  pthread_cond_destroy(&b->cv);
  free(b);
}

// ----------------------------------------------------------------------------
// the merged pass

typedef struct batch_pass {
  const nn_model *net;
  batch_scratch *s;
  score_batch_req **reqs;
  int n;
  int *start;       /* start[i]: first merged row of reqs[i]; start[n] = total */
  int *chunk;       /* chunk k is merged rows [chunk[k], chunk[k + 1]) */
  int *rc;          /* per chunk */
} batch_pass;

/* Merged rows [r0, r1) (one chunk) on worker wi. */
static int pass_rows(batch_pass *p, int r0, int r1, int wi) {
  const int in_size = nn_in_size(p->net), out_size = nn_out_size(p->net);
  const int ns = nn_n_scalars(p->net);
  float *in = p->s->in[wi], *scal = p->s->scal[wi], *out = p->s->out[wi];
  int i = 0;
  while (p->start[i + 1] <= r0) i++;
  for (int r = r0, k = i; r < r1; r++) {
    while (p->start[k + 1] <= r) k++;
    p->reqs[k]->fill(p->reqs[k]->owner, r - p->start[k], in + (size_t)(r - r0) * in_size,
                     ns > 0 ? scal + (size_t)(r - r0) * ns : scal);
  }
  int rc = nn_forward(p->net, &p->s->ws[wi], in, ns > 0 ? scal : NULL, r1 - r0, out);
  for (int r = r0, k = i; !rc && r < r1; r++) {
    while (p->start[k + 1] <= r) k++;
    memcpy(p->reqs[k]->out + (size_t)(r - p->start[k]) * out_size, out + (size_t)(r - r0) * out_size,
           sizeof(float) * (size_t)out_size);
  }
  return rc;
}

static void pass_task(void *arg, int k, int wi) {
  batch_pass *p = arg;
  p->rc[k] = pass_rows(p, p->chunk[k], p->chunk[k + 1], wi);
}

/* The chunks of a pass: packed, every SCORE_BATCH_CHUNK merged rows (a
 * chunk may hold rows of several requests); else each request's rows in
 * chunks of SCORE_BATCH_CHUNK from its first row, the very chunks its call
 * runs alone (score_net.c's SCORE_CHUNK). chunk has room for rows / CHUNK
 * + n + 1 entries. Returns the number of chunks. */
static int pass_chunks(const batch_pass *p, int pack, int *chunk) {
  int n_chunks = 0;
  if (pack) {
    for (int r = 0; r < p->start[p->n]; r += SCORE_BATCH_CHUNK) chunk[n_chunks++] = r;
  } else {
    for (int i = 0; i < p->n; i++)
      for (int r = p->start[i]; r < p->start[i + 1]; r += SCORE_BATCH_CHUNK) chunk[n_chunks++] = r;
  }
  chunk[n_chunks] = p->start[p->n];
  return n_chunks;
}

/* Called with the lock held by a thread whose request is pending: takes the
 * oldest requests (up to max_rows rows, at least one), runs them without the
 * lock, and marks them done. */
static void lead(score_batch *b) {
  const score_batch_config cfg = batch_cfg;
  int n = 0, rows = 0;
  for (score_batch_req *r = b->head; r && (n == 0 || rows + r->rows <= cfg.max_rows); r = r->next) n++, rows += r->rows;
  score_batch_req *stack_reqs[64];
  int stack_start[65];
  score_batch_req **reqs = n <= 64 ? stack_reqs : malloc(sizeof *reqs * (size_t)n);
  int *start = n <= 64 ? stack_start : malloc(sizeof *start * (size_t)(n + 1));
  int rc = SB_OK;
  if (!reqs || !start) {
    n = 1, rows = b->head->rows; /* take one and fail it */
    rc = SB_ENOMEM;
    if (reqs) free(reqs), reqs = NULL;
    if (start) free(start), start = NULL;
  }
  score_batch_req *taken = b->head;
  for (int i = 0; i < n; i++) {
    score_batch_req *r = b->head;
    b->head = r->next;
    r->state = REQ_TAKEN;
    if (reqs) reqs[i] = r, start[i] = i ? start[i - 1] + reqs[i - 1]->rows : 0;
  }
  if (!b->head) b->tail = NULL;
  b->n_pending -= n;
  b->pending_rows -= rows;
  if (start) start[n] = rows;
  pthread_mutex_unlock(&batch_lock);

  sb_error err = {0};
  batch_scratch *s = NULL;
  int max_chunks = rows / SCORE_BATCH_CHUNK + n + 1;
  int *chunk = rc ? NULL : malloc(sizeof(int) * 2 * (size_t)(max_chunks + 1));
  if (!rc && !chunk) rc = sb_fail(&err, SB_ENOMEM, "out of memory for a batch of %d rows", rows);
  if (!rc) {
    batch_pass p = {b->net, NULL, reqs, n, start, chunk, chunk + max_chunks + 1};
    int n_chunks = pass_chunks(&p, cfg.pack, chunk);
    const int T = sb_threads(cfg.threads, n_chunks);
    pthread_mutex_lock(&batch_lock);
    for (batch_scratch **q = &b->free_scratch; *q; q = &(*q)->next)
      if ((*q)->T == T) {
        s = *q;
        *q = s->next;
        break;
      }
    pthread_mutex_unlock(&batch_lock);
    if (!s && !(s = scratch_new(b->net, T))) rc = sb_fail(&err, SB_ENOMEM, "out of memory for a batch of %d rows", rows);
    if (!rc) {
      p.s = s;
      sb_parallel_for(n_chunks, T, pass_task, &p);
      for (int k = 0; k < n_chunks && !rc; k++)
        if ((rc = p.rc[k])) sb_fail(&err, rc, "batched network evaluation failed: programming error (code %d)", rc);
    }
  } else if (!err.msg[0]) {
    sb_fail(&err, SB_ENOMEM, "out of memory for a batch of %d requests", n);
  }
  free(chunk);

  pthread_mutex_lock(&batch_lock);
  score_batch_req *r = taken;
  for (int i = 0; i < n; i++, r = r->next) {
    /* r->next of a taken request is no longer read by anyone but us */
    r->rc = rc;
    if (rc) *r->err = err;
    r->state = REQ_DONE;
  }
  if (s) s->next = b->free_scratch, b->free_scratch = s;
  batch_stats.passes++, batch_stats.requests += n, batch_stats.rows += rows;
  if (reqs != stack_reqs) free(reqs);
  if (start != stack_start) free(start);
  pthread_cond_broadcast(&b->cv);
}

int score_batch_run(score_batch *b, score_batch_req *req, sb_error *err) {
  req->err = err;
  req->rc = SB_OK;
  req->next = NULL;
  pthread_mutex_lock(&batch_lock);
  req->state = REQ_PENDING;
  req->since = now_s();
  if (b->tail) b->tail->next = req;
  else b->head = req;
  b->tail = req;
  b->n_pending++, b->pending_rows += req->rows;
  pthread_cond_broadcast(&b->cv); /* the batch may be full now */
  while (req->state != REQ_DONE) {
    if (req->state == REQ_PENDING) {
      double deadline = b->head->since + batch_cfg.wait_s, t = now_s();
      if (b->pending_rows >= batch_cfg.max_rows || b->n_pending >= b->refs || t >= deadline) {
        lead(b);
        continue;
      }
      /* sleep until the deadline (the condition variable's clock is CLOCK_MONOTONIC, as now_s) */
      struct timespec ts;
      double wake = deadline;
      ts.tv_sec = (time_t)wake;
      ts.tv_nsec = (long)((wake - (double)ts.tv_sec) * 1e9);
      if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
      pthread_cond_timedwait(&b->cv, &batch_lock, &ts);
    } else {
      pthread_cond_wait(&b->cv, &batch_lock);
    }
  }
  int rc = req->rc;
  pthread_mutex_unlock(&batch_lock);
  return rc;
}
